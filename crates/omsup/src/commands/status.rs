//! `omsup status` (the current or last run, step by step, and the lock holder) and `omsup
//! history` (every run, one line each, rollbacks under the runs they undid), human or JSON.
//!
//! Where the journal is: `--state-dir DIR` (or `OMSUP_STATE_DIR`), else `.omsup/` next to the
//! plan file given with `-f`, else `.omsup/` in the current directory. Which journal: the plan
//! file's deployment name, or, without `-f`, the only journal in the state directory.
//!
//! JSON output comes from the versioned types in [`output`] (status `"format_version": 2`,
//! history 1), never the journal's internal types.

use omsup_journal::time::human_duration;
use omsup_journal::{
    Journal, LockHolder, RunInfo, RunOutcome, RunState, StepRecord, StepState, Timestamp,
};

use crate::cli::{OutputFormat, StateArgs};
use crate::commands::common::{journal_error, open_existing_journal, runtime};
use crate::exit_codes;
use crate::report::CliError;
use crate::style::Style;

/// Opens the journal `args` point at (see the module doc).
async fn open_journal(args: &StateArgs) -> Result<Journal, CliError> {
    open_existing_journal(args.file.as_deref(), args.state.state_dir.as_deref()).await
}

/// `omsup status`
pub fn run_status(args: &StateArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(async {
        let journal = open_journal(args).await?;
        let run = journal.last_run().await.map_err(journal_error)?;
        let lock = the_lock(&journal, args).await?;
        let rollbacks = match &run {
            Some(run) => journal
                .rollbacks_of(&run.info.run_id)
                .await
                .map_err(journal_error)?,
            None => Vec::new(),
        };
        let now = Timestamp::now();
        let text = match args.format {
            OutputFormat::Json => {
                let document = output::StatusOutput {
                    format_version: output::STATUS_FORMAT_VERSION,
                    deployment: journal.deployment().to_owned(),
                    run: run.as_ref().map(|run| {
                        output::RunOutput::of(run, &rollbacks, lock.holder.as_ref(), now)
                    }),
                    lock: lock
                        .holder
                        .as_ref()
                        .map(|holder| output::LockOutput::of(holder, lock.held_in)),
                };
                to_json(&document)?
            }
            OutputFormat::Human => {
                render_status_human(&journal, run.as_ref(), &rollbacks, &lock, now, style)
            }
        };
        anstream::print!("{text}");
        Ok(exit_codes::SUCCESS)
    })
}

/// `omsup history`
pub fn run_history(args: &StateArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(async {
        let journal = open_journal(args).await?;
        let runs = journal.runs().await.map_err(journal_error)?;
        let lock = journal.lock_holder().await.map_err(journal_error)?;
        let now = Timestamp::now();
        let text = match args.format {
            OutputFormat::Json => to_json(&output::HistoryOutput {
                format_version: output::HISTORY_FORMAT_VERSION,
                deployment: journal.deployment().to_owned(),
                runs: runs
                    .iter()
                    .map(|run| output::HistoryRunOutput::of(run, &runs, lock.as_ref(), now))
                    .collect(),
            })?,
            OutputFormat::Human => render_history_human(&journal, &runs, lock.as_ref(), now, style),
        };
        anstream::print!("{text}");
        Ok(exit_codes::SUCCESS)
    })
}

/// The deployment lock as `status` shows it, and where it is held.
struct TheLock {
    holder: Option<LockHolder>,
    /// `local` (this state directory) or `meta_db` (the meta database server).
    held_in: &'static str,
    /// Where the server's lock is, when it was looked at.
    server: Option<String>,
    /// Why the server's lock could not be read, if it could not.
    unknown: Option<String>,
}

/// The lock of the deployment: in the meta database server (where every run takes it, so a
/// holder on another machine shows), else the local journal's. A journal in the server has
/// its lock there; a local one with `-f FILE` looks in the server too.
async fn the_lock(journal: &Journal, args: &StateArgs) -> Result<TheLock, CliError> {
    let local = journal.lock_holder().await.map_err(journal_error)?;
    if let Some(state) = journal.shared_state() {
        return Ok(TheLock {
            holder: local,
            held_in: "meta_db",
            server: Some(state.describe()),
            unknown: None,
        });
    }
    let mut lock = TheLock {
        holder: local,
        held_in: "local",
        server: None,
        unknown: None,
    };
    let Some(file) = args.file.as_deref() else {
        return Ok(lock);
    };
    match crate::shared_lock::server_lock_holder(file, journal.lock_timing()).await {
        Ok((server, Some(holder))) => {
            lock.holder = Some(holder);
            lock.held_in = "meta_db";
            lock.server = Some(server);
        }
        Ok((server, None)) => lock.server = Some(server),
        Err(error) => lock.unknown = Some(error),
    }
    Ok(lock)
}

fn to_json<T: serde::Serialize>(document: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(document)
        .map(|json| format!("{json}\n"))
        .map_err(|error| {
            CliError::new("cannot encode the output as JSON").with_cause(error.to_string())
        })
}

/// `running` only while a live lock holds the run; a `running` run without one was
/// interrupted.
fn result_of(info: &RunInfo, lock: Option<&LockHolder>) -> &'static str {
    match info.outcome {
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::Failed => "failed",
        RunOutcome::Running => match lock {
            Some(holder) if holder.run_id == info.run_id && !holder.is_stale() => "running",
            _ => "interrupted",
        },
    }
}

/// Start to finish; for a running run, start to now; for an interrupted run, start to its last
/// journaled event (so the figure does not grow while nobody works on it).
fn duration_of(run: &RunState, lock: Option<&LockHolder>, now: Timestamp) -> std::time::Duration {
    let info = &run.info;
    let end = match (info.finished_at, result_of(info, lock)) {
        (Some(finished), _) => finished,
        (None, "interrupted") => last_activity(run),
        (None, _) => now,
    };
    end.duration_since(info.started_at)
}

fn last_activity(run: &RunState) -> Timestamp {
    run.steps
        .values()
        .flat_map(|record| [Some(record.intent_at), record.finished_at])
        .flatten()
        .chain(run.info.last_resumed_at)
        .fold(run.info.started_at, Timestamp::max)
}

/// A step as shown: journaled, or planned and not reached yet.
struct StepRow<'a> {
    step_id: &'a str,
    step_kind: &'a str,
    record: Option<&'a StepRecord>,
}

/// Planned steps in the engine's order, then any journaled step the plan did not list.
fn step_rows(run: &RunState) -> Vec<StepRow<'_>> {
    let mut rows: Vec<StepRow<'_>> = run
        .info
        .planned_steps
        .iter()
        .map(|planned| StepRow {
            step_id: planned.step_id.as_str(),
            step_kind: &planned.step_kind,
            record: run.steps.get(planned.step_id.as_str()),
        })
        .collect();
    let mut extra: Vec<&StepRecord> = run
        .steps
        .values()
        .filter(|record| {
            !run.info
                .planned_steps
                .iter()
                .any(|planned| planned.step_id == record.step_id)
        })
        .collect();
    extra.sort_by_key(|record| record.first_intent_at);
    rows.extend(extra.into_iter().map(|record| StepRow {
        step_id: record.step_id.as_str(),
        step_kind: &record.step_kind,
        record: Some(record),
    }));
    rows
}

fn steps_total(run: &RunState) -> usize {
    step_rows(run).len()
}

fn state_name(record: Option<&StepRecord>) -> &'static str {
    match record.map(|record| record.state) {
        None => "pending",
        Some(StepState::InFlight) => "in flight",
        Some(StepState::Succeeded) => "succeeded",
        Some(StepState::Failed) => "failed",
    }
}

fn paint_result(style: &Style, text: &str) -> String {
    match text {
        "succeeded" => style.green(text),
        "failed" | "interrupted" => style.red(text),
        "running" | "in flight" => style.yellow(text),
        _ => style.dim(text),
    }
}

fn render_status_human(
    journal: &Journal,
    run: Option<&RunState>,
    rollbacks: &[RunInfo],
    the_lock: &TheLock,
    now: Timestamp,
    style: &Style,
) -> String {
    let mut out = String::new();
    let lock = the_lock.holder.as_ref();
    let Some(run) = run else {
        out.push_str(&format!(
            "deployment `{}`: no runs recorded yet\n",
            journal.deployment()
        ));
        out.push_str(&lock_line(the_lock, style));
        return out;
    };
    let info = &run.info;
    let result = result_of(info, lock);
    out.push_str(&format!(
        "{} {} {}  {}\n",
        style.bold(info.kind.as_str()),
        style.bold("run"),
        style.bold(info.run_id.as_str()),
        paint_result(style, result)
    ));
    out.push_str(&format!("  deployment  {}\n", info.deployment));
    if let Some(undoes) = &info.undoes {
        out.push_str(&format!("  undoes      run {undoes}\n"));
    }
    out.push_str(&format!(
        "  started     {} by {} on {} (pid {})\n",
        info.started_at, info.started_by, info.started_on_host, info.started_pid
    ));
    match info.finished_at {
        Some(finished) => out.push_str(&format!(
            "  finished    {finished} after {}\n",
            human_duration(duration_of(run, lock, now))
        )),
        None if result == "interrupted" => out.push_str(&format!(
            "  stopped     after {}, last journaled at {} (not finished)\n",
            human_duration(duration_of(run, lock, now)),
            last_activity(run)
        )),
        None => out.push_str(&format!(
            "  elapsed     {} (not finished)\n",
            human_duration(duration_of(run, lock, now))
        )),
    }
    if info.resume_count > 0 {
        out.push_str(&format!(
            "  resumed     {} time{}{}\n",
            info.resume_count,
            if info.resume_count == 1 { "" } else { "s" },
            info.last_resumed_at
                .map(|at| format!(", last at {at}"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "  plan        {} (sha256 {}), fingerprint {}\n",
        info.plan_file_path.display(),
        info.plan_file_sha256,
        info.plan_fingerprint
    ));
    let rows = step_rows(run);
    out.push_str(&format!(
        "  steps       {}/{} done\n\n",
        run.steps_done(),
        rows.len()
    ));
    let id_width = rows
        .iter()
        .map(|row| row.step_id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let kind_width = rows
        .iter()
        .map(|row| row.step_kind.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&style.bold(&format!(
        "  {:<id_width$}  {:<kind_width$}  {:<11}  {:>8}  {:<24}  {:>9}\n",
        "STEP", "KIND", "STATE", "ATTEMPTS", "STARTED", "DURATION"
    )));
    for row in &rows {
        let state = state_name(row.record);
        let padded_state = format!("{state:<11}");
        let (attempts, started, duration) = match row.record {
            Some(record) => (
                record.attempts.to_string(),
                record.intent_at.to_rfc3339(),
                record
                    .duration()
                    .map(human_duration)
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        out.push_str(&format!(
            "  {:<id_width$}  {:<kind_width$}  {}  {:>8}  {:<24}  {:>9}\n",
            row.step_id,
            row.step_kind,
            paint_result(style, &padded_state),
            attempts,
            started,
            duration
        ));
        if let Some(record) = row.record
            && record.state == StepState::Failed
            && let Some(error) = &record.error
        {
            out.push_str(&format!("      {} {error}\n", style.red("error:")));
        }
    }
    out.push('\n');
    for rollback in rollbacks {
        out.push_str(&format!(
            "rolled back by run {} ({}, started {})\n",
            rollback.run_id,
            result_of(rollback, lock),
            rollback.started_at
        ));
    }
    out.push_str(&lock_line(the_lock, style));
    if let Some(down) = crate::downtime::down_since(run).filter(|_| result != "running") {
        out.push_str(&format!("{}\n", style.red(&down.headline(now))));
        out.push_str(&format!("{} {}\n", style.cyan("hint:"), down.ways_out()));
    }
    if run.in_flight().next().is_some() && result != "running" {
        out.push_str(&format!(
            "{} steps in flight had an intent and no outcome; `omsup resume` observes the world to finish them, `omsup rollback` undoes the run\n",
            style.cyan("hint:")
        ));
    } else if result == "failed" || result == "interrupted" {
        out.push_str(&format!(
            "{} `omsup resume` continues this run, `omsup rollback` undoes it\n",
            style.cyan("hint:")
        ));
    }
    out
}

fn lock_line(lock: &TheLock, style: &Style) -> String {
    let mut out = match &lock.holder {
        None => "lock: free\n".to_owned(),
        Some(holder) => {
            let mut line = format!("lock: held by {holder}\n");
            if holder.is_stale() {
                line.push_str(&format!(
                    "{} {}\n",
                    style.cyan("hint:"),
                    holder.takeover_hint()
                ));
            }
            line
        }
    };
    match (&lock.server, &lock.unknown) {
        (Some(server), _) => {
            out.push_str(&format!("      (in the meta database server: {server})\n"))
        }
        (None, Some(why)) => out.push_str(&format!(
            "{} the lock in the meta database server is unknown: {why}\n",
            style.yellow("note:")
        )),
        (None, None) => {}
    }
    out
}

fn render_history_human(
    journal: &Journal,
    runs: &[RunState],
    lock: Option<&LockHolder>,
    now: Timestamp,
    style: &Style,
) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str(&format!(
            "deployment `{}`: no runs recorded yet\n",
            journal.deployment()
        ));
        return out;
    }
    // Rollbacks go under the run they undid; runs whose undone run is unknown stay top level.
    let is_known =
        |run_id: &omsup_journal::RunId| runs.iter().any(|run| &run.info.run_id == run_id);
    let id_width = runs
        .iter()
        .map(|run| run.info.run_id.as_str().len())
        .max()
        .unwrap_or(3)
        + 2;
    out.push_str(&style.bold(&format!(
        "{:<id_width$}  {:<8}  {:<24}  {:>10}  {:<11}  {:>5}\n",
        "RUN", "KIND", "STARTED", "DURATION", "RESULT", "STEPS"
    )));
    let line = |run: &RunState, indent: &str| {
        let info = &run.info;
        let result = result_of(info, lock);
        let id = format!("{indent}{}", info.run_id);
        format!(
            "{:<id_width$}  {:<8}  {:<24}  {:>10}  {}  {:>5}\n",
            id,
            info.kind.as_str(),
            info.started_at.to_rfc3339(),
            human_duration(duration_of(run, lock, now)),
            paint_result(style, &format!("{result:<11}")),
            format!("{}/{}", run.steps_done(), steps_total(run)),
        )
    };
    for run in runs {
        if run.info.undoes.as_ref().is_some_and(is_known) {
            continue;
        }
        out.push_str(&line(run, ""));
        for rollback in runs
            .iter()
            .filter(|other| other.info.undoes.as_ref() == Some(&run.info.run_id))
        {
            out.push_str(&line(rollback, "└ "));
        }
    }
    out
}

/// The versioned JSON documents of `status` (`"format_version": 2`) and `history` (1). Fields are
/// only ever added within a version.
pub mod output {
    use serde::Serialize;
    use serde_json::Value;

    use super::{duration_of, result_of, state_name, step_rows};
    use omsup_journal::{LockHolder, RunInfo, RunState, Timestamp};

    /// 2: a step's `state` is one of `pending`, `in flight`, `succeeded`, `failed` (the undo
    /// states, which no run could reach, are gone) and `undo_attempts`, `undo_error` and
    /// `started_at` (always 0 or `null`) were removed.
    pub const STATUS_FORMAT_VERSION: u32 = 2;
    /// 1: unchanged since the first release.
    pub const HISTORY_FORMAT_VERSION: u32 = 1;

    #[derive(Debug, Serialize)]
    pub struct StatusOutput {
        pub format_version: u32,
        pub deployment: String,
        /// The current or last run; `null` when none was recorded.
        pub run: Option<RunOutput>,
        /// The lock holder; `null` when the lock is free.
        pub lock: Option<LockOutput>,
    }

    #[derive(Debug, Serialize)]
    pub struct RunOutput {
        pub run_id: String,
        /// `apply` or `rollback`
        pub kind: String,
        /// For a rollback: the run it undoes.
        pub undoes: Option<String>,
        /// `running`, `succeeded`, `failed` or `interrupted` (recorded running, no live lock).
        pub result: String,
        pub started_at: String,
        pub finished_at: Option<String>,
        pub duration_ms: u64,
        pub started_by: String,
        pub host: String,
        pub pid: u32,
        pub plan_file: String,
        pub plan_file_sha256: String,
        pub plan_fingerprint: String,
        pub resume_count: u32,
        pub steps_done: usize,
        pub steps_total: usize,
        pub steps: Vec<StepOutput>,
        /// Rollback runs that undo this run.
        pub rolled_back_by: Vec<String>,
        /// Set when the run stopped inside its downtime window: since when OMS is down (the
        /// first old container stopped, RFC 3339). Absent while the run is still running.
        pub down_since: Option<String>,
    }

    #[derive(Debug, Serialize)]
    pub struct StepOutput {
        pub step_id: String,
        pub kind: String,
        /// `pending`, `in flight`, `succeeded` or `failed`
        pub state: String,
        pub attempts: u32,
        pub intent_at: Option<String>,
        pub finished_at: Option<String>,
        pub duration_ms: Option<u64>,
        pub error: Option<String>,
        /// What the step recorded when it succeeded.
        pub outputs: Option<Value>,
    }

    #[derive(Debug, Serialize)]
    pub struct LockOutput {
        pub lock_id: String,
        pub run_id: String,
        pub purpose: String,
        pub user: String,
        pub host: String,
        pub pid: u32,
        pub since: String,
        pub heartbeat_at: String,
        pub stale: bool,
        pub stale_reason: Option<String>,
        /// `local` (the state directory's journal) or `meta_db` (the meta database server).
        pub held_in: String,
    }

    #[derive(Debug, Serialize)]
    pub struct HistoryOutput {
        pub format_version: u32,
        pub deployment: String,
        /// Oldest first.
        pub runs: Vec<HistoryRunOutput>,
    }

    #[derive(Debug, Serialize)]
    pub struct HistoryRunOutput {
        pub run_id: String,
        pub kind: String,
        pub undoes: Option<String>,
        pub rolled_back_by: Vec<String>,
        pub started_at: String,
        pub finished_at: Option<String>,
        pub duration_ms: u64,
        pub result: String,
        pub steps_done: usize,
        pub steps_total: usize,
    }

    fn millis(duration: std::time::Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
    }

    impl RunOutput {
        pub fn of(
            run: &RunState,
            rollbacks: &[RunInfo],
            lock: Option<&LockHolder>,
            now: Timestamp,
        ) -> Self {
            let info = &run.info;
            let rows = step_rows(run);
            Self {
                run_id: info.run_id.to_string(),
                kind: info.kind.as_str().to_owned(),
                undoes: info.undoes.as_ref().map(ToString::to_string),
                result: result_of(info, lock).to_owned(),
                started_at: info.started_at.to_rfc3339(),
                finished_at: info.finished_at.map(Timestamp::to_rfc3339),
                duration_ms: millis(duration_of(run, lock, now)),
                started_by: info.started_by.clone(),
                host: info.started_on_host.clone(),
                pid: info.started_pid,
                plan_file: info.plan_file_path.display().to_string(),
                plan_file_sha256: info.plan_file_sha256.clone(),
                plan_fingerprint: info.plan_fingerprint.clone(),
                resume_count: info.resume_count,
                steps_done: run.steps_done(),
                steps_total: rows.len(),
                steps: rows
                    .iter()
                    .map(|row| {
                        let record = row.record;
                        StepOutput {
                            step_id: row.step_id.to_owned(),
                            kind: row.step_kind.to_owned(),
                            state: state_name(record).to_owned(),
                            attempts: record.map_or(0, |record| record.attempts),
                            intent_at: record.map(|record| record.intent_at.to_rfc3339()),
                            finished_at: record
                                .and_then(|record| record.finished_at)
                                .map(Timestamp::to_rfc3339),
                            duration_ms: record.and_then(|record| record.duration()).map(millis),
                            error: record.and_then(|record| record.error.clone()),
                            outputs: record.and_then(|record| record.output.clone()),
                        }
                    })
                    .collect(),
                rolled_back_by: rollbacks
                    .iter()
                    .map(|rollback| rollback.run_id.to_string())
                    .collect(),
                down_since: (result_of(info, lock) != "running")
                    .then(|| crate::downtime::down_since(run))
                    .flatten()
                    .map(|down| down.since.to_rfc3339()),
            }
        }
    }

    impl LockOutput {
        pub fn of(holder: &LockHolder, held_in: &str) -> Self {
            Self {
                lock_id: holder.lock_id.to_string(),
                run_id: holder.run_id.to_string(),
                purpose: holder.purpose.clone(),
                user: holder.user.clone(),
                host: holder.host.clone(),
                pid: holder.pid,
                since: holder.acquired_at.to_rfc3339(),
                heartbeat_at: holder.heartbeat_at.to_rfc3339(),
                stale: holder.is_stale(),
                stale_reason: holder.is_stale().then(|| holder.staleness_reason()),
                held_in: held_in.to_owned(),
            }
        }
    }

    impl HistoryRunOutput {
        pub fn of(
            run: &RunState,
            all: &[RunState],
            lock: Option<&LockHolder>,
            now: Timestamp,
        ) -> Self {
            let info = &run.info;
            Self {
                run_id: info.run_id.to_string(),
                kind: info.kind.as_str().to_owned(),
                undoes: info.undoes.as_ref().map(ToString::to_string),
                rolled_back_by: all
                    .iter()
                    .filter(|other| other.info.undoes.as_ref() == Some(&info.run_id))
                    .map(|other| other.info.run_id.to_string())
                    .collect(),
                started_at: info.started_at.to_rfc3339(),
                finished_at: info.finished_at.map(Timestamp::to_rfc3339),
                duration_ms: millis(duration_of(run, lock, now)),
                result: result_of(info, lock).to_owned(),
                steps_done: run.steps_done(),
                steps_total: step_rows(run).len(),
            }
        }
    }
}
