//! Reading the journal: runs (oldest first, last, unfinished, last apply, rollbacks of a run),
//! a run replayed through the state machine, its document and its raw events.

use std::path::PathBuf;

use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::JournalError;
use crate::event::{self, EventColumns, JournalEvent, RunState};
use crate::ids::RunId;
use crate::journal::Journal;
use crate::run::{PlannedStep, RunInfo, RunKind, RunOutcome};
use crate::time::Timestamp;

impl Journal {
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

    pub(crate) fn run_info_from_row(&self, row: &SqliteRow) -> Result<RunInfo, JournalError> {
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

    pub(crate) fn event_from_row(&self, row: &SqliteRow) -> Result<JournalEvent, JournalError> {
        let database_error = |source| self.database_error(source);
        let text = |column: &str| row.try_get::<String, _>(column).map_err(database_error);
        let integer = |column: &str| row.try_get::<i64, _>(column).map_err(database_error);
        JournalEvent::from_columns(EventColumns {
            run_id: &text("run_id")?,
            seq: integer("seq")?,
            step_id: &text("step_id")?,
            step_kind: &text("step_kind")?,
            event: &text("event")?,
            attempt: integer("attempt")?,
            at: &text("at")?,
            payload: &text("payload")?,
        })
    }
}
