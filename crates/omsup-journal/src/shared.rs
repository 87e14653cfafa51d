//! The deployment lock in the deployment's meta database server, so that it holds across
//! machines: two operators with different state directories (or different machines) reach the
//! same server, and only one of them gets the lock.
//!
//! The lock lives in a database of omsup's own (`omsup_state` unless the plan says otherwise),
//! never in a database that omsup backs up, restores or that OMS migrates. It is created on
//! first use; a meta user without the privilege gets [`JournalError::SharedStatePrivilege`]
//! with the `GRANT` to ask for.
//!
//! One row per deployment in `deployment_locks`, keyed by the deployment's rm database (its
//! identity in that server: two plan files naming one rm database are one deployment):
//!
//! - taking it is one `INSERT` (the primary key refuses a second holder);
//! - the heartbeat and the staleness use the server's clock (`UNIX_TIMESTAMP(NOW(3))`), so
//!   the operators' clocks need not agree;
//! - a stale lock is taken over only with its lock id, by one conditional `UPDATE` that also
//!   names the heartbeat that was judged stale (a holder that beat meanwhile keeps it); the
//!   take-over is recorded in `lock_takeovers`;
//! - every journal write checks the row is still this lock's ([`SharedLock::fence`]).
//!
//! Portable SQL only (MySQL 5.7/8, MariaDB, OceanBase's MySQL mode): no `ENGINE`, no
//! `GET_LOCK`, no `ON DUPLICATE KEY` or `INSERT IGNORE` tricks, ASCII `VARCHAR` keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use crate::error::JournalError;
use crate::host;
use crate::ids::{LockId, RunId};
use crate::lock::{
    HolderRow, LockHolder, LockRequest, LockTiming, refuse_unless_takeover,
    release_on_helper_thread,
};
use crate::schema::SCHEMA_VERSION;
use crate::time::Timestamp;

/// The database omsup keeps its shared state in, unless the plan names another.
pub const DEFAULT_STATE_DATABASE: &str = "omsup_state";

/// omsup's tables in its state database.
const TABLES: [&str; 5] = [
    "deployment_locks",
    "lock_takeovers",
    "journal_meta",
    "runs",
    "events",
];

/// The server's clock in milliseconds since the epoch.
const SERVER_NOW_MS: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// Where the shared state lives: the meta database server (connection options with the
/// password, never printed) and omsup's own database there.
#[derive(Clone)]
pub struct SharedStateConfig {
    pub options: MySqlConnectOptions,
    pub database: String,
    /// `user@host:port`, for messages.
    pub server: String,
    pub user: String,
}

impl SharedStateConfig {
    /// The meta database server at `host:port` as `user` (the password is kept only in the
    /// connection options), and omsup's `database` there.
    pub fn new(host: &str, port: u16, user: &str, password: &str, database: &str) -> Self {
        Self {
            options: MySqlConnectOptions::new()
                .host(host)
                .port(port)
                .username(user)
                .password(password),
            database: database.to_owned(),
            server: format!("{host}:{port}"),
            user: user.to_owned(),
        }
    }
}

impl std::fmt::Debug for SharedStateConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SharedStateConfig")
            .field("server", &self.server)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Whether `name` may name the state database (letters, digits, `_`; at most 64).
pub fn valid_state_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// omsup's shared state in the meta database server (the lock now; the journal later).
#[derive(Debug, Clone)]
pub struct SharedState {
    inner: Arc<SharedInner>,
}

#[derive(Debug)]
struct SharedInner {
    config: SharedStateConfig,
    pool: MySqlPool,
}

/// The MySQL error numbers of a missing privilege (database, table, command).
fn is_privilege_error(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|error| matches!(error.number(), 1044 | 1045 | 1142 | 1143 | 1227))
}

fn is_duplicate_key(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|error| error.number() == 1062)
}

impl SharedState {
    /// Connects and creates omsup's database and tables when they are missing.
    pub async fn open(config: SharedStateConfig) -> Result<Self, JournalError> {
        let state = Self::connect(config).await?;
        state.create_schema().await?;
        Ok(state)
    }

    /// Connects without creating anything (for commands that only read): `None` when omsup's
    /// database or one of its tables is not there yet, i.e. nothing was ever kept there.
    pub async fn open_existing(config: SharedStateConfig) -> Result<Option<Self>, JournalError> {
        let state = Self::connect(config).await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
        )
        .bind(&state.inner.config.database)
        .fetch_all(&state.inner.pool)
        .await
        .map_err(|source| state.database_error(source))?;
        let complete = TABLES
            .iter()
            .all(|table| tables.iter().any(|existing| existing == table));
        if !complete {
            return Ok(None);
        }
        state.check_schema_version().await?;
        Ok(Some(state))
    }

    async fn connect(config: SharedStateConfig) -> Result<Self, JournalError> {
        if !valid_state_database_name(&config.database) {
            return Err(JournalError::InvalidStateDatabase {
                name: config.database.clone(),
            });
        }
        let unreachable = |source| JournalError::SharedStateUnreachable {
            server: config.server.clone(),
            source,
        };
        let pool = MySqlPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(config.options.clone())
            .await
            .map_err(unreachable)?;
        Ok(Self {
            inner: Arc::new(SharedInner { config, pool }),
        })
    }

    pub fn database(&self) -> &str {
        &self.inner.config.database
    }

    /// `database `omsup_state` on user@host:port`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "database `{}` on `{}@{}`",
            self.inner.config.database, self.inner.config.user, self.inner.config.server
        )
    }

    pub(crate) fn pool(&self) -> &MySqlPool {
        &self.inner.pool
    }

    pub(crate) fn table(&self, name: &str) -> String {
        format!("`{}`.`{name}`", self.inner.config.database)
    }

    pub(crate) fn database_error(&self, source: sqlx::Error) -> JournalError {
        if is_privilege_error(&source) {
            JournalError::SharedStatePrivilege {
                database: self.inner.config.database.clone(),
                user: self.inner.config.user.clone(),
                server: self.inner.config.server.clone(),
                source,
            }
        } else {
            JournalError::SharedState {
                database: self.inner.config.database.clone(),
                server: self.inner.config.server.clone(),
                source,
            }
        }
    }

    async fn create_schema(&self) -> Result<(), JournalError> {
        let database = &self.inner.config.database;
        let pool = &self.inner.pool;
        // `CREATE DATABASE IF NOT EXISTS` needs the privilege even when the database exists:
        // ask first, so that a database an administrator created is enough.
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(database)
        .fetch_optional(pool)
        .await
        .map_err(|source| self.database_error(source))?;
        if exists.is_none() {
            sqlx::query(AssertSqlSafe(format!(
                "CREATE DATABASE IF NOT EXISTS `{database}`"
            )))
            .execute(pool)
            .await
            .map_err(|source| self.database_error(source))?;
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
        )
        .bind(database)
        .fetch_all(pool)
        .await
        .map_err(|source| self.database_error(source))?;
        let statements = [
            (
                "deployment_locks",
                format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                        lock_key          VARCHAR(64)  NOT NULL,
                        deployment        VARCHAR(64)  NOT NULL,
                        lock_id           VARCHAR(32)  NOT NULL,
                        run_id            VARCHAR(64)  NOT NULL,
                        purpose           VARCHAR(16)  NOT NULL,
                        holder_user       VARCHAR(255) NOT NULL,
                        holder_host       VARCHAR(255) NOT NULL,
                        holder_pid        BIGINT       NOT NULL,
                        acquired_unix_ms  BIGINT       NOT NULL,
                        heartbeat_unix_ms BIGINT       NOT NULL,
                        PRIMARY KEY (lock_key)
                    )",
                    self.table("deployment_locks")
                ),
            ),
            (
                "lock_takeovers",
                format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                        lock_key        VARCHAR(64)  NOT NULL,
                        taken_unix_ms   BIGINT       NOT NULL,
                        old_lock_id     VARCHAR(32)  NOT NULL,
                        old_run_id      VARCHAR(64)  NOT NULL,
                        old_host        VARCHAR(255) NOT NULL,
                        old_pid         BIGINT       NOT NULL,
                        old_heartbeat   BIGINT       NOT NULL,
                        new_lock_id     VARCHAR(32)  NOT NULL,
                        new_run_id      VARCHAR(64)  NOT NULL,
                        by_user         VARCHAR(255) NOT NULL,
                        on_host         VARCHAR(255) NOT NULL
                    )",
                    self.table("lock_takeovers")
                ),
            ),
            (
                "journal_meta",
                format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                        meta_key   VARCHAR(64)  NOT NULL,
                        meta_value VARCHAR(255) NOT NULL,
                        PRIMARY KEY (meta_key)
                    ) DEFAULT CHARSET = utf8mb4",
                    self.table("journal_meta")
                ),
            ),
            (
                "runs",
                format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                        ordinal          BIGINT       NOT NULL AUTO_INCREMENT,
                        lock_key         VARCHAR(64)  NOT NULL,
                        run_id           VARCHAR(64)  NOT NULL,
                        kind             VARCHAR(16)  NOT NULL,
                        undoes_run_id    VARCHAR(64)  NULL,
                        deployment       VARCHAR(64)  NOT NULL,
                        plan_fingerprint TEXT         NOT NULL,
                        plan_file_path   TEXT         NOT NULL,
                        plan_file_sha256 VARCHAR(64)  NOT NULL,
                        planned_steps    LONGTEXT     NOT NULL,
                        started_by       VARCHAR(255) NOT NULL,
                        started_on_host  VARCHAR(255) NOT NULL,
                        started_pid      BIGINT       NOT NULL,
                        omsup_version    VARCHAR(64)  NOT NULL,
                        started_at       VARCHAR(40)  NOT NULL,
                        finished_at      VARCHAR(40)  NULL,
                        outcome          VARCHAR(16)  NOT NULL,
                        resume_count     BIGINT       NOT NULL DEFAULT 0,
                        last_resumed_at  VARCHAR(40)  NULL,
                        document         LONGTEXT     NOT NULL,
                        PRIMARY KEY (ordinal),
                        UNIQUE KEY runs_by_id (run_id),
                        KEY runs_by_deployment (lock_key, ordinal)
                    ) DEFAULT CHARSET = utf8mb4",
                    self.table("runs")
                ),
            ),
            (
                "rehearsals",
                format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                        ordinal          BIGINT       NOT NULL AUTO_INCREMENT,
                        lock_key         VARCHAR(64)  NOT NULL,
                        rehearsal_id     VARCHAR(32)  NOT NULL,
                        plan_fingerprint VARCHAR(128) NOT NULL,
                        finished_at      VARCHAR(40)  NOT NULL,
                        outcome          VARCHAR(16)  NOT NULL,
                        document         LONGTEXT     NOT NULL,
                        PRIMARY KEY (ordinal),
                        KEY rehearsals_by_plan (lock_key, plan_fingerprint, ordinal)
                    ) DEFAULT CHARSET = utf8mb4",
                    self.table("rehearsals")
                ),
            ),
            (
                "events",
                format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                        run_id    VARCHAR(64)  NOT NULL,
                        seq       BIGINT       NOT NULL,
                        step_id   VARCHAR(255) NOT NULL,
                        step_kind VARCHAR(64)  NOT NULL,
                        `event`   VARCHAR(16)  NOT NULL,
                        attempt   BIGINT       NOT NULL,
                        `at`      VARCHAR(40)  NOT NULL,
                        payload   LONGTEXT     NOT NULL,
                        PRIMARY KEY (run_id, seq)
                    ) DEFAULT CHARSET = utf8mb4",
                    self.table("events")
                ),
            ),
        ];
        for (table, statement) in statements {
            if !tables.iter().any(|existing| existing == table) {
                sqlx::query(AssertSqlSafe(statement))
                    .execute(pool)
                    .await
                    .map_err(|source| self.database_error(source))?;
            }
        }
        self.check_schema_version().await
    }

    /// Records the journal's schema version on first use; refuses tables written by a newer
    /// omsup.
    async fn check_schema_version(&self) -> Result<(), JournalError> {
        let select = format!(
            "SELECT meta_value FROM {} WHERE meta_key = 'schema_version'",
            self.table("journal_meta")
        );
        let found: Option<String> = sqlx::query_scalar(AssertSqlSafe(select))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        match found.and_then(|version| version.parse::<i64>().ok()) {
            Some(version) if version > SCHEMA_VERSION => Err(JournalError::SharedSchemaTooNew {
                database: self.inner.config.database.clone(),
                server: self.inner.config.server.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            }),
            Some(_) => Ok(()),
            None => {
                let insert = sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {} (meta_key, meta_value) VALUES ('schema_version', ?)",
                    self.table("journal_meta")
                )))
                .bind(SCHEMA_VERSION.to_string())
                .execute(&self.inner.pool)
                .await;
                match insert {
                    // Another operator recorded it first.
                    Err(error) if !is_duplicate_key(&error) => Err(self.database_error(error)),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Who holds the lock of `key` now, judged by the server's clock.
    pub async fn lock_holder(
        &self,
        key: &str,
        timing: LockTiming,
    ) -> Result<Option<LockHolder>, JournalError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT lock_id, run_id, purpose, holder_user, holder_host, holder_pid,
                    acquired_unix_ms, heartbeat_unix_ms, {SERVER_NOW_MS} AS now_ms
             FROM {} WHERE lock_key = ?",
            self.table("deployment_locks")
        )))
        .bind(key)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|source| self.database_error(source))?;
        row.map(|row| holder_of(&row, timing))
            .transpose()
            .map_err(|source| self.database_error(source))
    }

    /// Takes the lock of `key` (the deployment's rm database) for `deployment` with the id
    /// `lock_id` (the local lock's), or says who holds it; with `force_unlock` naming a stale
    /// holder's lock id, takes it over.
    pub async fn acquire_lock(
        &self,
        key: &str,
        deployment: &str,
        lock_id: &LockId,
        request: &LockRequest,
        timing: LockTiming,
    ) -> Result<SharedLock, JournalError> {
        let lock_id = lock_id.clone();
        let user = host::current_user();
        let this_host = host::current_host();
        let pid = i64::from(std::process::id());
        let insert = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (lock_key, deployment, lock_id, run_id, purpose, holder_user,
                 holder_host, holder_pid, acquired_unix_ms, heartbeat_unix_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, {SERVER_NOW_MS}, {SERVER_NOW_MS})",
            self.table("deployment_locks")
        )))
        .bind(key)
        .bind(deployment)
        .bind(lock_id.as_str())
        .bind(request.run_id.as_str())
        .bind(request.purpose.as_str())
        .bind(&user)
        .bind(&this_host)
        .bind(pid)
        .execute(&self.inner.pool)
        .await;
        match insert {
            Ok(_) => return Ok(self.held(key, lock_id, request.run_id.clone(), timing)),
            Err(error) if is_duplicate_key(&error) => {}
            Err(error) => return Err(self.database_error(error)),
        }
        let Some(holder) = self.lock_holder(key, timing).await? else {
            // Released between the insert and the read: the caller may simply try again.
            return Err(JournalError::LockChanged {
                deployment: deployment.to_owned(),
            });
        };
        refuse_unless_takeover(deployment, &holder, request.force_unlock.as_ref())?;
        let deployment = deployment.to_owned();
        let taken = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET deployment = ?, lock_id = ?, run_id = ?, purpose = ?, holder_user = ?,
                 holder_host = ?, holder_pid = ?, acquired_unix_ms = {SERVER_NOW_MS},
                 heartbeat_unix_ms = {SERVER_NOW_MS}
             WHERE lock_key = ? AND lock_id = ? AND heartbeat_unix_ms = ?",
            self.table("deployment_locks")
        )))
        .bind(&deployment)
        .bind(lock_id.as_str())
        .bind(request.run_id.as_str())
        .bind(request.purpose.as_str())
        .bind(&user)
        .bind(&this_host)
        .bind(pid)
        .bind(key)
        .bind(holder.lock_id.as_str())
        .bind(holder.heartbeat_at.unix_millis())
        .execute(&self.inner.pool)
        .await
        .map_err(|source| self.database_error(source))?;
        if taken.rows_affected() != 1 {
            return Err(JournalError::LockChanged { deployment });
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (lock_key, taken_unix_ms, old_lock_id, old_run_id, old_host, old_pid,
                 old_heartbeat, new_lock_id, new_run_id, by_user, on_host)
             VALUES (?, {SERVER_NOW_MS}, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.table("lock_takeovers")
        )))
        .bind(key)
        .bind(holder.lock_id.as_str())
        .bind(holder.run_id.as_str())
        .bind(&holder.host)
        .bind(i64::from(holder.pid))
        .bind(holder.heartbeat_at.unix_millis())
        .bind(lock_id.as_str())
        .bind(request.run_id.as_str())
        .bind(&user)
        .bind(&this_host)
        .execute(&self.inner.pool)
        .await
        .map_err(|source| self.database_error(source))?;
        Ok(self.held(key, lock_id, request.run_id.clone(), timing))
    }

    fn held(&self, key: &str, lock_id: LockId, run_id: RunId, timing: LockTiming) -> SharedLock {
        let fence = Arc::new(SharedFence {
            state: self.clone(),
            key: key.to_owned(),
            lock_id,
            run_id,
            lost: AtomicBool::new(false),
        });
        let heartbeat = tokio::spawn(heartbeat_loop(fence.clone(), timing.heartbeat_every));
        SharedLock {
            fence,
            heartbeat: Some(heartbeat),
            released: false,
        }
    }

    /// Refreshes the heartbeat; `false` when the row is no longer this lock's.
    async fn beat(&self, key: &str, lock_id: &LockId) -> Result<bool, JournalError> {
        let result = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET heartbeat_unix_ms = {SERVER_NOW_MS} WHERE lock_key = ? AND lock_id = ?",
            self.table("deployment_locks")
        )))
        .bind(key)
        .bind(lock_id.as_str())
        .execute(&self.inner.pool)
        .await
        .map_err(|source| self.database_error(source))?;
        if result.rows_affected() == 1 {
            return Ok(true);
        }
        // MySQL counts changed rows: a beat in the same millisecond changes nothing.
        self.holds(key, lock_id).await
    }

    async fn holds(&self, key: &str, lock_id: &LockId) -> Result<bool, JournalError> {
        let holder: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT lock_id FROM {} WHERE lock_key = ?",
            self.table("deployment_locks")
        )))
        .bind(key)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|source| self.database_error(source))?;
        Ok(holder.as_deref() == Some(lock_id.as_str()))
    }

    fn delete_statement(&self) -> String {
        format!(
            "DELETE FROM {} WHERE lock_key = ? AND lock_id = ?",
            self.table("deployment_locks")
        )
    }

    async fn delete_lock_row(&self, key: &str, lock_id: &LockId) -> Result<(), JournalError> {
        sqlx::query(AssertSqlSafe(self.delete_statement()))
            .bind(key)
            .bind(lock_id.as_str())
            .execute(&self.inner.pool)
            .await
            .map_err(|source| self.database_error(source))?;
        Ok(())
    }

    /// For `Drop`: a connection of its own, usable from another runtime.
    async fn delete_lock_row_on_fresh_connection(
        &self,
        key: &str,
        lock_id: &LockId,
    ) -> Result<(), JournalError> {
        let mut connection = self
            .inner
            .config
            .options
            .connect()
            .await
            .map_err(|source| self.database_error(source))?;
        sqlx::query(AssertSqlSafe(self.delete_statement()))
            .bind(key)
            .bind(lock_id.as_str())
            .execute(&mut connection)
            .await
            .map_err(|source| self.database_error(source))?;
        connection
            .close()
            .await
            .map_err(|source| self.database_error(source))
    }
}

fn holder_of(row: &MySqlRow, timing: LockTiming) -> Result<LockHolder, sqlx::Error> {
    let pid: i64 = row.try_get("holder_pid")?;
    Ok(LockHolder::judged(
        HolderRow {
            lock_id: LockId::new(row.try_get::<String, _>("lock_id")?),
            run_id: RunId::new(row.try_get::<String, _>("run_id")?),
            purpose: row.try_get("purpose")?,
            user: row.try_get("holder_user")?,
            host: row.try_get("holder_host")?,
            pid: u32::try_from(pid).unwrap_or(0),
            acquired_at: Timestamp::from_unix_millis(row.try_get("acquired_unix_ms")?),
            heartbeat_at: Timestamp::from_unix_millis(row.try_get("heartbeat_unix_ms")?),
        },
        Timestamp::from_unix_millis(row.try_get("now_ms")?),
        timing,
    ))
}

/// What a journal write checks: the shared row is still this lock's.
#[derive(Debug)]
pub(crate) struct SharedFence {
    state: SharedState,
    key: String,
    pub(crate) lock_id: LockId,
    pub(crate) run_id: RunId,
    lost: AtomicBool,
}

impl SharedFence {
    /// `LockLost` unless the row is still this lock's (and remembers a loss).
    pub(crate) async fn check(&self, deployment: &str) -> Result<(), JournalError> {
        if !self.lost.load(Ordering::SeqCst) && self.state.holds(&self.key, &self.lock_id).await? {
            return Ok(());
        }
        self.lost.store(true, Ordering::SeqCst);
        Err(JournalError::LockLost {
            deployment: deployment.to_owned(),
            lock_id: self.lock_id.clone(),
            run_id: self.run_id.clone(),
        })
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }
}

/// The held lock in the meta database server, with its heartbeat. Usually attached to the
/// local [`crate::DeploymentLock`] with [`crate::Journal::acquire_lock_with_shared`], which
/// then releases both.
#[derive(Debug)]
pub struct SharedLock {
    pub(crate) fence: Arc<SharedFence>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl SharedLock {
    pub fn lock_id(&self) -> &LockId {
        &self.fence.lock_id
    }

    pub fn is_lost(&self) -> bool {
        self.fence.is_lost()
    }

    /// Stops the heartbeat and deletes the row (if it is still this lock's).
    pub async fn release(mut self) -> Result<(), JournalError> {
        self.released = true;
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        self.fence
            .state
            .delete_lock_row(&self.fence.key, &self.fence.lock_id)
            .await
    }
}

impl Drop for SharedLock {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if self.released {
            return;
        }
        let fence = self.fence.clone();
        release_on_helper_thread(async move {
            fence
                .state
                .delete_lock_row_on_fresh_connection(&fence.key, &fence.lock_id)
                .await
        });
    }
}

async fn heartbeat_loop(fence: Arc<SharedFence>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match fence.state.beat(&fence.key, &fence.lock_id).await {
            Ok(true) => {}
            Ok(false) => {
                fence.lost.store(true, Ordering::SeqCst);
                return;
            }
            // A briefly unreachable server: try again at the next beat (a holder that stays
            // away turns stale and may be taken over, and its next write is then refused).
            Err(_) => {}
        }
    }
}
