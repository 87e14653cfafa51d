//! `omsup rollback`: undo a run, from any point, back to the state before it.

use omsup_journal::{DeploymentLock, Journal, RunState};

use crate::cli::{ResumeArgs, RollbackArgs};
use crate::report::CliError;
use crate::style::Style;

/// `omsup rollback`
pub fn run_rollback(_args: &RollbackArgs, _style: &Style) -> Result<u8, CliError> {
    Err(CliError::new(
        "`omsup rollback` is not available in this build yet",
    ))
}

/// `omsup resume` of an interrupted rollback run.
pub(crate) async fn resume_rollback(
    _args: &ResumeArgs,
    _style: &Style,
    _journal: &Journal,
    _lock: &DeploymentLock,
    run: RunState,
) -> Result<u8, CliError> {
    Err(CliError::new(format!(
        "run `{}` is a rollback; resuming rollbacks is not available in this build yet",
        run.info.run_id
    )))
}
