//! `omsup completions <shell>`: a completion script generated from the clap definitions, on
//! stdout (README: where each shell looks for it).

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit_codes;

pub fn run(args: &CompletionsArgs) -> u8 {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "omsup",
        &mut std::io::stdout(),
    );
    exit_codes::SUCCESS
}
