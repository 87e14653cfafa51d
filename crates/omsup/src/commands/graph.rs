//! `omsup graph -f FILE | SAVED_PLAN`: print the step graph as DOT on stdout. With a plan file
//! the world is observed and planned; a saved plan is drawn as it was saved, observing nothing
//! (so a reviewer can draw the plan an operator saved without reaching the deployment).
//!
//! Exit codes: 0 the graph was printed, 1 a part of the world could not be observed (the
//! graph of what could be planned is still printed), 64 an unreadable or invalid saved plan.

use crate::cli::GraphArgs;
use crate::commands::apply::read_saved_plan;
use crate::commands::plan::{prepare, report_observation_problems};
use crate::exit_codes;
use crate::render::render_dot;
use crate::report::CliError;
use crate::style::Style;

pub fn run(args: &GraphArgs, style: &Style) -> Result<u8, CliError> {
    let file = match (&args.source.file, &args.source.saved_plan) {
        (Some(file), _) => file,
        (None, Some(saved)) => {
            anstream::print!("{}", render_dot(&read_saved_plan(saved)?.plan));
            return Ok(exit_codes::SUCCESS);
        }
        (None, None) => unreachable!("clap requires a plan file or a saved plan"),
    };
    let prepared = prepare(file, style)?;
    let upgrade = omsup_engine::plan(
        &prepared.plan_file,
        &prepared.plan_file_bytes,
        &prepared.observation.world,
    );
    anstream::print!("{}", render_dot(&upgrade));
    if report_observation_problems(&prepared.observation, style) > 0 {
        return Ok(exit_codes::FAILURE);
    }
    Ok(exit_codes::SUCCESS)
}
