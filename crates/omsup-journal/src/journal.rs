//! The journal: the runs of one deployment, their append-only event log and the deployment
//! lock, behind one interface ([`Journal`]) with two backends ([`Backend`]):
//!
//! - **local** (the embedded default): one SQLite database per deployment
//!   (`<state dir>/<deployment>.journal.sqlite`);
//! - **meta_db** (shared): tables in omsup's own database in the deployment's meta database
//!   server ([`crate::shared`]), keyed like the lock by the deployment's rm database, so any
//!   operator who reaches that server sees, resumes and rolls back the same runs.
//!
//! [`Journal`] opens either and holds what every part shares (the backend, the registered
//! secrets, the lock timing); the parts live beside it: [`crate::schema`] (tables, version),
//! [`crate::lock`] (acquisition, heartbeat, fencing), [`crate::queries`] (replayed runs for
//! `resume`, `rollback`, `status`, `history`), [`crate::writer`] (begin or resume a run, durable
//! appends) and [`crate::migrate`] (copying a deployment's history between backends). The SQL
//! of the runs and events is one text for both backends (`?` placeholders, portable types):
//! [`on_pool`] and [`on_tx`] compile it once per database driver.
//!
//! Durability: the SQLite file uses a rollback journal (`journal_mode=DELETE`, no WAL) with
//! `synchronous=FULL`, and every append is its own `BEGIN IMMEDIATE` transaction; in the
//! server every append is its own InnoDB transaction. An append returns only after the commit:
//! an intent returned to the caller survives a crash of the process or the machine.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{MySql, Row as _, Sqlite, Transaction};

use crate::error::JournalError;
use crate::lock::LockTiming;
use crate::schema;
use crate::shared::SharedState;

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

/// Where a journal lives: the embedded default, or the deployment's meta database server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file per deployment in a state directory (`<state dir>/<deployment>.journal.sqlite`).
    Local,
    /// Tables in omsup's own database in the deployment's meta database server, shared by
    /// every operator who reaches that server.
    MetaDb,
}

impl Backend {
    /// `local` or `meta_db`, as the plan file's `[state] backend` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::MetaDb => "meta_db",
        }
    }
}

/// An open journal (cheap to clone: an `Arc` around a connection pool).
#[derive(Debug, Clone)]
pub struct Journal {
    pub(crate) inner: Arc<JournalInner>,
}

#[derive(Debug)]
pub(crate) struct JournalInner {
    pub(crate) deployment: String,
    pub(crate) store: Store,
    /// The tables and the column that scopes rows to this deployment, as the SQL shared by both
    /// backends names them.
    pub(crate) tables: Tables,
    pub(crate) secrets: RwLock<Vec<String>>,
    pub(crate) lock_timing: RwLock<LockTiming>,
    /// Taken around every write transaction of this process: steps running in parallel queue
    /// here, in order, instead of in SQLite's busy handler, whose sleeps back off up to 100 ms
    /// per retry (a run's appends cost a few fsyncs each, not tens of milliseconds of waiting).
    pub(crate) writes: Arc<tokio::sync::Mutex<()>>,
}

/// The backend behind a [`Journal`]: one implementation of the same SQL per database.
#[derive(Debug)]
pub(crate) enum Store {
    Local {
        path: PathBuf,
        pool: SqlitePool,
        connect_options: Box<SqliteConnectOptions>,
    },
    Shared {
        state: SharedState,
        /// The deployment's identity in the server (its rm database), as the lock's.
        key: String,
    },
}

/// Table names and the scope of a deployment's rows: in the SQLite file, every run is the
/// deployment's (`deployment = name`); in the server, runs are keyed like the lock
/// (`lock_key = rm database`).
#[derive(Debug)]
pub(crate) struct Tables {
    pub(crate) runs: String,
    pub(crate) events: String,
    pub(crate) rehearsals: String,
    pub(crate) scope_column: &'static str,
    pub(crate) scope_value: String,
}

/// A write transaction on either backend.
pub(crate) enum WriteTx {
    /// The transaction, and this process's turn to write (see [`JournalInner::writes`]), held
    /// until the commit.
    Local(
        Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
    Shared(Transaction<'static, MySql>),
}

/// Evaluates `$body` with `$pool` bound to the journal's pool, once per backend: the same
/// SQL text, compiled for SQLite and for MySQL.
macro_rules! on_pool {
    ($journal:expr, $pool:ident => $body:expr) => {
        match &$journal.inner.store {
            $crate::journal::Store::Local { pool: $pool, .. } => $body,
            $crate::journal::Store::Shared { state, .. } => {
                let $pool = state.pool();
                $body
            }
        }
    };
}

/// Evaluates `$body` with `$connection` bound to the transaction's connection, once per
/// backend (see [`on_pool`]).
macro_rules! on_tx {
    ($tx:expr, $connection:ident => $body:expr) => {
        match $tx {
            $crate::journal::WriteTx::Local(transaction, _) => {
                let $connection = &mut **transaction;
                $body
            }
            $crate::journal::WriteTx::Shared(transaction) => {
                let $connection = &mut **transaction;
                $body
            }
        }
    };
}
pub(crate) use {on_pool, on_tx};

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Local(transaction, _turn) => transaction.commit().await,
            WriteTx::Shared(transaction) => transaction.commit().await,
        }
    }
}

/// Reading a row's columns the same way on both backends.
pub(crate) trait ReadRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn integer(&self, column: &str) -> Result<i64, sqlx::Error>;
}

macro_rules! read_row {
    ($row:ty) => {
        impl ReadRow for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn integer(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}
read_row!(sqlx::sqlite::SqliteRow);
read_row!(sqlx::mysql::MySqlRow);

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

    /// Opens the journal of `deployment` in the meta database server: the runs keyed by `key`
    /// (the deployment's rm database, as its lock), in omsup's database of `state` (whose
    /// tables [`SharedState::open`] created).
    pub async fn open_shared(
        state: &SharedState,
        key: &str,
        deployment: &str,
    ) -> Result<Self, JournalError> {
        if !valid_deployment_name(deployment) {
            return Err(JournalError::InvalidDeploymentName {
                name: deployment.to_owned(),
            });
        }
        Ok(Self::with_store(
            deployment,
            Store::Shared {
                state: state.clone(),
                key: key.to_owned(),
            },
        ))
    }

    fn with_store(deployment: &str, store: Store) -> Self {
        let tables = match &store {
            Store::Local { .. } => Tables {
                runs: "runs".to_owned(),
                events: "events".to_owned(),
                rehearsals: "rehearsals".to_owned(),
                scope_column: "deployment",
                scope_value: deployment.to_owned(),
            },
            Store::Shared { state, key } => Tables {
                runs: state.table("runs"),
                events: state.table("events"),
                rehearsals: state.table("rehearsals"),
                scope_column: "lock_key",
                scope_value: key.clone(),
            },
        };
        Self {
            inner: Arc::new(JournalInner {
                deployment: deployment.to_owned(),
                store,
                tables,
                secrets: RwLock::new(Vec::new()),
                lock_timing: RwLock::new(LockTiming::default()),
                writes: Arc::new(tokio::sync::Mutex::new(())),
            }),
        }
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
        schema::migrate(&mut transaction, &path, deployment).await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(Self::with_store(
            deployment,
            Store::Local {
                path,
                pool,
                connect_options: Box::new(connect_options),
            },
        ))
    }

    pub fn backend(&self) -> Backend {
        match self.inner.store {
            Store::Local { .. } => Backend::Local,
            Store::Shared { .. } => Backend::MetaDb,
        }
    }

    /// The SQLite file of a local journal (`None` in the meta database server).
    pub fn file(&self) -> Option<&Path> {
        match &self.inner.store {
            Store::Local { path, .. } => Some(path),
            Store::Shared { .. } => None,
        }
    }

    /// Where the journal is, for messages: its file, or `database `omsup_state` on host:port`.
    pub fn location(&self) -> String {
        match &self.inner.store {
            Store::Local { path, .. } => format!("`{}`", path.display()),
            Store::Shared { state, .. } => state.describe(),
        }
    }

    /// The meta database server behind a shared journal (`None` for a local one).
    pub fn shared_state(&self) -> Option<&SharedState> {
        match &self.inner.store {
            Store::Local { .. } => None,
            Store::Shared { state, .. } => Some(state),
        }
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

    pub(crate) fn database_error(&self, source: sqlx::Error) -> JournalError {
        match &self.inner.store {
            Store::Local { path, .. } => JournalError::Database {
                path: path.clone(),
                source,
            },
            Store::Shared { state, .. } => state.database_error(source),
        }
    }

    /// A write transaction: `BEGIN IMMEDIATE` in SQLite (serialised across processes), a plain
    /// transaction in the server (serialised by the lock row it first reads `FOR UPDATE`, see
    /// [`Journal::check_lock`]).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, JournalError> {
        match &self.inner.store {
            Store::Local { pool, .. } => {
                let turn = self.inner.writes.clone().lock_owned().await;
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map(|transaction| WriteTx::Local(transaction, turn))
            }
            Store::Shared { state, .. } => state.pool().begin().await.map(WriteTx::Shared),
        }
        .map_err(|source| self.database_error(source))
    }

    /// Where in `payload` a registered secret appears (a JSON path), if anywhere.
    pub(crate) fn find_secret(&self, payload: &Value, extra_text: Option<&str>) -> Option<String> {
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
