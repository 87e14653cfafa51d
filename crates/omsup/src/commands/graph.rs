//! `omsup graph -f FILE`: observe, plan, and print the step graph as DOT on stdout.
//!
//! Exit codes: 0 the graph was printed, 1 a part of the world could not be observed (the
//! graph of what could be planned is still printed).

use crate::cli::GraphArgs;
use crate::commands::plan::{prepare, report_observation_problems};
use crate::exit_codes;
use crate::render::render_dot;
use crate::report::CliError;
use crate::style::Style;

pub fn run(args: &GraphArgs, style: &Style) -> Result<u8, CliError> {
    let prepared = prepare(&args.file, style)?;
    let upgrade = omsup_engine::plan(
        &prepared.plan_file,
        &prepared.plan_file_bytes,
        &prepared.observation.world,
    );
    print!("{}", render_dot(&upgrade));
    if report_observation_problems(&prepared.observation, style) > 0 {
        return Ok(exit_codes::FAILURE);
    }
    Ok(exit_codes::SUCCESS)
}
