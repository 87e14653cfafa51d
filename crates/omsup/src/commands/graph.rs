//! `omsup graph -f FILE`: observe, plan, and print the step graph as DOT on stdout.

use crate::cli::GraphArgs;
use crate::commands::plan::{prepare, report_observation_problems};
use crate::exit_codes;
use crate::report::CliError;
use crate::style::Style;

pub fn run(args: &GraphArgs, style: &Style) -> Result<u8, CliError> {
    let prepared = prepare(&args.file, style)?;
    if report_observation_problems(&prepared.observation, style) > 0 {
        return Ok(exit_codes::FAILURE);
    }
    Ok(exit_codes::SUCCESS)
}
