//! One module per command; `run` dispatches and returns the exit code to use.

pub mod apply;
pub mod common;
pub mod completions;
pub mod graph;
pub mod init;
pub mod lint;
pub mod plan;
pub mod rehearse;
pub mod report;
pub mod resume;
pub mod rollback;
pub mod state;
pub mod status;

use crate::cli::Command;
use crate::report::CliError;
use crate::style::Style;

pub fn run(command: Command, style: &Style) -> Result<u8, CliError> {
    match command {
        Command::Init(args) => init::run(&args, style),
        Command::Lint(args) => lint::run(&args, style),
        Command::Plan(args) => plan::run(&args, style),
        Command::Apply(args) => apply::run_apply(&args, style),
        Command::Resume(args) => resume::run_resume(&args, style),
        Command::Rollback(args) => rollback::run_rollback(&args, style),
        Command::Status(args) => status::run_status(&args, style),
        Command::History(args) => status::run_history(&args, style),
        Command::Rehearse(args) => rehearse::run(&args, style),
        Command::Graph(args) => graph::run(&args, style),
        Command::Completions(args) => Ok(completions::run(&args)),
        Command::Report(args) => report::run(&args, style),
        Command::State(args) => state::run(&args, style),
    }
}
