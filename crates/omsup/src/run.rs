//! The life of a run, shared by `apply`, `resume` and `rollback`: the deployment lock
//! ([`take_lock`], [`release`]), the confirmation ([`confirm`]), the journaled document
//! ([`RunDocument`], checked for its format version), reopening an unfinished run for
//! `resume` ([`reopen`], [`plan_file_for_resume`]), driving the steps through the runner with
//! any executor, forward or undo ([`drive`]), and closing the run with its summary or a typed
//! error ([`finish`]).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use omsup_engine::Step;
use omsup_exec::executor::Executor;
use omsup_journal::{
    DeploymentLock, Journal, LockId, LockPurpose, LockRequest, RunId, RunOutcome, RunState,
    RunWriter, StepState, Timestamp,
};
use omsup_model::PlanFile;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::commands::common::journal_error;
use crate::commands::plan::read_plan_file;
use crate::exit_codes;
use crate::progress::{Event, ProgressSink, note};
use crate::report::CliError;
use crate::runner::{Earlier, Failpoints, RunReport, Runner};
use crate::style::Style;

/// Takes the lock, turning a held lock into a refusal that names the holder.
pub(crate) async fn take_lock(
    journal: &Journal,
    run_id: RunId,
    purpose: LockPurpose,
    force_unlock: Option<&str>,
) -> Result<DeploymentLock, CliError> {
    let lock = journal
        .acquire_lock(LockRequest {
            run_id,
            purpose,
            force_unlock: force_unlock.map(LockId::new),
        })
        .await
        .map_err(crate::shared_lock::refusal)?;
    // From here a signal must not kill omsup with the lock held.
    crate::interrupt::listen();
    Ok(lock)
}

/// Refuses (exit 3) while a run of the deployment is unfinished, naming it and where it
/// stopped; `hint` says what the command needs first.
pub(crate) async fn refuse_unfinished(journal: &Journal, hint: &str) -> Result<(), CliError> {
    match journal.unfinished_run().await.map_err(journal_error)? {
        None => Ok(()),
        Some(run) => Err(CliError::new(format!(
            "run `{}` ({}) of deployment `{}` is unfinished: {}",
            run.info.run_id,
            run.info.kind,
            journal.deployment(),
            where_it_stopped(&run)
        ))
        .with_hint(hint)
        .with_exit_code(exit_codes::REFUSED)),
    }
}

pub(crate) async fn release(lock: DeploymentLock) {
    if let Err(error) = lock.release().await {
        tracing::warn!(%error, "could not release the deployment lock");
    }
}

/// Asks on the terminal; `yes` skips the question; with no terminal, refuses. A signal that
/// arrived since the lock (while planning) or arrives at the question stops the command here,
/// before anything changed.
pub(crate) fn confirm(question: &str, yes: bool) -> Result<(), CliError> {
    crate::interrupt::check_before_the_run()?;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(
            "refusing to go on without a confirmation: standard input is not a terminal",
        )
        .with_hint("review what is shown above, then run the command again with `--yes`")
        .with_exit_code(exit_codes::REFUSED));
    }
    anstream::eprint!("{question} Only `yes` is accepted: ");
    let _ = std::io::stderr().flush();
    // The line is read on a thread of its own so that Ctrl-C at the question is seen.
    let (sender, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        let _ = sender.send(answer);
    });
    let answer = loop {
        crate::interrupt::check_before_the_run()?;
        match answers.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(answer) => break answer,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break String::new(),
        }
    };
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(CliError::new("cancelled: nothing was changed").with_exit_code(exit_codes::REFUSED))
    }
}

/// A document a run is journaled with ([`NewRun::document`]): its format version is checked
/// before anything else is read, so a run journaled by another omsup release is refused with a
/// message naming the version instead of misread.
pub(crate) trait RunDocument: Serialize + DeserializeOwned {
    /// The version this omsup writes and reads.
    const FORMAT_VERSION: u32;
    /// `apply` or `rollback`.
    const WHAT: &'static str;
}

/// The document run `run_id` was begun with, as `T`; refused when its format version is not
/// `T::FORMAT_VERSION`.
pub(crate) async fn run_document<T: RunDocument>(
    journal: &Journal,
    run_id: &RunId,
) -> Result<T, CliError> {
    #[derive(Deserialize)]
    struct Versioned {
        format_version: u32,
    }
    let value = journal.run_document(run_id).await.map_err(journal_error)?;
    let version = serde_json::from_value::<Versioned>(value.clone())
        .ok()
        .map(|v| v.format_version);
    if version != Some(T::FORMAT_VERSION) {
        return Err(CliError::new(format!(
            "run `{run_id}` was journaled with {} document format version {}; this omsup reads version {}",
            T::WHAT,
            version.map_or_else(|| "unknown".to_owned(), |v| v.to_string()),
            T::FORMAT_VERSION
        ))
        .with_hint(
            "finish the run (`omsup resume` or `omsup rollback`) with the omsup release that began it",
        )
        .with_exit_code(exit_codes::REFUSED));
    }
    serde_json::from_value(value).map_err(|error| {
        CliError::new(format!(
            "the journal does not hold the plan of run `{run_id}`"
        ))
        .with_cause(error.to_string())
    })
}

/// The plan file a journaled run continues with (`-f FILE`, else the path it began with; see
/// [`plan_file_for_resume`]) and its secrets, registered with the journal; then the deployment
/// lock is shared in the meta database server (every journaled run takes it before acting).
pub(crate) async fn journaled_plan_file(
    journal: &Journal,
    lock: &DeploymentLock,
    journaled: JournaledPlanFile<'_>,
    style: &Style,
    progress: &dyn ProgressSink,
) -> Result<(PlanFile, omsup_exec::secrets::Secrets), CliError> {
    let path = journaled
        .given
        .map_or_else(|| PathBuf::from(journaled.path), Path::to_path_buf);
    let plan_file = plan_file_for_resume(&path, journaled.text, style, progress)?;
    let secrets = secrets_for(&plan_file, journal)?;
    crate::shared_lock::share_lock(
        lock,
        &plan_file,
        &secrets,
        journaled.purpose,
        journaled.force_unlock,
    )
    .await?;
    Ok((plan_file, secrets))
}

/// Where [`journaled_plan_file`] finds the plan file, and how it shares the lock.
pub(crate) struct JournaledPlanFile<'a> {
    /// `-f FILE`, when given.
    pub given: Option<&'a Path>,
    /// The path and text journaled with the run.
    pub path: &'a str,
    pub text: &'a str,
    pub purpose: LockPurpose,
    /// `--force-unlock LOCK_ID`, when given.
    pub force_unlock: Option<&'a str>,
}

/// Reopens an unfinished run for `omsup resume`: says where it stopped and what is left, asks,
/// marks it running again and closes the steps an interrupted attempt left in flight.
pub(crate) async fn reopen(
    journal: &Journal,
    lock: &DeploymentLock,
    run: &RunState,
    what: &str,
    total_steps: usize,
    yes: bool,
    progress: &dyn ProgressSink,
) -> Result<RunWriter, CliError> {
    let run_id = &run.info.run_id;
    note(
        progress,
        format!(
            "Resuming {what} `{run_id}` of deployment `{}`: {} of {total_steps} steps left ({}).",
            journal.deployment(),
            total_steps.saturating_sub(run.steps_done()),
            where_it_stopped(run)
        ),
    );
    confirm(&format!("Resume {what} `{run_id}`?"), yes)?;
    let writer = journal
        .resume_run(lock, run_id)
        .await
        .map_err(journal_error)?;
    close_interrupted(&writer, run).await?;
    Ok(writer)
}

/// Closes every step an interrupted attempt left in flight, so it may run again.
async fn close_interrupted(writer: &RunWriter, run: &RunState) -> Result<(), CliError> {
    for record in run.in_flight() {
        writer
            .interrupted(
                record.step_id.as_str(),
                "the run stopped during this step; it runs again and first observes what is already done",
            )
            .await
            .map_err(journal_error)?;
    }
    Ok(())
}

/// The secrets a plan file names, registered with the journal so no payload may hold them.
pub(crate) fn secrets_for(
    plan_file: &PlanFile,
    journal: &Journal,
) -> Result<omsup_exec::secrets::Secrets, CliError> {
    let secrets = crate::commands::common::secrets_of(plan_file)?;
    journal.register_secret(secrets.meta_password.expose());
    Ok(secrets)
}

/// A run that cannot reach its daemons or database: nothing was done by this attempt.
pub(crate) fn connection_failed(message: String) -> CliError {
    CliError::new(message)
        .with_hint("nothing was changed by this attempt; fix the connection, then `omsup resume`")
}

/// One run, apply or rollback, as [`drive`] takes it.
pub(crate) struct Drive<'a, X: Executor> {
    pub writer: &'a RunWriter,
    /// `apply`, `resume` or `rollback`: the progress header.
    pub kind: &'static str,
    /// What the summary calls the run: `apply` or `rollback`.
    pub what: &'static str,
    pub deployment: String,
    pub steps: &'a [Step<X::Kind>],
    pub executor: &'a X,
    /// The run as an earlier attempt left it (resume), if any.
    pub before: Option<&'a RunState>,
    pub parallelism: usize,
    /// Masked in failure messages.
    pub secret: &'a str,
    /// The downtime window a rehearsal predicted, compared with the real one in the summary.
    pub estimate_ms: Option<u64>,
}

/// Runs the steps not yet succeeded in `drive.before` through the runner (each journaled),
/// then finishes the run and reports. Apply, resume and rollback all end here.
pub(crate) async fn drive<X: Executor>(
    drive: Drive<'_, X>,
    progress: &std::sync::Arc<dyn ProgressSink>,
) -> Result<u8, CliError> {
    let sink = progress.clone();
    let progress = progress.as_ref();
    let run_id = drive.writer.run_id().to_string();
    let earlier = match drive.before {
        Some(run) => Earlier::read(run, drive.executor).map_err(|message| {
            CliError::new(message).with_hint(
                "the journal was written by another omsup release; finish the run with it",
            )
        })?,
        None => Earlier::default(),
    };
    progress.event(&Event::RunStarted {
        run_id: run_id.clone(),
        kind: drive.kind.to_owned(),
        deployment: drive.deployment,
        steps: drive.steps.iter().map(|s| s.id.to_string()).collect(),
        already_done: earlier.done.iter().map(ToString::to_string).collect(),
    });
    crate::interrupt::install(sink);
    let runner = Runner {
        writer: drive.writer,
        progress,
        parallelism: drive.parallelism,
        failpoints: Failpoints::from_env(),
        redact: vec![drive.secret.to_owned()],
    };
    let report = runner.run(drive.steps, &earlier, drive.executor).await;
    finish(
        drive.writer,
        &run_id,
        report,
        progress,
        (drive.what, drive.estimate_ms),
    )
    .await
}

/// Ends a run in the journal, emits `run_finished`, prints the summary and what to do next.
async fn finish(
    writer: &RunWriter,
    run_id: &str,
    report: RunReport,
    progress: &dyn ProgressSink,
    (what, estimate_ms): (&str, Option<u64>),
) -> Result<u8, CliError> {
    if report.interrupted && report.journal_error.is_none() {
        return interrupted(writer, run_id, report, progress, what).await;
    }
    let outcome = if report.is_success() {
        RunOutcome::Succeeded
    } else {
        RunOutcome::Failed
    };
    let finished = writer.finish(outcome).await;
    if report.is_success() && finished.is_ok() {
        let estimate = estimate_ms
            .map(|ms| format!(" (the rehearsal estimated {:.1} s)", ms as f64 / 1000.0))
            .unwrap_or_default();
        let downtime = report
            .downtime
            .map(|d| format!("; downtime window {:.1} s{estimate}", d.as_secs_f64()))
            .unwrap_or_default();
        note(
            progress,
            format!(
                "{} complete: run `{run_id}`: {} steps in {:.1} s{downtime}.",
                capitalize(what),
                report.succeeded.len(),
                report.took.as_secs_f64(),
            ),
        );
    }
    progress.event(&Event::RunFinished {
        run_id: run_id.to_owned(),
        outcome: outcome.as_str().to_owned(),
        took_ms: report.took.as_millis() as u64,
        downtime_ms: report.downtime.map(|d| d.as_millis() as u64),
        succeeded: report.succeeded.len(),
        failed: report.failed.len(),
        not_started: report.not_started.len(),
    });
    progress.finish();
    // A run that failed keeps its failures in the error also when its end could not be
    // journaled (the meta database server, which holds the lock, stopped answering, say).
    let unrecorded_end = match finished {
        Ok(_) if report.is_success() => return Ok(exit_codes::SUCCESS),
        Ok(_) => None,
        Err(error) if report.is_success() => return Err(journal_error(error)),
        Err(error) => Some(error),
    };
    let failed: Vec<&str> = report.failed.iter().map(|f| f.step.as_str()).collect();
    let mut error = CliError::new(format!(
        "{what} run `{run_id}` stopped at {}: {} step{} failed, {} not started",
        failed
            .iter()
            .map(|step| format!("`{step}`"))
            .collect::<Vec<_>>()
            .join(", "),
        report.failed.len(),
        if report.failed.len() == 1 { "" } else { "s" },
        report.not_started.len()
    ));
    let mut step_hint = None;
    for failure in &report.failed {
        error = error.with_cause(failure.message.clone());
        for cause in &failure.causes {
            error = error.with_cause(cause.clone());
        }
        if failure.hint.is_some() {
            step_hint.clone_from(&failure.hint);
        }
    }
    if let Some(journal_error) = report.journal_error {
        error = error.with_cause(journal_error);
    }
    if let Some(unrecorded) = unrecorded_end {
        error = error.with_cause(format!(
            "the journal could not record the run's end: {unrecorded}"
        ));
        step_hint = Some(
            "once omsup's state answers again, `omsup resume` re-runs every step whose outcome the journal does not hold (each is idempotent); `omsup status` shows them".to_owned(),
        );
    }
    if let Some(down) = down_now(writer).await {
        error = error.with_cause(down.headline(Timestamp::now()));
        let fix = step_hint.unwrap_or_else(|| "fix the cause".to_owned());
        return Err(error.with_hint(format!(
            "{fix}; then {}; `omsup status` shows every step",
            down.ways_out()
        )));
    }
    Err(error.with_hint(step_hint.unwrap_or_else(|| {
        "fix the cause, then `omsup resume` continues where it stopped; `omsup rollback` undoes the run; `omsup status` shows every step".to_owned()
    })))
}

/// Whether the run, as journaled now, stopped inside the downtime window.
async fn down_now(writer: &RunWriter) -> Option<crate::downtime::Down> {
    let state = writer.state().await.ok()?;
    crate::downtime::down_since(&state)
}

/// The end of a run stopped by SIGINT or SIGTERM: the run stays unfinished in the journal (its
/// running steps have their outcomes), the caller releases the lock, and the summary says what
/// was done, whether OMS is down, and the exact command that continues.
async fn interrupted(
    writer: &RunWriter,
    run_id: &str,
    report: RunReport,
    progress: &dyn ProgressSink,
    what: &str,
) -> Result<u8, CliError> {
    note(
        progress,
        format!(
            "Interrupted: {what} run `{run_id}` stopped after {:.1} s: {} steps done in this attempt, \
             {} failed, {} not started; every step that ran has its outcome in the journal.",
            report.took.as_secs_f64(),
            report.succeeded.len(),
            report.failed.len(),
            report.not_started.len()
        ),
    );
    for failure in &report.failed {
        note(
            progress,
            format!("  failed: `{}`: {}", failure.step, failure.message),
        );
    }
    if let Some(down) = down_now(writer).await {
        note(progress, format!("{}.", down.headline(Timestamp::now())));
        note(progress, format!("Ways out: {}.", down.ways_out()));
    }
    note(
        progress,
        format!("Continue with: {}", continue_command(writer).await),
    );
    progress.event(&Event::RunFinished {
        run_id: run_id.to_owned(),
        outcome: "interrupted".to_owned(),
        took_ms: report.took.as_millis() as u64,
        downtime_ms: report.downtime.map(|d| d.as_millis() as u64),
        succeeded: report.succeeded.len(),
        failed: report.failed.len(),
        not_started: report.not_started.len(),
    });
    progress.finish();
    Ok(exit_codes::INTERRUPTED)
}

/// `omsup resume -f PLAN` (with `--state-dir DIR` when a local journal is not in the plan's
/// default state directory).
async fn continue_command(writer: &RunWriter) -> String {
    let journal_dir = writer
        .journal()
        .file()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let state = writer.state().await;
    let (Some(journal_dir), Ok(state)) = (journal_dir, &state) else {
        return match (state, writer.journal().file()) {
            (Ok(state), None) => format!("omsup resume -f {}", state.info.plan_file_path.display()),
            _ => "omsup resume -f PLAN".to_owned(),
        };
    };
    let plan = state.info.plan_file_path.clone();
    let default = crate::commands::common::state_dir_for(Some(&plan), None);
    let same = |a: &Path, b: &Path| std::path::absolute(a).ok() == std::path::absolute(b).ok();
    if same(&default, &journal_dir) {
        format!("omsup resume -f {}", plan.display())
    } else {
        format!(
            "omsup resume -f {} --state-dir {}",
            plan.display(),
            journal_dir.display()
        )
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The plan file to resume with: the one the run began with, or a changed one when every
/// change is harmless (only `[timeouts]`, `[health]`, comments or formatting); otherwise a refusal naming
/// the changed sections.
pub(crate) fn plan_file_for_resume(
    path: &Path,
    original_text: &str,
    style: &Style,
    progress: &dyn ProgressSink,
) -> Result<PlanFile, CliError> {
    let original: PlanFile = toml::from_str(original_text).map_err(|error| {
        CliError::new("the journal's copy of the plan file cannot be read")
            .with_cause(error.to_string())
    })?;
    let (current, bytes) = match read_plan_file(path, style) {
        Ok(read) => read,
        Err(error) if !path.exists() => {
            note(
                progress,
                format!(
                    "the plan file `{}` is gone; resuming with the copy kept in the journal",
                    path.display()
                ),
            );
            drop(error);
            return Ok(original);
        }
        Err(error) => return Err(error),
    };
    if sha256_hex(&bytes) == sha256_hex(original_text.as_bytes()) {
        return Ok(original);
    }
    let changed = changed_sections(&original, &current);
    let harmful: Vec<&String> = changed
        .iter()
        .filter(|section| !HARMLESS_SECTIONS.contains(&section.as_str()))
        .collect();
    if changed.is_empty() {
        note(
            progress,
            format!(
                "the plan file `{}` changed only in comments or formatting since the run began",
                path.display()
            ),
        );
        return Ok(original);
    }
    if harmful.is_empty() {
        note(
            progress,
            format!(
                "the plan file `{}` changed in {} since the run began; harmless, resuming with the new values",
                path.display(),
                changed
                    .iter()
                    .map(|s| format!("[{s}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return Ok(current);
    }
    Err(CliError::new(format!(
        "the plan file `{}` changed since the run began, in {}",
        path.display(),
        harmful
            .iter()
            .map(|s| format!("[{s}]"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .with_cause(format!(
        "only {} may change during a run",
        HARMLESS_SECTIONS
            .iter()
            .map(|s| format!("[{s}]"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .with_hint("undo the change to resume, or `omsup rollback` and plan again")
    .with_exit_code(exit_codes::REFUSED))
}

/// Sections of the plan file a resume accepts changes in: how long to wait, and how health is
/// checked (a failed `online.verify` may be fixed by trusting the nodes' certificates), and
/// where `omsup rehearse` runs (no run uses it).
const HARMLESS_SECTIONS: &[&str] = &["timeouts", "health", "rehearsal"];

/// The top-level sections whose values differ.
fn changed_sections(before: &PlanFile, after: &PlanFile) -> Vec<String> {
    let before = serde_json::to_value(before).expect("a plan file serializes");
    let after = serde_json::to_value(after).expect("a plan file serializes");
    let empty = serde_json::Map::new();
    let (before, after) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .cloned()
        .collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `stopped at step X (failed: ...)` / `interrupted during X` / `N of M steps done`.
pub(crate) fn where_it_stopped(run: &RunState) -> String {
    if let Some(record) = run.in_flight().next() {
        return format!("interrupted during step `{}`", record.step_id);
    }
    if let Some(record) = run.with_state(StepState::Failed).next() {
        return format!(
            "stopped at step `{}` ({})",
            record.step_id,
            record.error.as_deref().unwrap_or("failed")
        );
    }
    format!(
        "{} of {} steps done",
        run.steps_done(),
        run.info.planned_steps.len()
    )
}
