//! The journal's SQLite schema and its one migration step: the tables are created when missing
//! and the schema version recorded; a journal written by a newer omsup is refused.
//!
//! Version 1 is the only version so far. Its first releases allowed more names in the
//! `event` column (`started` and steno's undo events) than any release wrote; databases
//! created since allow only `intent`, `succeeded` and `failed`, and a row with a retired name
//! is refused when read ([`crate::JournalError::RetiredEvent`]).

use std::path::Path;

use sqlx::SqliteConnection;

use crate::error::JournalError;

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// The schema, applied idempotently when a journal is opened.
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
        event     TEXT NOT NULL CHECK (event IN ('intent', 'succeeded', 'failed')),
        attempt   INTEGER NOT NULL CHECK (attempt >= 1),
        at        TEXT NOT NULL,
        payload   TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    )",
    "CREATE INDEX IF NOT EXISTS events_by_step ON events (run_id, step_id, seq)",
    "CREATE TABLE IF NOT EXISTS rehearsals (
        ordinal          INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment       TEXT NOT NULL,
        rehearsal_id     TEXT NOT NULL,
        plan_fingerprint TEXT NOT NULL,
        finished_at      TEXT NOT NULL,
        outcome          TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
        document         TEXT NOT NULL
    )",
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

/// Creates what is missing and checks the recorded version, inside the caller's
/// `BEGIN IMMEDIATE` transaction.
pub(crate) async fn migrate(
    connection: &mut SqliteConnection,
    path: &Path,
    deployment: &str,
) -> Result<(), JournalError> {
    let database_error = |source| JournalError::Database {
        path: path.to_owned(),
        source,
    };
    for statement in SCHEMA {
        sqlx::query(*statement)
            .execute(&mut *connection)
            .await
            .map_err(database_error)?;
    }
    let found: Option<String> =
        sqlx::query_scalar("SELECT value FROM journal_meta WHERE key = 'schema_version'")
            .fetch_optional(&mut *connection)
            .await
            .map_err(database_error)?;
    match found.and_then(|version| version.parse::<i64>().ok()) {
        Some(version) if version > SCHEMA_VERSION => Err(JournalError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        }),
        Some(_) => Ok(()),
        None => {
            sqlx::query(
                "INSERT INTO journal_meta (key, value) VALUES ('schema_version', ?1), ('deployment', ?2)",
            )
            .bind(SCHEMA_VERSION.to_string())
            .bind(deployment)
            .execute(&mut *connection)
            .await
            .map_err(database_error)?;
            Ok(())
        }
    }
}
