//! Reading the journal: runs (oldest first, last, unfinished, last apply, rollbacks of a run),
//! a run replayed through the state machine, its document and its raw events. The same SQL
//! serves both backends ([`crate::journal::Backend`]).

use std::path::PathBuf;

use serde_json::Value;
use sqlx::AssertSqlSafe;

use crate::error::JournalError;
use crate::event::{self, EventColumns, JournalEvent, RunState};
use crate::ids::RunId;
use crate::journal::{Journal, ReadRow, on_pool};
use crate::run::{PlannedStep, RunInfo, RunKind, RunOutcome};
use crate::time::Timestamp;

impl Journal {
    /// The runs table and the condition that scopes it to this deployment (one `?`).
    fn runs_of_deployment(&self) -> (String, &str) {
        let tables = &self.inner.tables;
        (
            format!("{} WHERE {} = ?", tables.runs, tables.scope_column),
            &tables.scope_value,
        )
    }

    /// Every run, oldest first.
    pub async fn run_infos(&self) -> Result<Vec<RunInfo>, JournalError> {
        let (runs, scope) = self.runs_of_deployment();
        let sql = format!("SELECT * FROM {runs} ORDER BY ordinal");
        on_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(scope)
                .fetch_all(pool)
                .await
                .map_err(|source| self.database_error(source))?;
            rows.iter().map(|row| self.run_info_from_row(row)).collect()
        })
    }

    pub async fn run_info(&self, run_id: &RunId) -> Result<RunInfo, JournalError> {
        let (runs, scope) = self.runs_of_deployment();
        let sql = format!("SELECT * FROM {runs} AND run_id = ?");
        let info = on_pool!(self, pool => {
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(scope)
                .bind(run_id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(|source| self.database_error(source))?;
            row.map(|row| self.run_info_from_row(&row)).transpose()?
        });
        info.ok_or_else(|| JournalError::RunNotFound {
            run_id: run_id.clone(),
        })
    }

    /// A run replayed from its events (rejecting illegal transitions).
    pub async fn run(&self, run_id: &RunId) -> Result<RunState, JournalError> {
        let info = self.run_info(run_id).await?;
        let events = self.events(run_id).await?;
        event::replay(info, &events)
    }

    /// The document the run was begun with ([`crate::NewRun::document`]): what it executes.
    pub async fn run_document(&self, run_id: &RunId) -> Result<Value, JournalError> {
        let (runs, scope) = self.runs_of_deployment();
        let sql = format!("SELECT document FROM {runs} AND run_id = ?");
        let text: Option<String> = on_pool!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(scope)
            .bind(run_id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(|source| self.database_error(source))?);
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
        self.last_run_where("").await
    }

    /// The most recent run matching `condition` (SQL after the deployment's scope).
    async fn last_run_where(&self, condition: &str) -> Result<Option<RunState>, JournalError> {
        let (runs, scope) = self.runs_of_deployment();
        let sql = format!("SELECT run_id FROM {runs}{condition} ORDER BY ordinal DESC LIMIT 1");
        let run_id: Option<String> = on_pool!(self, pool => sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(scope)
            .fetch_optional(pool)
            .await
            .map_err(|source| self.database_error(source))?);
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
        self.last_run_where(" AND kind = 'apply'").await
    }

    /// The rollback runs that undo `run_id`, oldest first.
    pub async fn rollbacks_of(&self, run_id: &RunId) -> Result<Vec<RunInfo>, JournalError> {
        let (runs, scope) = self.runs_of_deployment();
        let sql = format!("SELECT * FROM {runs} AND undoes_run_id = ? ORDER BY ordinal");
        on_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(scope)
                .bind(run_id.as_str())
                .fetch_all(pool)
                .await
                .map_err(|source| self.database_error(source))?;
            rows.iter().map(|row| self.run_info_from_row(row)).collect()
        })
    }

    /// The raw event log of a run, in seq order (not checked; see [`Journal::run`]).
    pub async fn events(&self, run_id: &RunId) -> Result<Vec<JournalEvent>, JournalError> {
        let sql = format!(
            "SELECT * FROM {} WHERE run_id = ? ORDER BY seq",
            self.inner.tables.events
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(run_id.as_str())
                .fetch_all(pool)
                .await
                .map_err(|source| self.database_error(source))?;
            rows.iter().map(|row| self.event_from_row(row)).collect()
        })
    }

    pub(crate) fn run_info_from_row(&self, row: &impl ReadRow) -> Result<RunInfo, JournalError> {
        let get_text = |column: &str| -> Result<String, JournalError> {
            row.text(column)
                .map_err(|source| self.database_error(source))
        };
        let get_optional = |column: &str| -> Result<Option<String>, JournalError> {
            row.optional_text(column)
                .map_err(|source| self.database_error(source))
        };
        let get_integer = |column: &str| -> Result<i64, JournalError> {
            row.integer(column)
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

    pub(crate) fn event_from_row(&self, row: &impl ReadRow) -> Result<JournalEvent, JournalError> {
        let database_error = |source| self.database_error(source);
        let text = |column: &str| row.text(column).map_err(database_error);
        let integer = |column: &str| row.integer(column).map_err(database_error);
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
