//! The journal's errors. Messages name the journal file, run, seq and step involved; hints for
//! the CLI's `hint:` line come from [`JournalError::hint`].

use std::path::PathBuf;

use crate::event::EventKind;
use crate::ids::{LockId, RunId, StepId};
use crate::lock::LockHolder;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the state directory `{path}`")]
    StateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the journal `{path}`")]
    Database {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "`{name}` cannot name a journal: use letters, digits, `_`, `.` and `-` (at most 64, not starting with `.` or `-`)"
    )]
    InvalidDeploymentName { name: String },
    #[error("no journal for deployment `{deployment}` at `{path}`")]
    NoJournal { deployment: String, path: PathBuf },
    #[error("the journal `{path}` has schema version {found}; this omsup reads up to {supported}")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "illegal journal transition in run `{run_id}` at seq {seq}: step `{step_id}` cannot go from `{from}` by `{event}` ({reason})"
    )]
    IllegalTransition {
        run_id: RunId,
        seq: u64,
        step_id: StepId,
        from: String,
        event: EventKind,
        reason: String,
    },
    #[error(
        "the journal of run `{run_id}` holds a `{event}` event at seq {seq}, which journal schema version {schema_version} allowed but this omsup no longer reads"
    )]
    RetiredEvent {
        run_id: RunId,
        seq: u64,
        event: String,
        schema_version: i64,
    },
    #[error("the journal of run `{run_id}` is corrupt at seq {seq}: {detail}")]
    Corrupt {
        run_id: RunId,
        seq: u64,
        detail: String,
    },
    #[error(
        "refusing to journal a secret: the payload of step `{step_id}` in run `{run_id}` contains a registered secret at `{location}`"
    )]
    SecretInPayload {
        run_id: RunId,
        step_id: StepId,
        location: String,
    },
    #[error("no run `{run_id}` in the journal")]
    RunNotFound { run_id: RunId },
    #[error("run `{run_id}` already exists in the journal")]
    RunExists { run_id: RunId },
    #[error("deployment `{deployment}` is locked by {holder}")]
    LockHeld {
        deployment: String,
        holder: Box<LockHolder>,
    },
    #[error("lock `{given}` does not hold deployment `{deployment}`; it is held by {holder}")]
    ForceUnlockMismatch {
        deployment: String,
        given: LockId,
        holder: Box<LockHolder>,
    },
    #[error(
        "refusing to take over the lock of deployment `{deployment}`: it is not stale, held by {holder}"
    )]
    LockNotStale {
        deployment: String,
        holder: Box<LockHolder>,
    },
    #[error(
        "lost the lock of deployment `{deployment}` (lock `{lock_id}` for run `{run_id}`): it was released or taken over"
    )]
    LockLost {
        deployment: String,
        lock_id: LockId,
        run_id: RunId,
    },
    #[error(
        "the lock of deployment `{deployment}` changed while omsup looked at it (released or taken by another operator)"
    )]
    LockChanged { deployment: String },
    #[error(
        "`{name}` cannot name omsup's state database: use letters, digits and `_` (at most 64)"
    )]
    InvalidStateDatabase { name: String },
    #[error(
        "omsup's state database `{database}` on `{server}` has journal schema version {found}; this omsup reads up to {supported}"
    )]
    SharedSchemaTooNew {
        database: String,
        server: String,
        found: i64,
        supported: i64,
    },
    #[error("cannot reach the meta database server `{server}` for omsup's shared state")]
    SharedStateUnreachable {
        server: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the meta user `{user}` may not use omsup's state database `{database}` on `{server}`")]
    SharedStatePrivilege {
        database: String,
        user: String,
        server: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot use omsup's state database `{database}` on `{server}`")]
    SharedState {
        database: String,
        server: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the journal in {destination} already holds {runs} run(s) of this deployment")]
    HistoryExists { destination: String, runs: u64 },
    #[error("cannot encode or decode a journal payload")]
    Payload(#[source] serde_json::Error),
}

impl JournalError {
    /// A `hint:` for the user, when there is something to suggest.
    pub fn hint(&self) -> Option<String> {
        match self {
            JournalError::LockHeld { holder, .. } | JournalError::LockNotStale { holder, .. } => {
                Some(holder.takeover_hint())
            }
            JournalError::ForceUnlockMismatch { holder, .. } => Some(format!(
                "the lock's id is `{}`; look at `omsup status` before taking it over",
                holder.lock_id
            )),
            JournalError::LockLost { .. } => Some(
                "another omsup took the lock over; look at `omsup status` before going on"
                    .to_owned(),
            ),
            JournalError::IllegalTransition { .. } | JournalError::Corrupt { .. } => Some(
                "the journal was edited or damaged; keep a copy of it and look at `omsup history`"
                    .to_owned(),
            ),
            JournalError::LockChanged { .. } => Some(
                "look at `omsup status`, then run the command again".to_owned(),
            ),
            JournalError::SharedStatePrivilege { database, user, .. } => Some(format!(
                "omsup keeps the deployment lock (and, with `[state] backend = \"meta_db\"`, the journal) in a database of its own: have an administrator create the database `{database}` and grant `SELECT, INSERT, UPDATE, DELETE, CREATE` on `{database}.*` to `{user}` (or name another database with `[state] database`)"
            )),
            JournalError::SharedStateUnreachable { .. } => Some(
                "apply, resume and rollback take the deployment lock in the meta database server; check `[meta_db]` and that the server answers"
                    .to_owned(),
            ),
            JournalError::HistoryExists { .. } => Some(
                "a history is moved once, never merged: keep the journal that is in use, or empty the other one first"
                    .to_owned(),
            ),
            JournalError::RetiredEvent { .. } => Some(
                "no omsup release wrote this event (only tests of the journal did); keep a copy of the journal and start from a fresh state directory"
                    .to_owned(),
            ),
            JournalError::SchemaTooNew { .. } | JournalError::SharedSchemaTooNew { .. } => {
                Some("use the omsup version that wrote this journal, or a newer one".to_owned())
            }
            _ => None,
        }
    }
}
