//! The journal: one SQLite database per deployment (`<state dir>/<deployment>.journal.sqlite`)
//! holding the runs, their append-only event log and the deployment lock; [`RunWriter`] appends
//! events through the state machine of [`crate::event`]; queries replay runs for `resume`,
//! `rollback`, `status` and `history`.
//!
//! Durability: the database uses a rollback journal (`journal_mode=DELETE`, no WAL) with
//! `synchronous=FULL`, and every append is its own `BEGIN IMMEDIATE` transaction. An append
//! returns only after the commit, i.e. after SQLite has synced the event to disk: an intent
//! returned to the caller survives a crash of the process or the machine.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, Transaction};

use crate::error::JournalError;
use crate::event::{self, EventKind, JournalEvent, RunState, StepRecord, apply_event};
use crate::host;
use crate::ids::{LockId, RunId, StepId};
use crate::lock::{DeploymentLock, LockHolder, LockRequest, LockTiming, LockToken};
use crate::run::{NewRun, PlannedStep, RunInfo, RunKind, RunOutcome};
use crate::time::Timestamp;

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// The schema, applied idempotently when a journal is opened.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS journal_meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS runs (
        ordinal          INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id           TEXT NOT NULL UNIQUE,
        kind             TEXT NOT NULL CHECK (kind IN ('apply', 'rollback')),
        undoes_run_id    TEXT REFERENCES runs (run_id),
        deployment       TEXT NOT NULL,
        plan_fingerprint TEXT NOT NULL,
        plan_file_path   TEXT NOT NULL,
        plan_file_sha256 TEXT NOT NULL,
        planned_steps    TEXT NOT NULL,
        started_by       TEXT NOT NULL,
        started_on_host  TEXT NOT NULL,
        started_pid      INTEGER NOT NULL,
        omsup_version    TEXT NOT NULL,
        started_at       TEXT NOT NULL,
        finished_at      TEXT,
        outcome          TEXT NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed')),
        resume_count     INTEGER NOT NULL DEFAULT 0,
        last_resumed_at  TEXT,
        document         TEXT NOT NULL DEFAULT 'null'
    )",
    "CREATE TABLE IF NOT EXISTS events (
        run_id    TEXT NOT NULL REFERENCES runs (run_id),
        seq       INTEGER NOT NULL CHECK (seq >= 1),
        step_id   TEXT NOT NULL,
        step_kind TEXT NOT NULL,
        event     TEXT NOT NULL CHECK (event IN ('intent', 'started', 'succeeded', 'failed',
                                                 'undo_started', 'undo_finished', 'undo_failed')),
        attempt   INTEGER NOT NULL CHECK (attempt >= 1),
        at        TEXT NOT NULL,
        payload   TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    )",
    "CREATE INDEX IF NOT EXISTS events_by_step ON events (run_id, step_id, seq)",
    "CREATE TRIGGER IF NOT EXISTS events_are_append_only BEFORE UPDATE ON events
     BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END",
    "CREATE TABLE IF NOT EXISTS deployment_lock (
        singleton         INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
        lock_id           TEXT NOT NULL,
        run_id            TEXT NOT NULL,
        purpose           TEXT NOT NULL,
        user              TEXT NOT NULL,
        host              TEXT NOT NULL,
        pid               INTEGER NOT NULL,
        acquired_unix_ms  INTEGER NOT NULL,
        heartbeat_unix_ms INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS lock_takeovers (
        taken_at        TEXT NOT NULL,
        old_lock_id     TEXT NOT NULL,
        old_run_id      TEXT NOT NULL,
        old_host        TEXT NOT NULL,
        old_pid         INTEGER NOT NULL,
        old_heartbeat   TEXT NOT NULL,
        new_lock_id     TEXT NOT NULL,
        new_run_id      TEXT NOT NULL,
        by_user         TEXT NOT NULL,
        on_host         TEXT NOT NULL
    )",
];

/// The journal file of `deployment` in `state_dir`.
pub fn journal_path(state_dir: &Path, deployment: &str) -> PathBuf {
    state_dir.join(format!("{deployment}.journal.sqlite"))
}

/// The deployments that have a journal in `state_dir`, sorted (empty when the directory does
/// not exist).
pub fn journals_in(state_dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut deployments = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(deployment) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".journal.sqlite"))
            && !deployment.is_empty()
        {
            deployments.push(deployment.to_owned());
        }
    }
    deployments.sort();
    Ok(deployments)
}

fn valid_deployment_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An open journal (cheap to clone: an `Arc` around a connection pool).
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<JournalInner>,
}

#[derive(Debug)]
struct JournalInner {
    path: PathBuf,
    deployment: String,
    pool: SqlitePool,
    connect_options: SqliteConnectOptions,
    secrets: RwLock<Vec<String>>,
    lock_timing: RwLock<LockTiming>,
}

/// What an append recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub seq: u64,
    pub attempt: u32,
    pub at: Timestamp,
    /// The step after the event.
    pub step: StepRecord,
}

impl Journal {
    /// Opens (creating the directory and database if needed) the journal of `deployment` in
    /// `state_dir`.
    pub async fn open(state_dir: &Path, deployment: &str) -> Result<Self, JournalError> {
        if !valid_deployment_name(deployment) {
            return Err(JournalError::InvalidDeploymentName {
                name: deployment.to_owned(),
            });
        }
        // The state directory is private to its owner (0700 when omsup creates it): the journal
        // holds no secret, but it says where the backups are and what ran where.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| JournalError::StateDirectory {
                path: state_dir.to_owned(),
                source,
            })?;
        Self::connect(journal_path(state_dir, deployment), deployment, true).await
    }

    /// Opens an existing journal; `NoJournal` when there is none (for `status`, `history`).
    pub async fn open_existing(state_dir: &Path, deployment: &str) -> Result<Self, JournalError> {
        let path = journal_path(state_dir, deployment);
        if !valid_deployment_name(deployment) || !path.is_file() {
            return Err(JournalError::NoJournal {
                deployment: deployment.to_owned(),
                path,
            });
        }
        Self::connect(path, deployment, false).await
    }

    async fn connect(path: PathBuf, deployment: &str, create: bool) -> Result<Self, JournalError> {
        let database_error = |source| JournalError::Database {
            path: path.clone(),
            source,
        };
        let connect_options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Delete)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect_options.clone())
            .await
            .map_err(database_error)?;
        let mut transaction = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(database_error)?;
        for statement in SCHEMA {
            sqlx::query(*statement)
                .execute(&mut *transaction)
                .await
                .map_err(database_error)?;
        }
        let found: Option<String> =
            sqlx::query_scalar("SELECT value FROM journal_meta WHERE key = 'schema_version'")
                .fetch_optional(&mut *transaction)
                .await
                .map_err(database_error)?;
        match found.and_then(|version| version.parse::<i64>().ok()) {
            Some(version) if version > SCHEMA_VERSION => {
                return Err(JournalError::SchemaTooNew {
                    path,
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
            None => {
                sqlx::query(
                    "INSERT INTO journal_meta (key, value) VALUES ('schema_version', ?1), ('deployment', ?2)",
                )
                .bind(SCHEMA_VERSION.to_string())
                .bind(deployment)
                .execute(&mut *transaction)
                .await
                .map_err(database_error)?;
            }
        }
        transaction.commit().await.map_err(database_error)?;
        Ok(Self {
            inner: Arc::new(JournalInner {
                path,
                deployment: deployment.to_owned(),
                pool,
                connect_options,
                secrets: RwLock::new(Vec::new()),
                lock_timing: RwLock::new(LockTiming::default()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn deployment(&self) -> &str {
        &self.inner.deployment
    }

    /// Refuse, from now on, any payload or error message containing `secret` (e.g. the meta
    /// database password). Empty strings are ignored.
    pub fn register_secret(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        if let Ok(mut secrets) = self.inner.secrets.write() {
            secrets.push(secret.to_owned());
        }
    }

    /// Heartbeat interval and stale grace period (defaults: 5 s and 60 s).
    pub fn set_lock_timing(&self, timing: LockTiming) {
        if let Ok(mut current) = self.inner.lock_timing.write() {
            *current = timing;
        }
    }

    pub fn lock_timing(&self) -> LockTiming {
        self.inner
            .lock_timing
            .read()
            .map(|timing| *timing)
            .unwrap_or_default()
    }

    fn database_error(&self, source: sqlx::Error) -> JournalError {
        JournalError::Database {
            path: self.inner.path.clone(),
            source,
        }
    }

    async fn immediate(&self) -> Result<Transaction<'static, Sqlite>, JournalError> {
        self.inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| self.database_error(source))
    }

    // ---------------------------------------------------------------- lock

    /// Takes the deployment lock, or says who holds it. With `force_unlock` naming the current
    /// holder's lock id, a *stale* lock is taken over (and the take-over recorded).
    pub async fn acquire_lock(&self, request: LockRequest) -> Result<DeploymentLock, JournalError> {
        let timing = self.lock_timing();
        let mut transaction = self.immediate().await?;
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
            let deployment = self.inner.deployment.clone();
            match &request.force_unlock {
                None => {
                    return Err(JournalError::LockHeld {
                        deployment,
                        holder: Box::new(holder),
                    });
                }
                Some(given) if *given != holder.lock_id => {
                    return Err(JournalError::ForceUnlockMismatch {
                        deployment,
                        given: given.clone(),
                        holder: Box::new(holder),
                    });
                }
                Some(_) if !holder.is_stale() => {
                    return Err(JournalError::LockNotStale {
                        deployment,
                        holder: Box::new(holder),
                    });
                }
                Some(_) => {
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
            }
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
        });
        Ok(DeploymentLock::held(
            self.clone(),
            token,
            timing.heartbeat_every,
        ))
    }

    /// Who holds the lock now, if anyone (staleness judged at the time of reading).
    pub async fn lock_holder(&self) -> Result<Option<LockHolder>, JournalError> {
        let row = sqlx::query("SELECT * FROM deployment_lock WHERE singleton = 1")
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        row.map(|row| LockHolder::from_row(&row, self.lock_timing()))
            .transpose()
            .map_err(|source| self.database_error(source))
    }

    /// Refreshes the heartbeat; `false` when the row is no longer this lock's.
    pub(crate) async fn beat(&self, lock_id: &LockId) -> Result<bool, JournalError> {
        let result = sqlx::query(
            "UPDATE deployment_lock SET heartbeat_unix_ms = ?1 WHERE singleton = 1 AND lock_id = ?2",
        )
        .bind(Timestamp::now().unix_millis())
        .bind(lock_id.as_str())
        .execute(&self.inner.pool)
        .await
        .map_err(|source| self.database_error(source))?;
        Ok(result.rows_affected() == 1)
    }

    pub(crate) async fn delete_lock_row(&self, lock_id: &LockId) -> Result<(), JournalError> {
        sqlx::query("DELETE FROM deployment_lock WHERE singleton = 1 AND lock_id = ?1")
            .bind(lock_id.as_str())
            .execute(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        Ok(())
    }

    /// For `Drop`: a connection of its own, usable from another runtime.
    pub(crate) async fn delete_lock_row_on_fresh_connection(
        &self,
        lock_id: &LockId,
    ) -> Result<(), JournalError> {
        let mut connection = self
            .inner
            .connect_options
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

    // ---------------------------------------------------------------- runs

    /// Records a new run (id = the lock's run id) and returns its writer.
    pub async fn begin_run(
        &self,
        lock: &DeploymentLock,
        new_run: NewRun,
    ) -> Result<RunWriter, JournalError> {
        let run_id = lock.run_id().clone();
        let mut transaction = self.immediate().await?;
        self.check_lock(&mut transaction, lock.token.as_ref())
            .await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE run_id = ?1")
            .bind(run_id.as_str())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(|source| self.database_error(source))?;
        if exists.is_some() {
            return Err(JournalError::RunExists { run_id });
        }
        let planned_steps =
            serde_json::to_string(&new_run.planned_steps).map_err(JournalError::Payload)?;
        if let Some(location) = self.find_secret(&new_run.document, None) {
            return Err(JournalError::SecretInPayload {
                run_id,
                step_id: StepId::new("(run document)"),
                location,
            });
        }
        let document = serde_json::to_string(&new_run.document).map_err(JournalError::Payload)?;
        sqlx::query(
            "INSERT INTO runs (run_id, kind, undoes_run_id, deployment, plan_fingerprint,
                 plan_file_path, plan_file_sha256, planned_steps, started_by, started_on_host,
                 started_pid, omsup_version, started_at, outcome, document)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'running', ?14)",
        )
        .bind(run_id.as_str())
        .bind(new_run.kind.as_str())
        .bind(new_run.undoes.as_ref().map(RunId::as_str))
        .bind(&self.inner.deployment)
        .bind(&new_run.plan_fingerprint)
        .bind(new_run.plan_file_path.to_string_lossy().into_owned())
        .bind(&new_run.plan_file_sha256)
        .bind(planned_steps)
        .bind(host::current_user())
        .bind(host::current_host())
        .bind(i64::from(std::process::id()))
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(Timestamp::now().to_rfc3339())
        .bind(document)
        .execute(&mut *transaction)
        .await
        .map_err(|source| self.database_error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| self.database_error(source))?;
        Ok(self.writer(lock, run_id))
    }

    /// Continues an existing run (`omsup resume`): marks it running again and counts the resume.
    pub async fn resume_run(
        &self,
        lock: &DeploymentLock,
        run_id: &RunId,
    ) -> Result<RunWriter, JournalError> {
        let mut transaction = self.immediate().await?;
        self.check_lock(&mut transaction, lock.token.as_ref())
            .await?;
        let result = sqlx::query(
            "UPDATE runs SET outcome = 'running', finished_at = NULL,
                 resume_count = resume_count + 1, last_resumed_at = ?2
             WHERE run_id = ?1",
        )
        .bind(run_id.as_str())
        .bind(Timestamp::now().to_rfc3339())
        .execute(&mut *transaction)
        .await
        .map_err(|source| self.database_error(source))?;
        if result.rows_affected() == 0 {
            return Err(JournalError::RunNotFound {
                run_id: run_id.clone(),
            });
        }
        transaction
            .commit()
            .await
            .map_err(|source| self.database_error(source))?;
        Ok(self.writer(lock, run_id.clone()))
    }

    /// A writer for another run without changing its state: a rollback uses it to mark the
    /// forward run's steps `UndoStarted`/`UndoFinished`.
    pub async fn annotate_run(
        &self,
        lock: &DeploymentLock,
        run_id: &RunId,
    ) -> Result<RunWriter, JournalError> {
        self.run_info(run_id).await?;
        Ok(self.writer(lock, run_id.clone()))
    }

    fn writer(&self, lock: &DeploymentLock, run_id: RunId) -> RunWriter {
        RunWriter {
            journal: self.clone(),
            run_id,
            lock: lock.token.clone(),
        }
    }

    async fn check_lock(
        &self,
        transaction: &mut Transaction<'static, Sqlite>,
        token: &LockToken,
    ) -> Result<(), JournalError> {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT lock_id FROM deployment_lock WHERE singleton = 1")
                .fetch_optional(&mut **transaction)
                .await
                .map_err(|source| self.database_error(source))?;
        if holder.as_deref() == Some(token.lock_id.as_str()) {
            Ok(())
        } else {
            token.lost.store(true, Ordering::SeqCst);
            Err(JournalError::LockLost {
                deployment: self.inner.deployment.clone(),
                lock_id: token.lock_id.clone(),
                run_id: token.run_id.clone(),
            })
        }
    }

    // ---------------------------------------------------------------- queries

    /// Every run, oldest first.
    pub async fn run_infos(&self) -> Result<Vec<RunInfo>, JournalError> {
        let rows = sqlx::query("SELECT * FROM runs ORDER BY ordinal")
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        rows.iter().map(|row| self.run_info_from_row(row)).collect()
    }

    pub async fn run_info(&self, run_id: &RunId) -> Result<RunInfo, JournalError> {
        let row = sqlx::query("SELECT * FROM runs WHERE run_id = ?1")
            .bind(run_id.as_str())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        match row {
            Some(row) => self.run_info_from_row(&row),
            None => Err(JournalError::RunNotFound {
                run_id: run_id.clone(),
            }),
        }
    }

    /// A run replayed from its events (rejecting illegal transitions).
    pub async fn run(&self, run_id: &RunId) -> Result<RunState, JournalError> {
        let info = self.run_info(run_id).await?;
        let events = self.events(run_id).await?;
        event::replay(info, &events)
    }

    /// The document the run was begun with ([`NewRun::document`]): what it executes.
    pub async fn run_document(&self, run_id: &RunId) -> Result<Value, JournalError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT document FROM runs WHERE run_id = ?1")
                .bind(run_id.as_str())
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(|source| self.database_error(source))?;
        let text = text.ok_or_else(|| JournalError::RunNotFound {
            run_id: run_id.clone(),
        })?;
        serde_json::from_str(&text).map_err(JournalError::Payload)
    }

    /// Every run, replayed, oldest first.
    pub async fn runs(&self) -> Result<Vec<RunState>, JournalError> {
        let mut runs = Vec::new();
        for info in self.run_infos().await? {
            let events = self.events(&info.run_id).await?;
            runs.push(event::replay(info, &events)?);
        }
        Ok(runs)
    }

    /// The most recent run of any kind.
    pub async fn last_run(&self) -> Result<Option<RunState>, JournalError> {
        let run_id: Option<String> =
            sqlx::query_scalar("SELECT run_id FROM runs ORDER BY ordinal DESC LIMIT 1")
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(|source| self.database_error(source))?;
        match run_id {
            Some(run_id) => Ok(Some(self.run(&RunId::new(run_id)).await?)),
            None => Ok(None),
        }
    }

    /// The run `omsup resume` continues: the most recent run, unless it succeeded. (A run that
    /// was rolled back is followed by its rollback run, so it is not resumable; an interrupted
    /// rollback is.)
    pub async fn unfinished_run(&self) -> Result<Option<RunState>, JournalError> {
        Ok(self
            .last_run()
            .await?
            .filter(|run| run.info.outcome != RunOutcome::Succeeded))
    }

    /// The most recent apply run (what `omsup rollback` undoes by default).
    pub async fn last_apply_run(&self) -> Result<Option<RunState>, JournalError> {
        let run_id: Option<String> = sqlx::query_scalar(
            "SELECT run_id FROM runs WHERE kind = 'apply' ORDER BY ordinal DESC LIMIT 1",
        )
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|source| self.database_error(source))?;
        match run_id {
            Some(run_id) => Ok(Some(self.run(&RunId::new(run_id)).await?)),
            None => Ok(None),
        }
    }

    /// The rollback runs that undo `run_id`, oldest first.
    pub async fn rollbacks_of(&self, run_id: &RunId) -> Result<Vec<RunInfo>, JournalError> {
        let rows = sqlx::query("SELECT * FROM runs WHERE undoes_run_id = ?1 ORDER BY ordinal")
            .bind(run_id.as_str())
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        rows.iter().map(|row| self.run_info_from_row(row)).collect()
    }

    /// The raw event log of a run, in seq order (not checked; see [`Journal::run`]).
    pub async fn events(&self, run_id: &RunId) -> Result<Vec<JournalEvent>, JournalError> {
        let rows = sqlx::query("SELECT * FROM events WHERE run_id = ?1 ORDER BY seq")
            .bind(run_id.as_str())
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        rows.iter().map(|row| self.event_from_row(row)).collect()
    }

    fn run_info_from_row(&self, row: &SqliteRow) -> Result<RunInfo, JournalError> {
        let get_text = |column: &str| -> Result<String, JournalError> {
            row.try_get::<String, _>(column)
                .map_err(|source| self.database_error(source))
        };
        let get_optional = |column: &str| -> Result<Option<String>, JournalError> {
            row.try_get::<Option<String>, _>(column)
                .map_err(|source| self.database_error(source))
        };
        let get_integer = |column: &str| -> Result<i64, JournalError> {
            row.try_get::<i64, _>(column)
                .map_err(|source| self.database_error(source))
        };
        let run_id = RunId::new(get_text("run_id")?);
        let corrupt = |detail: String| JournalError::Corrupt {
            run_id: run_id.clone(),
            seq: 0,
            detail,
        };
        let timestamp = |text: String| {
            Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| corrupt(format!("`{text}` is not an RFC 3339 UTC time")))
        };
        let kind_text = get_text("kind")?;
        let outcome_text = get_text("outcome")?;
        let planned_steps: Vec<PlannedStep> = serde_json::from_str(&get_text("planned_steps")?)
            .map_err(|error| corrupt(format!("planned steps: {error}")))?;
        Ok(RunInfo {
            kind: RunKind::parse(&kind_text)
                .ok_or_else(|| corrupt(format!("unknown run kind `{kind_text}`")))?,
            undoes: get_optional("undoes_run_id")?.map(RunId::new),
            deployment: get_text("deployment")?,
            plan_fingerprint: get_text("plan_fingerprint")?,
            plan_file_path: PathBuf::from(get_text("plan_file_path")?),
            plan_file_sha256: get_text("plan_file_sha256")?,
            planned_steps,
            started_by: get_text("started_by")?,
            started_on_host: get_text("started_on_host")?,
            started_pid: u32::try_from(get_integer("started_pid")?).unwrap_or(0),
            omsup_version: get_text("omsup_version")?,
            started_at: timestamp(get_text("started_at")?)?,
            finished_at: get_optional("finished_at")?.map(timestamp).transpose()?,
            outcome: RunOutcome::parse(&outcome_text)
                .ok_or_else(|| corrupt(format!("unknown run outcome `{outcome_text}`")))?,
            resume_count: u32::try_from(get_integer("resume_count")?).unwrap_or(0),
            last_resumed_at: get_optional("last_resumed_at")?
                .map(timestamp)
                .transpose()?,
            run_id: run_id.clone(),
        })
    }

    fn event_from_row(&self, row: &SqliteRow) -> Result<JournalEvent, JournalError> {
        let database_error = |source| self.database_error(source);
        let run_id = RunId::new(row.try_get::<String, _>("run_id").map_err(database_error)?);
        let seq = u64::try_from(row.try_get::<i64, _>("seq").map_err(database_error)?).unwrap_or(0);
        let corrupt = |detail: String| JournalError::Corrupt {
            run_id: run_id.clone(),
            seq,
            detail,
        };
        let event_name: String = row.try_get("event").map_err(database_error)?;
        let at_text: String = row.try_get("at").map_err(database_error)?;
        let payload_text: String = row.try_get("payload").map_err(database_error)?;
        Ok(JournalEvent {
            step_id: StepId::new(
                row.try_get::<String, _>("step_id")
                    .map_err(database_error)?,
            ),
            step_kind: row.try_get("step_kind").map_err(database_error)?,
            kind: EventKind::parse(&event_name)
                .ok_or_else(|| corrupt(format!("unknown event `{event_name}`")))?,
            attempt: u32::try_from(row.try_get::<i64, _>("attempt").map_err(database_error)?)
                .map_err(|_| corrupt("negative attempt".to_owned()))?,
            at: Timestamp::parse_rfc3339(&at_text)
                .ok_or_else(|| corrupt(format!("`{at_text}` is not an RFC 3339 UTC time")))?,
            payload: Value::from_str(&payload_text)
                .map_err(|error| corrupt(format!("payload is not JSON: {error}")))?,
            run_id: run_id.clone(),
            seq,
        })
    }

    /// Where in `payload` a registered secret appears (a JSON path), if anywhere.
    fn find_secret(&self, payload: &Value, extra_text: Option<&str>) -> Option<String> {
        let secrets = self.inner.secrets.read().ok()?;
        if secrets.is_empty() {
            return None;
        }
        let contains_secret = |text: &str| secrets.iter().any(|secret| text.contains(secret));
        if let Some(text) = extra_text
            && contains_secret(text)
        {
            return Some("error".to_owned());
        }
        fn walk(
            value: &Value,
            path: &mut String,
            contains_secret: &dyn Fn(&str) -> bool,
        ) -> Option<String> {
            match value {
                Value::String(text) if contains_secret(text) => Some(path.clone()),
                Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
                    let length = path.len();
                    path.push_str(&format!("[{index}]"));
                    let found = walk(item, path, contains_secret);
                    path.truncate(length);
                    found
                }),
                Value::Object(map) => map.iter().find_map(|(key, item)| {
                    let length = path.len();
                    path.push('.');
                    path.push_str(if contains_secret(key) { "<key>" } else { key });
                    let found = if contains_secret(key) {
                        Some(path.clone())
                    } else {
                        walk(item, path, contains_secret)
                    };
                    path.truncate(length);
                    found
                }),
                _ => None,
            }
        }
        let mut path = "$".to_owned();
        walk(payload, &mut path, &contains_secret)
    }
}

/// Appends events of one run, each durable when the call returns. Cheap to clone; clones may
/// be used concurrently from parallel steps (appends are serialised by SQLite).
#[derive(Debug, Clone)]
pub struct RunWriter {
    journal: Journal,
    run_id: RunId,
    lock: Arc<LockToken>,
}

impl RunWriter {
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The durable promise, written before the side effect. Attempt 1, or the previous
    /// attempt + 1 after `Failed`. `payload`: what the step is about to do (no secrets).
    pub async fn intent(
        &self,
        step_id: &str,
        step_kind: &str,
        payload: Value,
    ) -> Result<Appended, JournalError> {
        self.append(step_id, Some(step_kind), EventKind::Intent, payload)
            .await
    }

    /// Optional: the step began acting.
    pub async fn started(&self, step_id: &str) -> Result<Appended, JournalError> {
        self.append(step_id, None, EventKind::Started, Value::Null)
            .await
    }

    /// The step is done; `outputs` are what later steps and rollback read back with
    /// [`RunState::output_of`].
    pub async fn succeeded(&self, step_id: &str, outputs: Value) -> Result<Appended, JournalError> {
        self.append(step_id, None, EventKind::Succeeded, outputs)
            .await
    }

    /// The step failed: stored as `{"error": error, "details": details}`.
    pub async fn failed(
        &self,
        step_id: &str,
        error: &str,
        details: Value,
    ) -> Result<Appended, JournalError> {
        let payload = serde_json::json!({ "error": error, "details": details });
        self.append(step_id, None, EventKind::Failed, payload).await
    }

    /// Resume found an in-flight step *not* done: closes the interrupted attempt as `Failed`
    /// (`{"error": "interrupted: ...", "interrupted": true, "details": {"observed": ...}}`) so
    /// that a new `intent` may follow.
    pub async fn interrupted(
        &self,
        step_id: &str,
        observed: &str,
    ) -> Result<Appended, JournalError> {
        let payload = serde_json::json!({
            "error": format!("interrupted: {observed}"),
            "interrupted": true,
            "details": { "observed": observed },
        });
        self.append(step_id, None, EventKind::Failed, payload).await
    }

    pub async fn undo_started(
        &self,
        step_id: &str,
        payload: Value,
    ) -> Result<Appended, JournalError> {
        self.append(step_id, None, EventKind::UndoStarted, payload)
            .await
    }

    pub async fn undo_finished(
        &self,
        step_id: &str,
        outputs: Value,
    ) -> Result<Appended, JournalError> {
        self.append(step_id, None, EventKind::UndoFinished, outputs)
            .await
    }

    pub async fn undo_failed(
        &self,
        step_id: &str,
        error: &str,
        details: Value,
    ) -> Result<Appended, JournalError> {
        let payload = serde_json::json!({ "error": error, "details": details });
        self.append(step_id, None, EventKind::UndoFailed, payload)
            .await
    }

    /// Appends any event after checking the transition against the step's journaled events,
    /// the lock (fencing) and the registered secrets. `step_kind` is required for a step's
    /// first intent and must match it afterwards (`None`: the step's recorded kind).
    pub async fn append(
        &self,
        step_id: &str,
        step_kind: Option<&str>,
        kind: EventKind,
        payload: Value,
    ) -> Result<Appended, JournalError> {
        let journal = &self.journal;
        let error_text = matches!(kind, EventKind::Failed | EventKind::UndoFailed)
            .then(|| event::error_message_of(&payload));
        if let Some(location) = journal
            .find_secret(&payload, error_text.as_deref())
            .or_else(|| journal.find_secret(&Value::String(step_id.to_owned()), None))
        {
            return Err(JournalError::SecretInPayload {
                run_id: self.run_id.clone(),
                step_id: StepId::new(step_id),
                location,
            });
        }
        let mut transaction = journal.immediate().await?;
        journal
            .check_lock(&mut transaction, self.lock.as_ref())
            .await?;
        let rows =
            sqlx::query("SELECT * FROM events WHERE run_id = ?1 AND step_id = ?2 ORDER BY seq")
                .bind(self.run_id.as_str())
                .bind(step_id)
                .fetch_all(&mut *transaction)
                .await
                .map_err(|source| journal.database_error(source))?;
        let mut record: Option<StepRecord> = None;
        for row in &rows {
            let previous = journal.event_from_row(row)?;
            let next = apply_event(record.as_ref(), &previous).map_err(|illegal| {
                JournalError::IllegalTransition {
                    run_id: self.run_id.clone(),
                    seq: previous.seq,
                    step_id: previous.step_id.clone(),
                    from: illegal.from,
                    event: illegal.event,
                    reason: illegal.reason,
                }
            })?;
            record = Some(next);
        }
        let last_seq: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?1")
                .bind(self.run_id.as_str())
                .fetch_one(&mut *transaction)
                .await
                .map_err(|source| journal.database_error(source))?;
        let seq = u64::try_from(last_seq).unwrap_or(0) + 1;
        let step_kind = step_kind
            .map(str::to_owned)
            .or_else(|| record.as_ref().map(|record| record.step_kind.clone()))
            .unwrap_or_default();
        let event = JournalEvent {
            run_id: self.run_id.clone(),
            seq,
            step_id: StepId::new(step_id),
            step_kind,
            kind,
            attempt: event::expected_attempt(record.as_ref(), kind),
            at: Timestamp::now(),
            payload,
        };
        let step = apply_event(record.as_ref(), &event).map_err(|illegal| {
            JournalError::IllegalTransition {
                run_id: self.run_id.clone(),
                seq,
                step_id: event.step_id.clone(),
                from: illegal.from,
                event: illegal.event,
                reason: illegal.reason,
            }
        })?;
        sqlx::query(
            "INSERT INTO events (run_id, seq, step_id, step_kind, event, attempt, at, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(self.run_id.as_str())
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(step_id)
        .bind(&event.step_kind)
        .bind(kind.as_str())
        .bind(i64::from(event.attempt))
        .bind(event.at.to_rfc3339())
        .bind(event.payload.to_string())
        .execute(&mut *transaction)
        .await
        .map_err(|source| journal.database_error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| journal.database_error(source))?;
        Ok(Appended {
            seq,
            attempt: event.attempt,
            at: event.at,
            step,
        })
    }

    /// Records how the run ended (`Succeeded` or `Failed`; `Running` reopens it).
    pub async fn finish(&self, outcome: RunOutcome) -> Result<(), JournalError> {
        let journal = &self.journal;
        let mut transaction = journal.immediate().await?;
        journal
            .check_lock(&mut transaction, self.lock.as_ref())
            .await?;
        let finished_at = (outcome != RunOutcome::Running).then(|| Timestamp::now().to_rfc3339());
        sqlx::query("UPDATE runs SET outcome = ?1, finished_at = ?2 WHERE run_id = ?3")
            .bind(outcome.as_str())
            .bind(finished_at)
            .bind(self.run_id.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(|source| journal.database_error(source))?;
        transaction
            .commit()
            .await
            .map_err(|source| journal.database_error(source))
    }

    /// The run as replayed from the journal now.
    pub async fn state(&self) -> Result<RunState, JournalError> {
        self.journal.run(&self.run_id).await
    }
}
