//! The deployment lock: one apply, resume or rollback per deployment at a time.
//!
//! The lock is a single row of the journal's own SQLite database (`deployment_lock`), taken and
//! changed only inside `BEGIN IMMEDIATE` transactions, which SQLite serialises across threads
//! and processes. The row says who holds it (lock id, run id, user, host, pid, since) and a
//! heartbeat that a background tokio task refreshes while the lock is held. Every journal write
//! checks, in the same transaction, that the writer's lock still holds the row (fencing: a
//! holder whose lock was taken over cannot write another event).
//!
//! A lock is *stale* when its holder's process is gone (same host, pid not alive) or its
//! heartbeat is older than [`LockTiming::stale_after`]. Even a stale lock is taken over only
//! when the caller names its lock id (`--force-unlock <lock id>`), so nobody breaks a lock they
//! have not looked at. A live lock is never taken over.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::JournalError;
use crate::host;
use crate::ids::{LockId, RunId};
use crate::journal::Journal;
use crate::time::{Timestamp, human_duration};

/// How often the holder refreshes its heartbeat, and after how long without one a lock is
/// stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTiming {
    pub heartbeat_every: Duration,
    pub stale_after: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        Self {
            heartbeat_every: Duration::from_secs(5),
            stale_after: Duration::from_secs(60),
        }
    }
}

/// What the lock is taken for (shown to a second acquirer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockPurpose {
    Apply,
    Resume,
    Rollback,
}

impl LockPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LockPurpose::Apply => "apply",
            LockPurpose::Resume => "resume",
            LockPurpose::Rollback => "rollback",
        }
    }
}

/// A request for the lock ([`Journal::acquire_lock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// The run the lock is taken for (a new run's id, or the run being resumed).
    pub run_id: RunId,
    pub purpose: LockPurpose,
    /// Take over a *stale* lock with exactly this id (`--force-unlock`).
    pub force_unlock: Option<LockId>,
}

/// Whether a held lock's holder looks alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Staleness {
    /// Heartbeat recent, process not known to be gone.
    Live,
    /// Same host, and the holder's pid is not alive.
    ProcessGone,
    /// No heartbeat for longer than the grace period.
    Silent { silent_for_ms: u64 },
}

/// Who holds the lock, read from the lock row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub lock_id: LockId,
    pub run_id: RunId,
    /// `apply`, `resume` or `rollback`.
    pub purpose: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// Judged when the row was read.
    pub staleness: Staleness,
    /// When the row was read (for "last heartbeat 4s ago").
    pub observed_at: Timestamp,
}

impl LockHolder {
    pub fn is_stale(&self) -> bool {
        self.staleness != Staleness::Live
    }

    /// What the user can do about this holder.
    pub fn takeover_hint(&self) -> String {
        match self.staleness {
            Staleness::Live => format!(
                "wait for run `{}` to finish; if its process is dead, the lock becomes stale without a heartbeat and `--force-unlock {}` takes it over",
                self.run_id, self.lock_id
            ),
            Staleness::ProcessGone | Staleness::Silent { .. } => format!(
                "the lock is stale ({}); take it over with `--force-unlock {}`",
                self.staleness_reason(),
                self.lock_id
            ),
        }
    }

    /// `process 123 on host h is gone` / `no heartbeat for 2m 05s` / `holder alive`.
    pub fn staleness_reason(&self) -> String {
        match self.staleness {
            Staleness::Live => "holder alive".to_owned(),
            Staleness::ProcessGone => {
                format!("process {} on host `{}` is gone", self.pid, self.host)
            }
            Staleness::Silent { silent_for_ms } => format!(
                "no heartbeat for {}",
                human_duration(Duration::from_millis(silent_for_ms))
            ),
        }
    }

    pub(crate) fn from_row(row: &SqliteRow, timing: LockTiming) -> Result<Self, sqlx::Error> {
        let pid: i64 = row.try_get("pid")?;
        let pid = u32::try_from(pid).unwrap_or(0);
        let host: String = row.try_get("host")?;
        let heartbeat_at = Timestamp::from_unix_millis(row.try_get("heartbeat_unix_ms")?);
        let acquired_at = Timestamp::from_unix_millis(row.try_get("acquired_unix_ms")?);
        let observed_at = Timestamp::now();
        let silent_for = observed_at.duration_since(heartbeat_at);
        let staleness = if host == host::current_host() && host::process_alive(pid) == Some(false) {
            Staleness::ProcessGone
        } else if silent_for > timing.stale_after {
            Staleness::Silent {
                silent_for_ms: u64::try_from(silent_for.as_millis()).unwrap_or(u64::MAX),
            }
        } else {
            Staleness::Live
        };
        Ok(Self {
            lock_id: LockId::new(row.try_get::<String, _>("lock_id")?),
            run_id: RunId::new(row.try_get::<String, _>("run_id")?),
            purpose: row.try_get("purpose")?,
            user: row.try_get("user")?,
            host,
            pid,
            acquired_at,
            heartbeat_at,
            staleness,
            observed_at,
        })
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "run `{}` ({}, lock `{}`) of user `{}` on host `{}`, pid {}, since {}, last heartbeat {} ago",
            self.run_id,
            self.purpose,
            self.lock_id,
            self.user,
            self.host,
            self.pid,
            self.acquired_at,
            human_duration(self.observed_at.duration_since(self.heartbeat_at)),
        )?;
        if self.is_stale() {
            write!(formatter, " (stale: {})", self.staleness_reason())?;
        }
        Ok(())
    }
}

/// Shared between a [`DeploymentLock`] and the writers made with it.
#[derive(Debug)]
pub(crate) struct LockToken {
    pub(crate) lock_id: LockId,
    pub(crate) run_id: RunId,
    /// Set by the heartbeat when it finds the row gone or someone else's.
    pub(crate) lost: AtomicBool,
}

/// The held deployment lock. Release it with [`DeploymentLock::release`]; dropping it releases
/// it too (synchronously, on a helper thread), and a killed process leaves a lock that becomes
/// stale.
#[derive(Debug)]
pub struct DeploymentLock {
    pub(crate) journal: Journal,
    pub(crate) token: Arc<LockToken>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl DeploymentLock {
    pub(crate) fn held(journal: Journal, token: Arc<LockToken>, every: Duration) -> Self {
        let heartbeat = tokio::spawn(heartbeat_loop(journal.clone(), token.clone(), every));
        Self {
            journal,
            token,
            heartbeat: Some(heartbeat),
            released: false,
        }
    }

    pub fn lock_id(&self) -> &LockId {
        &self.token.lock_id
    }

    pub fn run_id(&self) -> &RunId {
        &self.token.run_id
    }

    /// True once the heartbeat found the lock taken over (writes will fail with `LockLost`).
    pub fn is_lost(&self) -> bool {
        self.token.lost.load(Ordering::SeqCst)
    }

    /// Stops the heartbeat and deletes the lock row (if it is still ours).
    pub async fn release(mut self) -> Result<(), JournalError> {
        self.released = true;
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        self.journal.delete_lock_row(&self.token.lock_id).await
    }
}

impl Drop for DeploymentLock {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if self.released {
            return;
        }
        // Drop cannot await: release on a helper thread with its own runtime and connection,
        // and wait for it so the lock is gone when drop returns.
        let journal = self.journal.clone();
        let lock_id = self.token.lock_id.clone();
        let releaser = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = runtime.block_on(journal.delete_lock_row_on_fresh_connection(&lock_id));
        });
        let _ = releaser.join();
    }
}

async fn heartbeat_loop(journal: Journal, token: Arc<LockToken>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match journal.beat(&token.lock_id).await {
            Ok(true) => {}
            Ok(false) => {
                token.lost.store(true, Ordering::SeqCst);
                return;
            }
            // A busy or briefly unavailable database: try again at the next beat.
            Err(_) => {}
        }
    }
}
