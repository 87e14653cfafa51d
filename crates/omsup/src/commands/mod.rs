//! One module per command; `run` dispatches and returns the exit code to use.

pub mod apply;
pub mod graph;
pub mod lint;
pub mod plan;
pub mod rollback;
pub mod status;

use crate::cli::Command;
use crate::report::CliError;
use crate::style::Style;

pub fn run(command: Command, style: &Style) -> Result<u8, CliError> {
    match command {
        Command::Lint(args) => lint::run(&args, style),
        Command::Plan(args) => plan::run(&args, style),
        Command::Apply(args) => apply::run_apply(&args, style),
        Command::Resume(args) => apply::run_resume(&args, style),
        Command::Rollback(args) => rollback::run_rollback(&args, style),
        Command::Status(args) => status::run_status(&args, style),
        Command::History(args) => status::run_history(&args, style),
        Command::Graph(args) => graph::run(&args, style),
    }
}
