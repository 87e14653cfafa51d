//! One module per command; `run` dispatches and returns the exit code to use.

pub mod graph;
pub mod lint;
pub mod plan;
pub mod status;

use crate::cli::Command;
use crate::report::CliError;
use crate::style::Style;

pub fn run(command: Command, style: &Style) -> Result<u8, CliError> {
    match command {
        Command::Lint(args) => lint::run(&args, style),
        Command::Plan(args) => plan::run(&args, style),
        Command::Apply(_) => Err(not_yet("apply")),
        Command::Resume(_) => Err(not_yet("resume")),
        Command::Rollback(_) => Err(not_yet("rollback")),
        Command::Status(args) => status::run_status(&args, style),
        Command::History(args) => status::run_history(&args, style),
        Command::Graph(args) => graph::run(&args, style),
    }
}

fn not_yet(command: &str) -> CliError {
    CliError::new(format!(
        "`omsup {command}` is not available in this build yet"
    ))
    .with_hint("`omsup lint` works today; follow the project's issues for the rest")
}
