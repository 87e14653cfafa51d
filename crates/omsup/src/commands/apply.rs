//! `omsup apply -f FILE | SAVED_PLAN`: execute the step DAG with a durable journal, and the
//! apply half of `omsup resume`.
//!
//! apply: take the deployment lock, refuse while another run is unfinished, observe and plan
//! (or check that a saved plan's observed facts still hold, naming those that changed), show
//! the plan, ask for confirmation (`--yes`; with no terminal and no `--yes`, refuse), then run
//! the steps through [`crate::run::drive`]: each step's intent is durable before it acts.
//!
//! resume of an apply run ([`resume_apply`], called by `commands::resume`): continue it from
//! its journal with the plan it was begun with (never a re-plan): succeeded steps are not
//! repeated; a step with an intent and no outcome is closed as interrupted and runs again, and
//! its executor observes what is already done (our labelled container exists, HA is already
//! off, ...) before acting; a failed step is retried. A changed plan file is refused unless only
//! harmless sections changed.
//!
//! Exit codes: 0 done (or nothing to do), 1 a step failed or a service is unreachable, 3
//! refused before touching anything (stale saved plan, lock held, unfinished run, no
//! confirmation, a changed plan file, a run journaled by another release).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use omsup_engine::{Kind as _, SavedPlan, UpgradePlan};
use omsup_exec::apply::ApplyContext;
use omsup_journal::{
    DeploymentLock, Journal, LockPurpose, NewRun, PlannedStep, RunId, RunKind, RunState,
};
use omsup_model::PlanFile;
use serde::{Deserialize, Serialize};

use crate::cli::{ApplyArgs, ProgressFormat, ResumeArgs};
use crate::commands::common::{journal_error, open_journal, print_for, runtime, state_dir_for};
use crate::commands::plan::{observe_prepared, read_with_secrets, report_observation_problems};
use crate::exit_codes;
use crate::progress::{Event, ProgressSink, sink};
use crate::render::render_plan_human;
use crate::report::CliError;
use crate::run::{
    Drive, JournaledPlanFile, RunDocument, confirm, connection_failed, drive, journaled_plan_file,
    refuse_unfinished, release, reopen, run_document, take_lock,
};
use crate::shared_lock::share_lock;
use crate::style::Style;

/// What an apply run keeps in the journal ([`NewRun::document`]): the plan file as it was and
/// the plan being executed, so `resume` and `rollback` work from exactly what was started.
///
/// Format version 3: `start-new` carries the new container's whole spec, and each node the
/// old container's own settings (version 2 had only their environments and mounts). Step
/// outputs and captures are typed (`omsup_engine::outputs`), step kinds carry one name
/// (`ha.off`, `online.verify`). A run of another version is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyDocument {
    pub format_version: u32,
    pub plan_file_path: String,
    pub plan_file_text: String,
    pub plan: UpgradePlan,
}

impl RunDocument for ApplyDocument {
    const FORMAT_VERSION: u32 = 3;
    const WHAT: &'static str = "apply";
}

/// `omsup apply`
pub fn run_apply(args: &ApplyArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(apply(args, style))
}

async fn apply(args: &ApplyArgs, style: &Style) -> Result<u8, CliError> {
    let saved = args
        .source
        .saved_plan
        .as_deref()
        .map(read_saved_plan)
        .transpose()?;
    let plan_path = match (&args.source.file, &saved) {
        (Some(file), _) => file.clone(),
        (None, Some(saved)) => PathBuf::from(&saved.plan_file),
        (None, None) => unreachable!("clap requires a plan file or a saved plan"),
    };
    let (plan_file, plan_file_bytes, secrets) = read_with_secrets(&plan_path, style)?;
    let state_dir = state_dir_for(Some(&plan_path), args.state.state_dir.as_deref());
    let journal = open_journal(&plan_file, &secrets, &state_dir).await?;
    let lock = take_lock(
        &journal,
        RunId::generate(),
        LockPurpose::Apply,
        args.force_unlock.as_deref(),
    )
    .await?;
    let read = (plan_file, plan_file_bytes, secrets);
    let outcome = apply_locked(args, style, saved, &plan_path, read, &journal, &lock).await;
    release(lock).await;
    outcome
}

async fn apply_locked(
    args: &ApplyArgs,
    style: &Style,
    saved: Option<SavedPlan>,
    plan_path: &Path,
    (plan_file, plan_file_bytes, secrets): (PlanFile, Vec<u8>, omsup_exec::secrets::Secrets),
    journal: &Journal,
    lock: &DeploymentLock,
) -> Result<u8, CliError> {
    refuse_unfinished(
        journal,
        "`omsup resume` continues it; `omsup rollback` undoes it; `omsup status` shows it",
    )
    .await?;
    // The lock across machines is taken before observing: what is planned is what the holder
    // of the lock sees, never a world another operator is changing.
    share_lock(
        lock,
        &plan_file,
        &secrets,
        LockPurpose::Apply,
        args.force_unlock.as_deref(),
    )
    .await?;
    let prepared = observe_prepared(plan_file, plan_file_bytes, secrets).await;
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
    let estimate = crate::commands::rehearse::estimate_note(journal, &upgrade.fingerprint).await;
    match &estimate {
        Some(note) if note.same_plan => anstream::eprintln!("{}", note.text),
        other => {
            anstream::eprintln!(
                "{} no successful rehearsal of this plan (fingerprint {}): init will run for the first time inside the downtime window; `omsup rehearse -f {}` tries it on copies first",
                style.yellow("warning:"),
                &upgrade.fingerprint[..upgrade.fingerprint.len().min(12)],
                plan_path.display()
            );
            if let Some(note) = other {
                anstream::eprintln!("{}", note.text);
            }
        }
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
        format_version: ApplyDocument::FORMAT_VERSION,
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
                    .map(|step| PlannedStep::new(step.id.clone(), step.kind.name()))
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
            estimate_ms: estimate.map(|note| note.total_ms),
        },
        None,
        progress,
    )
    .await
}

/// `omsup resume` of an unfinished apply run (the lock is held).
pub(crate) async fn resume_apply(
    args: &ResumeArgs,
    style: &Style,
    journal: &Journal,
    lock: &DeploymentLock,
    run: RunState,
    progress: Arc<dyn ProgressSink>,
) -> Result<u8, CliError> {
    let document: ApplyDocument = run_document(journal, &run.info.run_id).await?;
    let (plan_file, secrets) = journaled_plan_file(
        journal,
        lock,
        JournaledPlanFile {
            given: args.file.as_deref(),
            path: &document.plan_file_path,
            text: &document.plan_file_text,
            purpose: LockPurpose::Resume,
            force_unlock: args.force_unlock.as_deref(),
        },
        style,
        progress.as_ref(),
    )
    .await?;
    let writer = reopen(
        journal,
        lock,
        &run,
        "run",
        document.plan.steps.len(),
        args.yes,
        progress.as_ref(),
    )
    .await?;
    execute_apply_run(
        ApplyRun {
            plan_file,
            plan: document.plan,
            secrets,
            writer,
            parallelism: usize::from(args.parallelism),
            kind: "resume",
            estimate_ms: None,
        },
        Some(&run),
        progress,
    )
    .await
}

/// An apply run ready to execute (new or resumed).
struct ApplyRun {
    plan_file: PlanFile,
    plan: UpgradePlan,
    secrets: omsup_exec::secrets::Secrets,
    writer: omsup_journal::RunWriter,
    parallelism: usize,
    kind: &'static str,
    /// The downtime window the last rehearsal predicts, for the summary.
    estimate_ms: Option<u64>,
}

/// Runs the steps of `run` not yet succeeded in `before` (empty for a new run), then finishes
/// the run in the journal and reports.
async fn execute_apply_run(
    run: ApplyRun,
    before: Option<&RunState>,
    progress: Arc<dyn ProgressSink>,
) -> Result<u8, CliError> {
    let run_id = run.writer.run_id().to_string();
    let mut context = ApplyContext::connect(run.plan_file, run.plan.clone(), run_id, run.secrets)
        .await
        .map_err(connection_failed)?;
    context.on_bytes = {
        let progress = progress.clone();
        Arc::new(move |step, bytes, total| {
            progress.event(&Event::StepProgress {
                step: step.to_string(),
                bytes,
                total,
            });
        })
    };
    drive(
        Drive {
            writer: &run.writer,
            kind: run.kind,
            what: "apply",
            deployment: run.plan.deployment.clone(),
            steps: &run.plan.steps,
            executor: &context,
            before,
            parallelism: run.parallelism,
            secret: context.secrets.meta_password.expose(),
            estimate_ms: run.estimate_ms,
        },
        &progress,
    )
    .await
}

/// The plan on stdout (human), or on stderr when stdout carries JSON Lines events.
fn print_plan(plan: &UpgradePlan, format: ProgressFormat, style: &Style) {
    print_for(&render_plan_human(plan, style), format);
}

pub(crate) fn read_saved_plan(path: &Path) -> Result<SavedPlan, CliError> {
    let display = path.display();
    let text = std::fs::read_to_string(path).map_err(|error| {
        CliError::new(format!("cannot read the saved plan `{display}`"))
            .with_cause(error.to_string())
            .with_hint("save one with `omsup plan -f FILE --out PLAN`")
            .with_exit_code(exit_codes::USAGE)
    })?;
    let not_saved_plan = |error: serde_json::Error| {
        CliError::new(format!("`{display}` is not a saved plan"))
            .with_cause(error.to_string())
            .with_hint("save one with `omsup plan -f FILE --out PLAN`")
            .with_exit_code(exit_codes::USAGE)
    };
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let version: Version = serde_json::from_str(&text).map_err(not_saved_plan)?;
    if version.format_version != SavedPlan::FORMAT_VERSION {
        return Err(CliError::new(format!(
            "the saved plan `{display}` has format version {}; this omsup reads version {}",
            version.format_version,
            SavedPlan::FORMAT_VERSION
        ))
        .with_hint("plan again with this omsup: `omsup plan -f FILE --out PLAN`")
        .with_exit_code(exit_codes::USAGE));
    }
    serde_json::from_str(&text).map_err(not_saved_plan)
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
