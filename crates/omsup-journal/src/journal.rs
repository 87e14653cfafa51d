//! The journal: one SQLite database per deployment (`<state dir>/<deployment>.journal.sqlite`)
//! holding the runs, their append-only event log and the deployment lock. [`Journal`] opens it
//! and holds what every part shares (the pool, the registered secrets, the lock timing); the
//! parts live beside it: [`crate::schema`] (tables, version), [`crate::lock`] (acquisition,
//! heartbeat, fencing), [`crate::queries`] (replayed runs for `resume`, `rollback`, `status`,
//! `history`) and [`crate::writer`] (begin or resume a run, durable appends).
//!
//! Durability: the database uses a rollback journal (`journal_mode=DELETE`, no WAL) with
//! `synchronous=FULL`, and every append is its own `BEGIN IMMEDIATE` transaction. An append
//! returns only after the commit, i.e. after SQLite has synced the event to disk: an intent
//! returned to the caller survives a crash of the process or the machine.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::error::JournalError;
use crate::lock::LockTiming;
use crate::schema;

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
    pub(crate) inner: Arc<JournalInner>,
}

#[derive(Debug)]
pub(crate) struct JournalInner {
    pub(crate) path: PathBuf,
    pub(crate) deployment: String,
    pub(crate) pool: SqlitePool,
    pub(crate) connect_options: SqliteConnectOptions,
    pub(crate) secrets: RwLock<Vec<String>>,
    pub(crate) lock_timing: RwLock<LockTiming>,
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
        schema::migrate(&mut transaction, &path, deployment).await?;
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

    pub(crate) fn database_error(&self, source: sqlx::Error) -> JournalError {
        JournalError::Database {
            path: self.inner.path.clone(),
            source,
        }
    }

    pub(crate) async fn immediate(&self) -> Result<Transaction<'static, Sqlite>, JournalError> {
        self.inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
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
