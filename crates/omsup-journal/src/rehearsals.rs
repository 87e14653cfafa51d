//! Rehearsals (`omsup rehearse`): one row per finished rehearsal, keyed by the fingerprint of
//! the plan it rehearsed, with what it measured (the caller's JSON). A rehearsal is not a run:
//! it has no steps in the journal, is never resumed, and never blocks an apply; it is recorded
//! once, when it ends, under the deployment lock it holds (the write is fenced like a run's).
//! `plan` reads the last successful one for its downtime estimate, `apply` warns without one.

use serde_json::Value;
use sqlx::AssertSqlSafe;

use crate::error::JournalError;
use crate::journal::{Journal, ReadRow as _, on_pool, on_tx};
use crate::lock::DeploymentLock;
use crate::time::Timestamp;

/// One finished rehearsal.
#[derive(Debug, Clone, PartialEq)]
pub struct RehearsalRecord {
    pub rehearsal_id: String,
    pub plan_fingerprint: String,
    pub finished_at: Timestamp,
    pub succeeded: bool,
    /// What it measured, as the caller serialized it. Refused when it holds a secret.
    pub document: Value,
}

impl Journal {
    /// Records a finished rehearsal (the caller holds the lock).
    pub async fn record_rehearsal(
        &self,
        lock: &DeploymentLock,
        record: &RehearsalRecord,
    ) -> Result<(), JournalError> {
        if let Some(location) = self.find_secret(&record.document, None) {
            return Err(JournalError::SecretInPayload {
                run_id: lock.run_id().clone(),
                step_id: crate::StepId::new("(rehearsal document)"),
                location,
            });
        }
        let document = serde_json::to_string(&record.document).map_err(JournalError::Payload)?;
        let tables = &self.inner.tables;
        let sql = format!(
            "INSERT INTO {} ({}, rehearsal_id, plan_fingerprint, finished_at, outcome, document)
             VALUES (?, ?, ?, ?, ?, ?)",
            tables.rehearsals, tables.scope_column
        );
        let mut transaction = self.begin_write().await?;
        self.check_lock(&mut transaction, lock.token.as_ref())
            .await?;
        on_tx!(&mut transaction, connection => {
            sqlx::query(AssertSqlSafe(sql))
                .bind(&tables.scope_value)
                .bind(&record.rehearsal_id)
                .bind(&record.plan_fingerprint)
                .bind(record.finished_at.to_rfc3339())
                .bind(if record.succeeded { "succeeded" } else { "failed" })
                .bind(&document)
                .execute(&mut *connection)
                .await
                .map_err(|source| self.database_error(source))?;
        });
        transaction
            .commit()
            .await
            .map_err(|source| self.database_error(source))
    }

    /// The most recent rehearsal of `plan_fingerprint` (of any plan when `None`), only
    /// successful ones when `succeeded_only`.
    pub async fn last_rehearsal(
        &self,
        plan_fingerprint: Option<&str>,
        succeeded_only: bool,
    ) -> Result<Option<RehearsalRecord>, JournalError> {
        let tables = &self.inner.tables;
        let sql = format!(
            "SELECT rehearsal_id, plan_fingerprint, finished_at, outcome, document FROM {}
             WHERE {} = ?{}{} ORDER BY ordinal DESC LIMIT 1",
            tables.rehearsals,
            tables.scope_column,
            if plan_fingerprint.is_some() {
                " AND plan_fingerprint = ?"
            } else {
                ""
            },
            if succeeded_only {
                " AND outcome = 'succeeded'"
            } else {
                ""
            },
        );
        on_pool!(self, pool => {
            let query = sqlx::query(AssertSqlSafe(sql)).bind(&tables.scope_value);
            let query = match plan_fingerprint {
                Some(fingerprint) => query.bind(fingerprint),
                None => query,
            };
            let row = query
                .fetch_optional(pool)
                .await
                .map_err(|source| self.database_error(source))?;
            row.map(|row| -> Result<RehearsalRecord, JournalError> {
                let text = |column: &str| row.text(column).map_err(|source| self.database_error(source));
                let finished_at = text("finished_at")?;
                Ok(RehearsalRecord {
                    rehearsal_id: text("rehearsal_id")?,
                    plan_fingerprint: text("plan_fingerprint")?,
                    finished_at: Timestamp::parse_rfc3339(&finished_at)
                        .unwrap_or_else(|| Timestamp::from_unix_millis(0)),
                    succeeded: text("outcome")? == "succeeded",
                    document: serde_json::from_str(&text("document")?)
                        .map_err(JournalError::Payload)?,
                })
            })
            .transpose()
        })
    }
}
