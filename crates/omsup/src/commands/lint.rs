//! `omsup lint FILE...` (placeholder; being written).

use crate::cli::LintArgs;
use crate::report::CliError;
use crate::style::Style;

pub fn run(_args: &LintArgs, _style: &Style) -> Result<u8, CliError> {
    Err(CliError::new("lint is being written"))
}
