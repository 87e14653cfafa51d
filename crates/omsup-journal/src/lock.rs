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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use crate::error::JournalError;
use crate::host;
use crate::ids::{LockId, RunId};
use crate::journal::{Backend, Journal, Store, WriteTx};
use crate::shared::{SharedFence, SharedLock, SharedState};
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
    /// `omsup state migrate`: the history is copied between backends.
    Migrate,
    /// `omsup rehearse`: no run, but never beside one.
    Rehearse,
}

impl LockPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LockPurpose::Apply => "apply",
            LockPurpose::Resume => "resume",
            LockPurpose::Rollback => "rollback",
            LockPurpose::Migrate => "migrate",
            LockPurpose::Rehearse => "rehearse",
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
        Ok(Self::judged(
            HolderRow {
                lock_id: LockId::new(row.try_get::<String, _>("lock_id")?),
                run_id: RunId::new(row.try_get::<String, _>("run_id")?),
                purpose: row.try_get("purpose")?,
                user: row.try_get("user")?,
                host: row.try_get("host")?,
                pid: u32::try_from(pid).unwrap_or(0),
                acquired_at: Timestamp::from_unix_millis(row.try_get("acquired_unix_ms")?),
                heartbeat_at: Timestamp::from_unix_millis(row.try_get("heartbeat_unix_ms")?),
            },
            Timestamp::now(),
            timing,
        ))
    }

    /// A holder read at `observed_at` (by the clock that wrote its heartbeat), with its
    /// staleness judged: its process gone (same host), or no heartbeat for too long.
    pub(crate) fn judged(row: HolderRow, observed_at: Timestamp, timing: LockTiming) -> Self {
        let silent_for = observed_at.duration_since(row.heartbeat_at);
        let staleness =
            if row.host == host::current_host() && host::process_alive(row.pid) == Some(false) {
                Staleness::ProcessGone
            } else if silent_for > timing.stale_after {
                Staleness::Silent {
                    silent_for_ms: u64::try_from(silent_for.as_millis()).unwrap_or(u64::MAX),
                }
            } else {
                Staleness::Live
            };
        Self {
            lock_id: row.lock_id,
            run_id: row.run_id,
            purpose: row.purpose,
            user: row.user,
            host: row.host,
            pid: row.pid,
            acquired_at: row.acquired_at,
            heartbeat_at: row.heartbeat_at,
            staleness,
            observed_at,
        }
    }
}

/// `Ok` only when `force_unlock` names `holder`'s lock and that lock is stale (a take-over);
/// otherwise the refusal: held, another lock's id, or not stale.
pub(crate) fn refuse_unless_takeover(
    deployment: &str,
    holder: &LockHolder,
    force_unlock: Option<&LockId>,
) -> Result<(), JournalError> {
    let deployment = deployment.to_owned();
    let holder_box = || Box::new(holder.clone());
    match force_unlock {
        None => Err(JournalError::LockHeld {
            deployment,
            holder: holder_box(),
        }),
        Some(given) if *given != holder.lock_id => Err(JournalError::ForceUnlockMismatch {
            deployment,
            given: given.clone(),
            holder: holder_box(),
        }),
        Some(_) if !holder.is_stale() => Err(JournalError::LockNotStale {
            deployment,
            holder: holder_box(),
        }),
        Some(_) => Ok(()),
    }
}

/// Runs `release` to completion on a helper thread with a runtime of its own (for `Drop`,
/// which cannot await), and waits for it so the lock is gone when drop returns.
pub(crate) fn release_on_helper_thread<F>(release: F)
where
    F: std::future::Future<Output = Result<(), JournalError>> + Send + 'static,
{
    let releaser = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let _ = runtime.block_on(release);
    });
    let _ = releaser.join();
}

/// A lock row as stored, before its staleness is judged.
pub(crate) struct HolderRow {
    pub(crate) lock_id: LockId,
    pub(crate) run_id: RunId,
    pub(crate) purpose: String,
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) acquired_at: Timestamp,
    pub(crate) heartbeat_at: Timestamp,
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
    /// The same lock in the meta database server, once [`DeploymentLock::share`] took it:
    /// every write checks it too.
    pub(crate) shared: OnceLock<Arc<SharedFence>>,
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
    shared: Mutex<Option<SharedLock>>,
}

impl DeploymentLock {
    pub(crate) fn held(journal: Journal, token: Arc<LockToken>, every: Duration) -> Self {
        let heartbeat = tokio::spawn(heartbeat_loop(journal.clone(), token.clone(), every));
        Self {
            journal,
            token,
            heartbeat: Some(heartbeat),
            released: false,
            shared: Mutex::new(None),
        }
    }

    /// The lock of a journal in the meta database server: only the server's row (with its own
    /// heartbeat).
    fn held_in_server(journal: Journal, shared: SharedLock) -> Self {
        let token = Arc::new(LockToken {
            lock_id: shared.lock_id().clone(),
            run_id: shared.fence.run_id.clone(),
            lost: AtomicBool::new(false),
            shared: OnceLock::new(),
        });
        let _ = token.shared.set(shared.fence.clone());
        Self {
            journal,
            token,
            heartbeat: None,
            released: false,
            shared: Mutex::new(Some(shared)),
        }
    }

    /// Whether the lock holds in the meta database server (taken there by a shared journal, or
    /// shared with [`DeploymentLock::share`]).
    pub fn is_shared(&self) -> bool {
        self.token.shared.get().is_some()
    }

    /// Takes the same lock (same lock id, run and purpose) in the deployment's meta database
    /// server, under `key` (the deployment's rm database), so that it holds across machines.
    /// `force_unlock` takes over a stale holder there, as [`Journal::acquire_lock`] does
    /// locally. From then on every write is fenced by both, and [`DeploymentLock::release`]
    /// releases both. Nothing to do when the lock already holds there (a journal in the meta
    /// database server takes its lock there).
    pub async fn share(
        &self,
        state: &SharedState,
        key: &str,
        purpose: LockPurpose,
        force_unlock: Option<LockId>,
    ) -> Result<(), JournalError> {
        if self.is_shared() {
            return Ok(());
        }
        let request = |force_unlock: Option<LockId>| LockRequest {
            run_id: self.token.run_id.clone(),
            purpose,
            force_unlock,
        };
        let deployment = self.journal.deployment();
        let timing = self.journal.lock_timing();
        let lock_id = &self.token.lock_id;
        let first = request(force_unlock.clone());
        let shared = match state
            .acquire_lock(key, deployment, lock_id, &first, timing)
            .await
        {
            // The operator already took this very lock over here (`--force-unlock` with its id,
            // recorded in the journal) in an earlier command that stopped before reaching the
            // server, e.g. a resume refused for a changed plan file: that take-over counts.
            Err(JournalError::LockHeld { holder, .. })
                if force_unlock.is_none()
                    && holder.is_stale()
                    && self.journal.took_over(&holder.lock_id).await? =>
            {
                let again = request(Some(holder.lock_id.clone()));
                state
                    .acquire_lock(key, deployment, lock_id, &again, timing)
                    .await?
            }
            result => result?,
        };
        let _ = self.token.shared.set(shared.fence.clone());
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(shared);
        Ok(())
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
            || self.token.shared.get().is_some_and(|fence| fence.is_lost())
    }

    /// Stops the heartbeat and deletes the lock row (if it is still ours).
    pub async fn release(mut self) -> Result<(), JournalError> {
        self.released = true;
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        let shared = self
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let local = match self.journal.backend() {
            Backend::Local => self.journal.delete_lock_row(&self.token.lock_id).await,
            Backend::MetaDb => Ok(()),
        };
        if let Some(shared) = shared {
            shared.release().await?;
        }
        local
    }
}

impl Drop for DeploymentLock {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if self.released || self.journal.backend() == Backend::MetaDb {
            // A shared lock releases itself when dropped.
            return;
        }
        // Drop cannot await: release on a helper thread with its own connection.
        let journal = self.journal.clone();
        let lock_id = self.token.lock_id.clone();
        release_on_helper_thread(async move {
            journal.delete_lock_row_on_fresh_connection(&lock_id).await
        });
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

impl Journal {
    /// Takes the deployment lock, or says who holds it. With `force_unlock` naming the current
    /// holder's lock id, a *stale* lock is taken over (and the take-over recorded).
    pub async fn acquire_lock(&self, request: LockRequest) -> Result<DeploymentLock, JournalError> {
        let timing = self.lock_timing();
        let (pool, path) = match &self.inner.store {
            Store::Local { pool, path, .. } => (pool, path),
            Store::Shared { state, key } => {
                let shared = state
                    .acquire_lock(
                        key,
                        &self.inner.deployment,
                        &LockId::generate(),
                        &request,
                        timing,
                    )
                    .await?;
                return Ok(DeploymentLock::held_in_server(self.clone(), shared));
            }
        };
        let mut transaction =
            pool.begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|source| JournalError::Database {
                    path: path.clone(),
                    source,
                })?;
        let row = sqlx::query("SELECT * FROM deployment_lock WHERE singleton = 1")
            .fetch_optional(&mut *transaction)
            .await
            .map_err(|source| self.database_error(source))?;
        let lock_id = LockId::generate();
        let now = Timestamp::now();
        let user = host::current_user();
        let this_host = host::current_host();
        if let Some(row) = row {
            let holder =
                LockHolder::from_row(&row, timing).map_err(|source| self.database_error(source))?;
            refuse_unless_takeover(
                &self.inner.deployment,
                &holder,
                request.force_unlock.as_ref(),
            )?;
            sqlx::query(
                "INSERT INTO lock_takeovers (taken_at, old_lock_id, old_run_id, old_host, old_pid,
                     old_heartbeat, new_lock_id, new_run_id, by_user, on_host)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .bind(now.to_rfc3339())
            .bind(holder.lock_id.as_str())
            .bind(holder.run_id.as_str())
            .bind(&holder.host)
            .bind(i64::from(holder.pid))
            .bind(holder.heartbeat_at.to_rfc3339())
            .bind(lock_id.as_str())
            .bind(request.run_id.as_str())
            .bind(&user)
            .bind(&this_host)
            .execute(&mut *transaction)
            .await
            .map_err(|source| self.database_error(source))?;
            sqlx::query("DELETE FROM deployment_lock WHERE singleton = 1")
                .execute(&mut *transaction)
                .await
                .map_err(|source| self.database_error(source))?;
        }
        sqlx::query(
            "INSERT INTO deployment_lock (singleton, lock_id, run_id, purpose, user, host, pid,
                 acquired_unix_ms, heartbeat_unix_ms)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )
        .bind(lock_id.as_str())
        .bind(request.run_id.as_str())
        .bind(request.purpose.as_str())
        .bind(&user)
        .bind(&this_host)
        .bind(i64::from(std::process::id()))
        .bind(now.unix_millis())
        .execute(&mut *transaction)
        .await
        .map_err(|source| self.database_error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| self.database_error(source))?;
        let token = Arc::new(LockToken {
            lock_id,
            run_id: request.run_id,
            lost: AtomicBool::new(false),
            shared: OnceLock::new(),
        });
        Ok(DeploymentLock::held(
            self.clone(),
            token,
            timing.heartbeat_every,
        ))
    }

    /// Who holds the lock now, if anyone (staleness judged at the time of reading).
    pub async fn lock_holder(&self) -> Result<Option<LockHolder>, JournalError> {
        let pool = match &self.inner.store {
            Store::Local { pool, .. } => pool,
            Store::Shared { state, key } => {
                return state.lock_holder(key, self.lock_timing()).await;
            }
        };
        let row = sqlx::query("SELECT * FROM deployment_lock WHERE singleton = 1")
            .fetch_optional(pool)
            .await
            .map_err(|source| self.database_error(source))?;
        row.map(|row| LockHolder::from_row(&row, self.lock_timing()))
            .transpose()
            .map_err(|source| self.database_error(source))
    }

    /// Whether a lock with `lock_id` was taken over in this journal (`--force-unlock`).
    pub(crate) async fn took_over(&self, lock_id: &LockId) -> Result<bool, JournalError> {
        let Some(pool) = self.local_pool() else {
            return Ok(false);
        };
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM lock_takeovers WHERE old_lock_id = ?1 LIMIT 1")
                .bind(lock_id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(|source| self.database_error(source))?;
        Ok(found.is_some())
    }

    /// Refreshes the heartbeat; `false` when the row is no longer this lock's.
    pub(crate) async fn beat(&self, lock_id: &LockId) -> Result<bool, JournalError> {
        let Some(pool) = self.local_pool() else {
            return Ok(false);
        };
        let result = sqlx::query(
            "UPDATE deployment_lock SET heartbeat_unix_ms = ?1 WHERE singleton = 1 AND lock_id = ?2",
        )
        .bind(Timestamp::now().unix_millis())
        .bind(lock_id.as_str())
        .execute(pool)
        .await
        .map_err(|source| self.database_error(source))?;
        Ok(result.rows_affected() == 1)
    }

    pub(crate) async fn delete_lock_row(&self, lock_id: &LockId) -> Result<(), JournalError> {
        let Some(pool) = self.local_pool() else {
            return Ok(());
        };
        sqlx::query("DELETE FROM deployment_lock WHERE singleton = 1 AND lock_id = ?1")
            .bind(lock_id.as_str())
            .execute(pool)
            .await
            .map_err(|source| self.database_error(source))?;
        Ok(())
    }

    /// For `Drop`: a connection of its own, usable from another runtime.
    pub(crate) async fn delete_lock_row_on_fresh_connection(
        &self,
        lock_id: &LockId,
    ) -> Result<(), JournalError> {
        let Store::Local {
            connect_options, ..
        } = &self.inner.store
        else {
            return Ok(());
        };
        let mut connection = connect_options
            .clone()
            .connect()
            .await
            .map_err(|source| self.database_error(source))?;
        sqlx::query("DELETE FROM deployment_lock WHERE singleton = 1 AND lock_id = ?1")
            .bind(lock_id.as_str())
            .execute(&mut connection)
            .await
            .map_err(|source| self.database_error(source))?;
        connection
            .close()
            .await
            .map_err(|source| self.database_error(source))
    }

    fn local_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.inner.store {
            Store::Local { pool, .. } => Some(pool),
            Store::Shared { .. } => None,
        }
    }

    /// Fencing, inside a write transaction: the lock row must still be `token`'s. In the
    /// server the row is read `FOR UPDATE`, so a take-over waits for this write to commit and
    /// every write of the deployment is serialised by it.
    pub(crate) async fn check_lock(
        &self,
        transaction: &mut WriteTx,
        token: &LockToken,
    ) -> Result<(), JournalError> {
        let holder: Option<String> = match (transaction, &self.inner.store) {
            (WriteTx::Local(transaction, _), _) => {
                sqlx::query_scalar("SELECT lock_id FROM deployment_lock WHERE singleton = 1")
                    .fetch_optional(&mut **transaction)
                    .await
            }
            (WriteTx::Shared(transaction), Store::Shared { state, key }) => {
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT lock_id FROM {} WHERE lock_key = ? FOR UPDATE",
                    state.table("deployment_locks")
                )))
                .bind(key)
                .fetch_optional(&mut **transaction)
                .await
            }
            (WriteTx::Shared(_), Store::Local { .. }) => {
                unreachable!("a local journal writes in SQLite")
            }
        }
        .map_err(|source| self.database_error(source))?;
        if holder.as_deref() == Some(token.lock_id.as_str()) {
            match (self.backend(), token.shared.get()) {
                (Backend::Local, Some(fence)) => fence.check(&self.inner.deployment).await,
                _ => Ok(()),
            }
        } else {
            token.lost.store(true, Ordering::SeqCst);
            if let Some(fence) = token.shared.get() {
                fence.mark_lost();
            }
            Err(JournalError::LockLost {
                deployment: self.inner.deployment.clone(),
                lock_id: token.lock_id.clone(),
                run_id: token.run_id.clone(),
            })
        }
    }
}
