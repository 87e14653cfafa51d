//! The omsup command line: clap types, command implementations, terminal and machine output.
//!
//! This is the only crate that knows about terminals, colours, clap and output formats
//! (ARCHITECTURE.md). `main.rs` stays thin; each command lives in `commands/`.

pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod downtime;
pub mod exit_codes;
pub mod interrupt;
pub mod progress;
pub mod render;
pub mod report;
pub mod run;
pub mod runner;
pub mod shared_lock;
pub mod style;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// `omsup --version`: the crate version and the commit it was built from (see `build.rs`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("OMSUP_COMMIT"), ")");

/// Parses `args`, runs the command, renders any error, and returns the documented exit code.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                exit_codes::USAGE
            } else {
                exit_codes::SUCCESS
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let style = style::Style::detect(cli.global.color);
    report::init_tracing(&cli.global);
    match commands::run(cli.command, &style) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            anstream::eprint!("{}", error.render(&style));
            ExitCode::from(error.exit_code())
        }
    }
}
