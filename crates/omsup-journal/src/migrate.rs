//! Moving a deployment's history between backends ([`Journal::copy_history_to`]): every run
//! with its document and every event, verbatim (same ids, times and payloads), into a journal
//! that holds no run yet. The destination replays to the same runs as the source.

use sqlx::AssertSqlSafe;

use crate::error::JournalError;
use crate::journal::{Journal, ReadRow, on_pool, on_tx};
use crate::lock::DeploymentLock;

/// A run's row as stored (the columns both backends have).
struct RunRow {
    text: Vec<(&'static str, Option<String>)>,
    integers: Vec<(&'static str, i64)>,
}

const RUN_TEXT_COLUMNS: [&str; 15] = [
    "run_id",
    "kind",
    "undoes_run_id",
    "deployment",
    "plan_fingerprint",
    "plan_file_path",
    "plan_file_sha256",
    "planned_steps",
    "started_by",
    "started_on_host",
    "omsup_version",
    "started_at",
    "finished_at",
    "outcome",
    "last_resumed_at",
];
const RUN_INTEGER_COLUMNS: [&str; 2] = ["started_pid", "resume_count"];

impl RunRow {
    fn read(row: &impl ReadRow) -> Result<(Self, String), sqlx::Error> {
        let mut text = Vec::new();
        for column in RUN_TEXT_COLUMNS {
            text.push((column, row.optional_text(column)?));
        }
        let mut integers = Vec::new();
        for column in RUN_INTEGER_COLUMNS {
            integers.push((column, row.integer(column)?));
        }
        Ok((Self { text, integers }, row.text("document")?))
    }
}

/// What [`Journal::copy_history_to`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub runs: usize,
    pub events: usize,
}

impl Journal {
    /// Copies every run and event of this journal into `destination`, in one transaction of
    /// the destination fenced by `destination_lock`. Refused when the destination already
    /// holds a run of the deployment (a history is moved once, never merged).
    pub async fn copy_history_to(
        &self,
        destination: &Journal,
        destination_lock: &DeploymentLock,
    ) -> Result<Copied, JournalError> {
        let (runs_sql, events_sql) = {
            let tables = &self.inner.tables;
            (
                format!(
                    "SELECT * FROM {} WHERE {} = ? ORDER BY ordinal",
                    tables.runs, tables.scope_column
                ),
                format!(
                    "SELECT * FROM {} WHERE run_id = ? ORDER BY seq",
                    tables.events
                ),
            )
        };
        let scope = &self.inner.tables.scope_value;
        let mut runs = Vec::new();
        on_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(runs_sql))
                .bind(scope)
                .fetch_all(pool)
                .await
                .map_err(|source| self.database_error(source))?;
            for row in &rows {
                runs.push(RunRow::read(row).map_err(|source| self.database_error(source))?);
            }
        });
        let mut events = Vec::new();
        for (run, _) in &runs {
            let run_id = run.text[0].1.clone().unwrap_or_default();
            let sql = events_sql.clone();
            on_pool!(self, pool => {
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(&run_id)
                    .fetch_all(pool)
                    .await
                    .map_err(|source| self.database_error(source))?;
                for row in &rows {
                    events.push(self.event_from_row(row)?);
                }
            });
        }

        let tables = &destination.inner.tables;
        let scoped = tables.scope_column != "deployment";
        let columns: Vec<&str> = RUN_TEXT_COLUMNS
            .iter()
            .chain(RUN_INTEGER_COLUMNS.iter())
            .copied()
            .chain(["document"])
            .chain(scoped.then_some("lock_key"))
            .collect();
        let insert_run = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            tables.runs,
            columns.join(", "),
            vec!["?"; columns.len()].join(", ")
        );
        let insert_event = format!(
            "INSERT INTO {} (run_id, seq, step_id, step_kind, `event`, attempt, `at`, payload)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            tables.events
        );
        let count = format!(
            "SELECT COUNT(*) FROM {} WHERE {} = ?",
            tables.runs, tables.scope_column
        );
        let mut transaction = destination.begin_write().await?;
        destination
            .check_lock(&mut transaction, destination_lock.token.as_ref())
            .await?;
        on_tx!(&mut transaction, connection => {
            let existing: i64 = sqlx::query_scalar(AssertSqlSafe(count))
                .bind(&tables.scope_value)
                .fetch_one(&mut *connection)
                .await
                .map_err(|source| destination.database_error(source))?;
            if existing > 0 {
                return Err(JournalError::HistoryExists {
                    destination: destination.location(),
                    runs: u64::try_from(existing).unwrap_or(0),
                });
            }
            for (run, document) in &runs {
                let mut query = sqlx::query(AssertSqlSafe(insert_run.clone()));
                for (_, value) in &run.text {
                    query = query.bind(value.clone());
                }
                for (_, value) in &run.integers {
                    query = query.bind(*value);
                }
                query = query.bind(document.clone());
                if scoped {
                    query = query.bind(tables.scope_value.clone());
                }
                query
                    .execute(&mut *connection)
                    .await
                    .map_err(|source| destination.database_error(source))?;
            }
            for event in &events {
                sqlx::query(AssertSqlSafe(insert_event.clone()))
                    .bind(event.run_id.as_str())
                    .bind(i64::try_from(event.seq).unwrap_or(i64::MAX))
                    .bind(event.step_id.as_str())
                    .bind(&event.step_kind)
                    .bind(event.kind.as_str())
                    .bind(i64::from(event.attempt))
                    .bind(event.at.to_rfc3339())
                    .bind(event.payload.to_string())
                    .execute(&mut *connection)
                    .await
                    .map_err(|source| destination.database_error(source))?;
            }
        });
        transaction
            .commit()
            .await
            .map_err(|source| destination.database_error(source))?;
        Ok(Copied {
            runs: runs.len(),
            events: events.len(),
        })
    }
}
