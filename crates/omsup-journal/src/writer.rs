//! Writing the journal: [`Journal::begin_run`] and [`Journal::resume_run`] hand out a
//! [`RunWriter`], whose appends go through the state machine of [`crate::event`], are fenced by
//! the deployment lock and refuse registered secrets. Each append is durable when it returns.

use std::sync::Arc;

use serde_json::Value;
use sqlx::AssertSqlSafe;

use crate::error::JournalError;
use crate::event::{self, EventKind, JournalEvent, RunState, StepRecord, apply_event};
use crate::host;
use crate::ids::{RunId, StepId};
use crate::journal::{Journal, on_tx};
use crate::lock::{DeploymentLock, LockToken};
use crate::run::{NewRun, RunOutcome};
use crate::time::Timestamp;

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
    /// Records a new run (id = the lock's run id) and returns its writer.
    pub async fn begin_run(
        &self,
        lock: &DeploymentLock,
        new_run: NewRun,
    ) -> Result<RunWriter, JournalError> {
        let run_id = lock.run_id().clone();
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
        let tables = &self.inner.tables;
        let exists_sql = format!("SELECT 1 FROM {} WHERE run_id = ?", tables.runs);
        // The scope column (`deployment` here, `lock_key` in the server) comes last; in the
        // SQLite file it repeats the deployment.
        let insert_sql = format!(
            "INSERT INTO {} (run_id, kind, undoes_run_id, deployment, plan_fingerprint,
                 plan_file_path, plan_file_sha256, planned_steps, started_by, started_on_host,
                 started_pid, omsup_version, started_at, outcome, document{})
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?{})",
            tables.runs,
            if tables.scope_column == "deployment" {
                ""
            } else {
                ", lock_key"
            },
            if tables.scope_column == "deployment" {
                ""
            } else {
                ", ?"
            },
        );
        let mut transaction = self.begin_write().await?;
        self.check_lock(&mut transaction, lock.token.as_ref())
            .await?;
        on_tx!(&mut transaction, connection => {
            let exists: Option<i64> = sqlx::query_scalar(AssertSqlSafe(exists_sql))
                .bind(run_id.as_str())
                .fetch_optional(&mut *connection)
                .await
                .map_err(|source| self.database_error(source))?;
            if exists.is_some() {
                return Err(JournalError::RunExists { run_id });
            }
            let insert = sqlx::query(AssertSqlSafe(insert_sql))
                .bind(run_id.as_str())
                .bind(new_run.kind.as_str())
                .bind(new_run.undoes.as_ref().map(RunId::as_str))
                .bind(&self.inner.deployment)
                .bind(&new_run.plan_fingerprint)
                .bind(new_run.plan_file_path.to_string_lossy().into_owned())
                .bind(&new_run.plan_file_sha256)
                .bind(&planned_steps)
                .bind(host::current_user())
                .bind(host::current_host())
                .bind(i64::from(std::process::id()))
                .bind(env!("CARGO_PKG_VERSION"))
                .bind(Timestamp::now().to_rfc3339())
                .bind(&document);
            let insert = if tables.scope_column == "deployment" {
                insert
            } else {
                insert.bind(&tables.scope_value)
            };
            insert
                .execute(&mut *connection)
                .await
                .map_err(|source| self.database_error(source))?;
        });
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
        let sql = format!(
            "UPDATE {} SET outcome = 'running', finished_at = NULL,
                 resume_count = resume_count + 1, last_resumed_at = ?
             WHERE run_id = ? AND {} = ?",
            self.inner.tables.runs, self.inner.tables.scope_column
        );
        let mut transaction = self.begin_write().await?;
        self.check_lock(&mut transaction, lock.token.as_ref())
            .await?;
        let updated = on_tx!(&mut transaction, connection => sqlx::query(AssertSqlSafe(sql))
            .bind(Timestamp::now().to_rfc3339())
            .bind(run_id.as_str())
            .bind(&self.inner.tables.scope_value)
            .execute(&mut *connection)
            .await
            .map_err(|source| self.database_error(source))?
            .rows_affected());
        if updated == 0 {
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

    pub(crate) fn writer(&self, lock: &DeploymentLock, run_id: RunId) -> RunWriter {
        RunWriter {
            journal: self.clone(),
            run_id,
            lock: lock.token.clone(),
        }
    }
}

/// Appends events of one run, each durable when the call returns. Cheap to clone; clones may
/// be used concurrently from parallel steps (appends are serialised by SQLite's
/// `BEGIN IMMEDIATE`, or by the server's lock row read `FOR UPDATE`).
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
        let error_text = (kind == EventKind::Failed).then(|| event::error_message_of(&payload));
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
        let events = &journal.inner.tables.events;
        let step_sql =
            format!("SELECT * FROM {events} WHERE run_id = ? AND step_id = ? ORDER BY seq");
        let seq_sql = format!("SELECT COALESCE(MAX(seq), 0) FROM {events} WHERE run_id = ?");
        let insert_sql = format!(
            "INSERT INTO {events} (run_id, seq, step_id, step_kind, `event`, attempt, `at`, payload)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let mut transaction = journal.begin_write().await?;
        journal
            .check_lock(&mut transaction, self.lock.as_ref())
            .await?;
        let (previous, last_seq) = on_tx!(&mut transaction, connection => {
            let rows = sqlx::query(AssertSqlSafe(step_sql))
                .bind(self.run_id.as_str())
                .bind(step_id)
                .fetch_all(&mut *connection)
                .await
                .map_err(|source| journal.database_error(source))?;
            let previous = rows
                .iter()
                .map(|row| journal.event_from_row(row))
                .collect::<Result<Vec<_>, _>>()?;
            let last_seq: i64 = sqlx::query_scalar(AssertSqlSafe(seq_sql))
                .bind(self.run_id.as_str())
                .fetch_one(&mut *connection)
                .await
                .map_err(|source| journal.database_error(source))?;
            (previous, last_seq)
        });
        let mut record: Option<StepRecord> = None;
        for previous in &previous {
            let next = apply_event(record.as_ref(), previous).map_err(|illegal| {
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
        on_tx!(&mut transaction, connection => sqlx::query(AssertSqlSafe(insert_sql))
            .bind(self.run_id.as_str())
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(step_id)
            .bind(&event.step_kind)
            .bind(kind.as_str())
            .bind(i64::from(event.attempt))
            .bind(event.at.to_rfc3339())
            .bind(event.payload.to_string())
            .execute(&mut *connection)
            .await
            .map_err(|source| journal.database_error(source))?
            .rows_affected());
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
        let sql = format!(
            "UPDATE {} SET outcome = ?, finished_at = ? WHERE run_id = ?",
            journal.inner.tables.runs
        );
        let mut transaction = journal.begin_write().await?;
        journal
            .check_lock(&mut transaction, self.lock.as_ref())
            .await?;
        let finished_at = (outcome != RunOutcome::Running).then(|| Timestamp::now().to_rfc3339());
        on_tx!(&mut transaction, connection => sqlx::query(AssertSqlSafe(sql))
            .bind(outcome.as_str())
            .bind(finished_at)
            .bind(self.run_id.as_str())
            .execute(&mut *connection)
            .await
            .map_err(|source| journal.database_error(source))?
            .rows_affected());
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
