//! The deployment lock across machines, from the CLI's side: after the local lock is taken,
//! the same lock (same lock id) is taken in the deployment's meta database server, in omsup's
//! own database (`[state] database`, default `omsup_state`), before anything is changed. A
//! second operator anywhere is refused there with exit 3, naming the holder.

use omsup_exec::secrets::Secrets;
use omsup_journal::shared::{DEFAULT_STATE_DATABASE, SharedState, SharedStateConfig};
use omsup_journal::{DeploymentLock, JournalError, LockId, LockPurpose};
use omsup_model::PlanFile;

use crate::commands::common::journal_error;
use crate::exit_codes;
use crate::report::CliError;

/// Where the shared state of `plan` lives (the meta database server and omsup's database).
pub(crate) fn shared_state_config(plan: &PlanFile, secrets: &Secrets) -> SharedStateConfig {
    let meta = &plan.meta_db;
    let database = plan
        .state
        .database
        .as_deref()
        .unwrap_or(DEFAULT_STATE_DATABASE);
    SharedStateConfig::new(
        &meta.host,
        meta.port,
        &meta.user,
        secrets.meta_password.expose(),
        database,
    )
}

/// Takes `lock` in the meta database server too; refusals (held, not stale, wrong id) exit
/// with 3 before anything is touched. A journal in the server took its lock there already.
pub(crate) async fn share_lock(
    lock: &DeploymentLock,
    plan: &PlanFile,
    secrets: &Secrets,
    purpose: LockPurpose,
    force_unlock: Option<&str>,
) -> Result<(), CliError> {
    if lock.is_shared() {
        return Ok(());
    }
    let state = SharedState::open(shared_state_config(plan, secrets))
        .await
        .map_err(refusal)?;
    lock.share(
        &state,
        &plan.meta_db.rm,
        purpose,
        force_unlock.map(LockId::new),
    )
    .await
    .map_err(refusal)
}

pub(crate) fn refusal(error: JournalError) -> CliError {
    let refused = matches!(
        error,
        JournalError::LockHeld { .. }
            | JournalError::LockNotStale { .. }
            | JournalError::ForceUnlockMismatch { .. }
            | JournalError::LockChanged { .. }
    );
    let error = journal_error(error);
    if refused {
        error.with_exit_code(exit_codes::REFUSED)
    } else {
        error
    }
}

/// Who holds the lock of the deployment of `plan_file` in the meta database server (with where
/// that is), judged with `timing`; the reason as text when it cannot be read.
pub(crate) async fn server_lock_holder(
    plan_file: &std::path::Path,
    timing: omsup_journal::LockTiming,
) -> Result<(String, Option<omsup_journal::LockHolder>), String> {
    let plan = crate::commands::common::plan_of(plan_file).map_err(|error| error.message)?;
    let secrets = crate::commands::common::secrets_of(&plan).map_err(|error| error.message)?;
    let Some(state) = SharedState::open_existing(shared_state_config(&plan, &secrets))
        .await
        .map_err(|error| error.to_string())?
    else {
        return Ok(("the meta database server (never used)".to_owned(), None));
    };
    let holder = state
        .lock_holder(&plan.meta_db.rm, timing)
        .await
        .map_err(|error| error.to_string())?;
    Ok((state.describe(), holder))
}
