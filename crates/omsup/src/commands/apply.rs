//! `omsup apply -f FILE | SAVED_PLAN` and `omsup resume`: execute the step DAG with a durable
//! journal.
//!
//! apply: take the deployment lock, refuse while another run is unfinished, observe and plan
//! (or check that a saved plan's observed facts still hold, naming those that changed), show
//! the plan, ask for confirmation (`--yes`; with no terminal and no `--yes`, refuse), then run
//! the steps through [`crate::runner`]: each step's intent is durable before it acts.
//!
//! resume: continue the last unfinished run from its journal with the plan it was begun with
//! (never a re-plan): succeeded steps are not repeated; a step with an intent and no outcome
//! is closed as interrupted and runs again, and its executor observes what is already done
//! (our labelled container exists, HA is already off, ...) before acting; a failed step is
//! retried. A changed plan file is refused unless only harmless sections changed.
//!
//! Exit codes: 0 done (or nothing to do), 1 a step failed or a service is unreachable, 3
//! refused before touching anything (stale saved plan, lock held, unfinished run, no
//! confirmation, a changed plan file).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use omsup_engine::steps::{Step, StepKind};
use omsup_engine::{SavedPlan, UpgradePlan};
use omsup_exec::apply::{ApplyContext, capture, execute_step};
use omsup_journal::{
    DeploymentLock, Journal, JournalError, LockId, LockPurpose, LockRequest, NewRun, PlannedStep,
    RunId, RunKind, RunOutcome, RunState, RunWriter, StepState,
};
use omsup_model::PlanFile;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::cli::{ApplyArgs, ProgressFormat, ResumeArgs};
use crate::commands::plan::{prepare_async, read_plan_file, report_observation_problems, runtime};
use crate::commands::status::{deployment_name_of, journal_error, locate_journal, state_dir_for};
use crate::exit_codes;
use crate::progress::{Event, ProgressSink, sink};
use crate::render::render_plan_human;
use crate::report::CliError;
use crate::runner::{DowntimeMarks, Failpoints, RunReport, Runner, RunnerStep, StepFailure};
use crate::style::Style;

/// What an apply run keeps in the journal ([`NewRun::document`]): the plan file as it was and
/// the plan being executed, so `resume` and `rollback` work from exactly what was started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyDocument {
    pub format_version: u32,
    pub plan_file_path: String,
    pub plan_file_text: String,
    pub plan: UpgradePlan,
}

/// `omsup apply`
pub fn run_apply(args: &ApplyArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(apply(args, style))
}

/// `omsup resume`
pub fn run_resume(args: &ResumeArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(resume(args, style))
}

async fn apply(args: &ApplyArgs, style: &Style) -> Result<u8, CliError> {
    let saved = args
        .saved_plan
        .as_deref()
        .map(read_saved_plan)
        .transpose()?;
    let plan_path = match (&args.file, &saved) {
        (Some(file), _) => file.clone(),
        (None, Some(saved)) => PathBuf::from(&saved.plan_file),
        (None, None) => unreachable!("clap requires a plan file or a saved plan"),
    };
    let deployment = deployment_name_of(&plan_path)?;
    let state_dir = state_dir_for(Some(&plan_path), args.state.state_dir.as_deref());
    let journal = Journal::open(&state_dir, &deployment)
        .await
        .map_err(journal_error)?;
    let lock = take_lock(
        &journal,
        RunId::generate(),
        LockPurpose::Apply,
        args.force_unlock.as_deref(),
    )
    .await?;
    let outcome = apply_locked(args, style, saved, &plan_path, &journal, &lock).await;
    release(lock).await;
    outcome
}

async fn apply_locked(
    args: &ApplyArgs,
    style: &Style,
    saved: Option<SavedPlan>,
    plan_path: &Path,
    journal: &Journal,
    lock: &DeploymentLock,
) -> Result<u8, CliError> {
    if let Some(run) = journal.unfinished_run().await.map_err(journal_error)? {
        return Err(CliError::new(format!(
            "run `{}` ({}) of deployment `{}` is unfinished: {}",
            run.info.run_id,
            run.info.kind,
            journal.deployment(),
            where_it_stopped(&run)
        ))
        .with_hint(
            "`omsup resume` continues it; `omsup rollback` undoes it; `omsup status` shows it",
        )
        .with_exit_code(exit_codes::REFUSED));
    }
    let prepared = prepare_async(plan_path, style).await?;
    journal.register_secret(prepared.secrets.meta_password.expose());
    if report_observation_problems(&prepared.observation, style) > 0 {
        return Err(
            CliError::new("cannot observe the whole deployment: nothing was applied")
                .with_hint("fix what the errors above name, then run `omsup apply` again"),
        );
    }
    let planned = omsup_engine::plan(
        &prepared.plan_file,
        &prepared.plan_file_bytes,
        &prepared.observation.world,
    );
    let upgrade = match saved {
        Some(saved) => check_saved_plan(saved, &planned)?,
        None => planned,
    };
    print_plan(&upgrade, args.format, style);
    if upgrade.has_blocking_findings() {
        return Err(CliError::new("preflight found errors: nothing was applied")
            .with_hint("fix what the findings above name, then run `omsup apply` again"));
    }
    if upgrade.is_empty() {
        return Ok(exit_codes::SUCCESS);
    }
    confirm(
        &format!(
            "Apply these {} steps to deployment `{}`?",
            upgrade.steps.len(),
            upgrade.deployment
        ),
        args.yes,
    )?;
    let document = ApplyDocument {
        format_version: 1,
        plan_file_path: std::path::absolute(plan_path)
            .unwrap_or_else(|_| plan_path.to_owned())
            .display()
            .to_string(),
        plan_file_text: String::from_utf8_lossy(&prepared.plan_file_bytes).into_owned(),
        plan: upgrade.clone(),
    };
    let writer = journal
        .begin_run(
            lock,
            NewRun {
                kind: RunKind::Apply,
                undoes: None,
                plan_fingerprint: upgrade.fingerprint.clone(),
                plan_file_path: PathBuf::from(&document.plan_file_path),
                plan_file_sha256: upgrade.plan_file_sha256.clone(),
                planned_steps: upgrade
                    .steps
                    .iter()
                    .map(|step| PlannedStep::new(step.id.as_str(), step.kind.name()))
                    .collect(),
                document: serde_json::to_value(&document).expect("a document serializes"),
            },
        )
        .await
        .map_err(journal_error)?;
    let progress: Arc<dyn ProgressSink> = Arc::from(sink(args.format, style));
    execute_apply_run(
        ApplyRun {
            plan_file: prepared.plan_file,
            plan: upgrade,
            secrets: prepared.secrets,
            writer,
            parallelism: usize::from(args.parallelism),
            kind: "apply",
        },
        None,
        progress,
        style,
    )
    .await
}

async fn resume(args: &ResumeArgs, style: &Style) -> Result<u8, CliError> {
    let (state_dir, deployment) =
        locate_journal(args.file.as_deref(), args.state.state_dir.as_deref())?;
    let journal = Journal::open_existing(&state_dir, &deployment)
        .await
        .map_err(|error| {
            journal_error(error).with_hint("a journal is created by the first `omsup apply`")
        })?;
    let Some(run) = journal.unfinished_run().await.map_err(journal_error)? else {
        eprintln!("Nothing to resume: the last run of deployment `{deployment}` finished.");
        return Ok(exit_codes::SUCCESS);
    };
    let lock = take_lock(
        &journal,
        run.info.run_id.clone(),
        LockPurpose::Resume,
        args.force_unlock.as_deref(),
    )
    .await?;
    // Read again under the lock: the holder may have finished it in between.
    let outcome = match journal.run(&run.info.run_id).await.map_err(journal_error) {
        Ok(run) if run.info.outcome == RunOutcome::Succeeded => {
            eprintln!(
                "Nothing to resume: run `{}` finished meanwhile.",
                run.info.run_id
            );
            Ok(exit_codes::SUCCESS)
        }
        Ok(run) => resume_locked(args, style, &journal, &lock, run).await,
        Err(error) => Err(error),
    };
    release(lock).await;
    outcome
}

async fn resume_locked(
    args: &ResumeArgs,
    style: &Style,
    journal: &Journal,
    lock: &DeploymentLock,
    run: RunState,
) -> Result<u8, CliError> {
    let run_id = run.info.run_id.clone();
    if run.info.kind != RunKind::Apply {
        return crate::commands::rollback::resume_rollback(args, style, journal, lock, run).await;
    }
    let document: ApplyDocument = run_document(journal, &run_id).await?;
    let (plan_file, secrets) = journaled_plan_file(
        journal,
        args.file.as_deref(),
        &document.plan_file_path,
        &document.plan_file_text,
        style,
    )?;
    let writer = reopen(
        journal,
        lock,
        &run,
        "run",
        document.plan.steps.len(),
        args.yes,
    )
    .await?;
    let progress: Arc<dyn ProgressSink> = Arc::from(sink(args.format, style));
    execute_apply_run(
        ApplyRun {
            plan_file,
            plan: document.plan,
            secrets,
            writer,
            parallelism: usize::from(args.parallelism),
            kind: "resume",
        },
        Some(&run),
        progress,
        style,
    )
    .await
}

/// The document a run was begun with, as `T`.
pub(crate) async fn run_document<T: serde::de::DeserializeOwned>(
    journal: &Journal,
    run_id: &RunId,
) -> Result<T, CliError> {
    let value = journal.run_document(run_id).await.map_err(journal_error)?;
    serde_json::from_value(value).map_err(|error| {
        CliError::new(format!(
            "the journal does not hold the plan of run `{run_id}`"
        ))
        .with_cause(error.to_string())
    })
}

/// The plan file a journaled run continues with (`-f FILE`, else the path it began with; see
/// [`plan_file_for_resume`]) and its secrets, registered with the journal.
pub(crate) fn journaled_plan_file(
    journal: &Journal,
    given: Option<&Path>,
    journaled_path: &str,
    journaled_text: &str,
    style: &Style,
) -> Result<(PlanFile, omsup_exec::secrets::Secrets), CliError> {
    let path = given.map_or_else(|| PathBuf::from(journaled_path), Path::to_path_buf);
    let plan_file = plan_file_for_resume(&path, journaled_text, style)?;
    let secrets = secrets_for(&plan_file, journal)?;
    Ok((plan_file, secrets))
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
) -> Result<RunWriter, CliError> {
    let run_id = &run.info.run_id;
    eprintln!(
        "Resuming {what} `{run_id}` of deployment `{}`: {} of {total_steps} steps left ({}).",
        journal.deployment(),
        total_steps.saturating_sub(run.steps_done()),
        where_it_stopped(run)
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
    let secrets = omsup_exec::secrets::Secrets::from_plan(plan_file).map_err(|error| {
        let hint = error.hint();
        CliError::from_error(&error).with_hint(hint)
    })?;
    journal.register_secret(secrets.meta_password.expose());
    Ok(secrets)
}

/// An apply run ready to execute (new or resumed).
struct ApplyRun {
    plan_file: PlanFile,
    plan: UpgradePlan,
    secrets: omsup_exec::secrets::Secrets,
    writer: RunWriter,
    parallelism: usize,
    kind: &'static str,
}

/// Runs the steps of `run` not yet succeeded in `before` (empty for a new run), then finishes
/// the run in the journal and reports.
async fn execute_apply_run(
    run: ApplyRun,
    before: Option<&RunState>,
    progress: Arc<dyn ProgressSink>,
    style: &Style,
) -> Result<u8, CliError> {
    let run_id = run.writer.run_id().to_string();
    let mut context =
        ApplyContext::connect(run.plan_file, run.plan.clone(), run_id.clone(), run.secrets)
            .await
            .map_err(connection_failed)?;
    context.on_bytes = {
        let progress = progress.clone();
        Arc::new(move |step: &str, bytes, total| {
            progress.event(&Event::StepProgress {
                step: step.to_owned(),
                bytes,
                total,
            });
        })
    };
    let downtime = DowntimeMarks {
        opens: run
            .plan
            .steps
            .iter()
            .filter(|s| matches!(s.kind, StepKind::StopOld { .. }))
            .map(|s| s.id.clone())
            .collect(),
        closes: run
            .plan
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::VerifyOnline)
            .map(|s| s.id.clone())
            .collect(),
    };
    let plan = &run.plan;
    let context = &context;
    drive(
        Drive {
            writer: &run.writer,
            kind: run.kind,
            what: "apply",
            deployment: plan.deployment.clone(),
            steps: plan.steps.iter().map(runner_step).collect(),
            downtime,
            outputs: &context.outputs,
            before,
            parallelism: run.parallelism,
            secret: context.secrets.meta_password.expose(),
        },
        progress.as_ref(),
        style,
        |id| async move {
            let step = plan.step(&id).expect("a step of the plan");
            capture(context, step).await.map_err(failure)
        },
        |id, captured| async move {
            let step = plan.step(&id).expect("a step of the plan");
            execute_step(context, step, &captured)
                .await
                .map(|output| {
                    let summary = summarize(step, &output);
                    (output, summary)
                })
                .map_err(failure)
        },
    )
    .await
}

/// A run that cannot reach its daemons or database: nothing was done by this attempt.
pub(crate) fn connection_failed(message: String) -> CliError {
    CliError::new(message)
        .with_hint("nothing was changed by this attempt; fix the connection, then `omsup resume`")
}

/// One run, apply or rollback, as [`drive`] takes it; the steps' own work comes as functions.
pub(crate) struct Drive<'a> {
    pub writer: &'a RunWriter,
    /// `apply`, `resume` or `rollback`: the progress header.
    pub kind: &'static str,
    /// What the summary calls the run: `apply` or `rollback`.
    pub what: &'static str,
    pub deployment: String,
    pub steps: Vec<RunnerStep>,
    pub downtime: DowntimeMarks,
    /// The executors' outputs by step id, seeded from `before`.
    pub outputs: &'a Mutex<BTreeMap<String, Value>>,
    /// The run as an earlier attempt left it (resume), if any.
    pub before: Option<&'a RunState>,
    pub parallelism: usize,
    /// Masked in failure messages.
    pub secret: &'a str,
}

/// Runs the steps not yet succeeded in `drive.before`, each journaled by the runner, then
/// finishes the run and reports.
pub(crate) async fn drive<C, CF, E, EF>(
    drive: Drive<'_>,
    progress: &dyn ProgressSink,
    style: &Style,
    capture: C,
    execute: E,
) -> Result<u8, CliError>
where
    C: Fn(String) -> CF,
    CF: std::future::Future<Output = Result<Value, StepFailure>>,
    E: Fn(String, Value) -> EF,
    EF: std::future::Future<Output = Result<(Value, Option<String>), StepFailure>>,
{
    let run_id = drive.writer.run_id().to_string();
    let already_done = drive
        .before
        .map(|run| seed_from_journal(drive.outputs, run))
        .unwrap_or_default();
    let captured = drive.before.map(captures_of).unwrap_or_default();
    progress.event(&Event::RunStarted {
        run_id: run_id.clone(),
        kind: drive.kind.to_owned(),
        deployment: drive.deployment,
        steps: drive.steps.iter().map(|s| s.id.clone()).collect(),
        already_done: already_done.iter().cloned().collect(),
    });
    let runner = Runner {
        writer: drive.writer,
        progress,
        parallelism: drive.parallelism,
        failpoints: Failpoints::from_env(),
        downtime: drive.downtime,
        redact: vec![drive.secret.to_owned()],
    };
    let report = runner
        .run(&drive.steps, &already_done, &captured, capture, execute)
        .await;
    finish(drive.writer, &run_id, report, progress, style, drive.what).await
}

/// Ends a run in the journal, emits `run_finished`, prints the summary and what to do next.
async fn finish(
    writer: &RunWriter,
    run_id: &str,
    report: RunReport,
    progress: &dyn ProgressSink,
    style: &Style,
    what: &str,
) -> Result<u8, CliError> {
    let outcome = if report.is_success() {
        RunOutcome::Succeeded
    } else {
        RunOutcome::Failed
    };
    let finished = writer.finish(outcome).await;
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
    finished.map_err(journal_error)?;
    if report.is_success() {
        let downtime = report
            .downtime
            .map(|d| format!("; downtime window {:.1} s", d.as_secs_f64()))
            .unwrap_or_default();
        eprintln!(
            "{} run `{run_id}`: {} steps in {:.1} s{downtime}.",
            style.green(&format!("{} complete:", capitalize(what))),
            report.succeeded.len(),
            report.took.as_secs_f64(),
        );
        return Ok(exit_codes::SUCCESS);
    }
    let failed: Vec<&str> = report
        .failed
        .iter()
        .map(|(step, _)| step.as_str())
        .collect();
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
    for (_, message) in &report.failed {
        // The message names its step; its own `caused by:` and `hint:` lines become ours, and
        // any other line (an init log's tail) stays under the cause it belongs to.
        for (index, line) in message.lines().enumerate() {
            if let Some(cause) = line.strip_prefix("caused by: ") {
                error = error.with_cause(cause);
            } else if let Some(hint) = line.strip_prefix("hint: ") {
                step_hint = Some(hint.to_owned());
            } else if index == 0 || error.causes.is_empty() {
                error = error.with_cause(line);
            } else if let Some(last) = error.causes.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        }
    }
    if let Some(journal_error) = report.journal_error {
        error = error.with_cause(journal_error);
    }
    Err(error.with_hint(step_hint.unwrap_or_else(|| {
        "fix the cause, then `omsup resume` continues where it stopped; `omsup rollback` undoes the run; `omsup status` shows every step".to_owned()
    })))
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub(crate) fn failure(error: omsup_exec::apply::StepError) -> StepFailure {
    StepFailure {
        message: crate::runner::error_chain(&error),
        details: Value::Null,
    }
}

/// Succeeded steps of an earlier attempt: their outputs go back into the context (later steps
/// and `ha.restore` read them), and they are not run again.
fn seed_from_journal(
    outputs: &std::sync::Mutex<BTreeMap<String, Value>>,
    before: &RunState,
) -> BTreeSet<String> {
    let mut done = BTreeSet::new();
    let mut outputs = outputs.lock().expect("outputs lock");
    for record in before.with_state(StepState::Succeeded) {
        if let Some(output) = &record.output {
            outputs.insert(record.step_id.to_string(), output.clone());
        }
        done.insert(record.step_id.to_string());
    }
    done
}

/// The captures journaled with the intents of an earlier attempt (the first attempt's value is
/// carried into every retry's intent).
fn captures_of(before: &RunState) -> BTreeMap<String, Value> {
    before
        .steps
        .values()
        .filter(|record| record.intent_payload["capture_failed"] != json!(true))
        .filter_map(|record| {
            let captured = record.intent_payload.get("captured")?;
            Some((record.step_id.to_string(), captured.clone()))
        })
        .collect()
}

fn runner_step(step: &Step) -> RunnerStep {
    let node = match &step.kind {
        StepKind::LoadImage { node }
        | StepKind::StopOld { node }
        | StepKind::StartNew { node }
        | StepKind::WaitReady { node } => Some(node.clone()),
        StepKind::Init { run_on, .. } => Some(run_on.clone()),
        _ => None,
    };
    RunnerStep {
        id: step.id.clone(),
        kind: step.kind.name().to_owned(),
        node,
        depends_on: step.depends_on.clone(),
        definition: serde_json::to_value(step).expect("a step serializes"),
    }
}

/// One line for the progress view, from a step's outputs.
fn summarize(step: &Step, output: &Value) -> Option<String> {
    match &step.kind {
        StepKind::HaOff => Some(format!(
            "ha.config enable was {}",
            output["previous"]["enable"]
        )),
        StepKind::StopOld { .. } => Some(if output["was_running"] == json!(true) {
            "stopped".to_owned()
        } else {
            "already stopped".to_owned()
        }),
        StepKind::Backup { .. } => Some(format!(
            "{} bytes to {}",
            output["size_bytes"],
            output["file"].as_str().unwrap_or("?")
        )),
        StepKind::StartNew { .. } => Some(format!(
            "old container kept as `{}`",
            output["kept_as"].as_str().unwrap_or("?")
        )),
        StepKind::Init { .. } => Some(if output["oms_version_remedy"] == json!(true) {
            "succeeded after the oms_version remedy".to_owned()
        } else {
            "succeeded".to_owned()
        }),
        StepKind::HaRestore => Some(format!(
            "enable={}, HA was off for {} s",
            output["value"]["enable"], output["ha_off_window_s"]
        )),
        _ => None,
    }
}

/// Takes the lock, turning a held lock into a refusal that names the holder.
pub(crate) async fn take_lock(
    journal: &Journal,
    run_id: RunId,
    purpose: LockPurpose,
    force_unlock: Option<&str>,
) -> Result<DeploymentLock, CliError> {
    journal
        .acquire_lock(LockRequest {
            run_id,
            purpose,
            force_unlock: force_unlock.map(LockId::new),
        })
        .await
        .map_err(|error| {
            let refused = matches!(
                error,
                JournalError::LockHeld { .. }
                    | JournalError::LockNotStale { .. }
                    | JournalError::ForceUnlockMismatch { .. }
            );
            let error = journal_error(error);
            if refused {
                error.with_exit_code(exit_codes::REFUSED)
            } else {
                error
            }
        })
}

pub(crate) async fn release(lock: DeploymentLock) {
    if let Err(error) = lock.release().await {
        tracing::warn!(%error, "could not release the deployment lock");
    }
}

/// Asks on the terminal; `yes` skips the question; with no terminal, refuses.
pub(crate) fn confirm(question: &str, yes: bool) -> Result<(), CliError> {
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
    eprint!("{question} Only `yes` is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(CliError::new("cancelled: nothing was changed").with_exit_code(exit_codes::REFUSED))
    }
}

/// The plan on stdout (human), or on stderr when stdout carries JSON Lines events.
fn print_plan(plan: &UpgradePlan, format: ProgressFormat, style: &Style) {
    print_for(&render_plan_human(plan, style), format);
}

/// Text for the user: on stdout, or on stderr when stdout carries JSON Lines events.
pub(crate) fn print_for(rendered: &str, format: ProgressFormat) {
    match format {
        ProgressFormat::Human => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(rendered.as_bytes());
            let _ = stdout.flush();
        }
        ProgressFormat::Jsonl => eprint!("{rendered}"),
    }
}

fn read_saved_plan(path: &Path) -> Result<SavedPlan, CliError> {
    let display = path.display();
    let text = std::fs::read_to_string(path).map_err(|error| {
        CliError::new(format!("cannot read the saved plan `{display}`"))
            .with_cause(error.to_string())
            .with_hint("save one with `omsup plan -f FILE --out PLAN`")
            .with_exit_code(exit_codes::USAGE)
    })?;
    let saved: SavedPlan = serde_json::from_str(&text).map_err(|error| {
        CliError::new(format!("`{display}` is not a saved plan"))
            .with_cause(error.to_string())
            .with_hint("save one with `omsup plan -f FILE --out PLAN`")
            .with_exit_code(exit_codes::USAGE)
    })?;
    if saved.format_version != 1 {
        return Err(CliError::new(format!(
            "the saved plan `{display}` has format version {}; this omsup reads version 1",
            saved.format_version
        ))
        .with_exit_code(exit_codes::USAGE));
    }
    Ok(saved)
}

/// The saved plan, if every fact it was planned from still holds and the plan file is the
/// same; otherwise a refusal naming what changed.
fn check_saved_plan(saved: SavedPlan, now: &UpgradePlan) -> Result<UpgradePlan, CliError> {
    if saved.plan.plan_file_sha256 != now.plan_file_sha256 {
        return Err(CliError::new(format!(
            "the plan file `{}` changed since the plan was saved",
            saved.plan_file
        ))
        .with_hint("run `omsup plan --out` again and review the new plan")
        .with_exit_code(exit_codes::REFUSED));
    }
    let changed = saved.changed_facts(&now.facts);
    if changed.is_empty() {
        return Ok(saved.plan);
    }
    let mut error = CliError::new(format!(
        "the deployment changed since the plan was saved: {} observed fact{} differ{}",
        changed.len(),
        if changed.len() == 1 { "" } else { "s" },
        if changed.len() == 1 { "s" } else { "" }
    ));
    for fact in changed.iter().take(20) {
        error = error.with_cause(format!(
            "{}: {} when saved, {} now",
            fact.name,
            fact.saved.as_deref().unwrap_or("absent"),
            fact.now.as_deref().unwrap_or("absent")
        ));
    }
    Err(error
        .with_hint("run `omsup plan --out` again and review the new plan")
        .with_exit_code(exit_codes::REFUSED))
}

/// The plan file to resume with: the one the run began with, or a changed one when every
/// change is harmless (only `[timeouts]`, comments or formatting); otherwise a refusal naming
/// the changed sections.
pub(crate) fn plan_file_for_resume(
    path: &Path,
    original_text: &str,
    style: &Style,
) -> Result<PlanFile, CliError> {
    let original: PlanFile = toml::from_str(original_text).map_err(|error| {
        CliError::new("the journal's copy of the plan file cannot be read")
            .with_cause(error.to_string())
    })?;
    let (current, bytes) = match read_plan_file(path, style) {
        Ok(read) => read,
        Err(error) if !path.exists() => {
            eprintln!(
                "note: the plan file `{}` is gone; resuming with the copy kept in the journal",
                path.display()
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
        eprintln!(
            "note: the plan file `{}` changed only in comments or formatting since the run began",
            path.display()
        );
        return Ok(original);
    }
    if harmful.is_empty() {
        eprintln!(
            "note: the plan file `{}` changed in {} since the run began; harmless, resuming with the new values",
            path.display(),
            changed
                .iter()
                .map(|s| format!("[{s}]"))
                .collect::<Vec<_>>()
                .join(", ")
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

/// Sections of the plan file a resume accepts changes in.
const HARMLESS_SECTIONS: &[&str] = &["timeouts"];

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
