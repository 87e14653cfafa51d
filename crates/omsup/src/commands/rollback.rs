//! `omsup rollback [--run ID]`: undo an apply run, from any point, back to the state before it.
//!
//! The compensations come from the forward run's journal alone (its journaled plan, which
//! steps it reached, their captures and outputs), through `omsup_engine::rollback`; they are
//! shown first, confirmed (`--yes`; refused with no terminal), and run as a run of their own
//! (own run id, lock, intents), so an interrupted rollback continues with `omsup resume`.
//! Only what the forward run reached is undone. Backups are checked against their sha256
//! before anything is dropped.
//!
//! Exit codes: 0 undone (or nothing to undo), 1 a step failed, 3 refused before touching
//! anything (lock held, no confirmation, an unfinished rollback, a changed plan file).

use std::path::PathBuf;
use std::sync::Arc;

use omsup_engine::outputs::{Outputs, StepOutput};
use omsup_engine::rollback::{ForwardStep, Reached, RollbackPlan, plan_rollback};
use omsup_engine::{Kind as _, StepKind};
use omsup_exec::undo::UndoContext;
use omsup_journal::{
    DeploymentLock, Journal, LockPurpose, NewRun, PlannedStep, RunId, RunKind, RunOutcome,
    RunState, StepState,
};
use serde::{Deserialize, Serialize};

use crate::cli::{ResumeArgs, RollbackArgs};
use crate::commands::apply::ApplyDocument;
use crate::commands::common::{journal_error, open_existing_journal, print_for, runtime};
use crate::exit_codes;
use crate::progress::{ProgressSink, note, sink};
use crate::report::CliError;
use crate::run::{
    Drive, JournaledPlanFile, RunDocument, confirm, connection_failed, drive, journaled_plan_file,
    release, reopen, run_document, take_lock, where_it_stopped,
};
use crate::runner::IntentPayload;
use crate::style::Style;

/// What a rollback run keeps in the journal: the plan file it used and its compensations.
///
/// Format version 2: undo steps share the forward steps' model and names, their outputs are
/// typed. A version 1 rollback is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackDocument {
    pub format_version: u32,
    pub plan_file_path: String,
    pub plan_file_text: String,
    pub keep_new: bool,
    pub rollback: RollbackPlan,
}

impl RunDocument for RollbackDocument {
    const FORMAT_VERSION: u32 = 2;
    const WHAT: &'static str = "rollback";
}

/// `omsup rollback`
pub fn run_rollback(args: &RollbackArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(rollback(args, style))
}

async fn rollback(args: &RollbackArgs, style: &Style) -> Result<u8, CliError> {
    let journal =
        open_existing_journal(args.file.as_deref(), args.state.state_dir.as_deref()).await?;
    let lock = take_lock(
        &journal,
        RunId::generate(),
        LockPurpose::Rollback,
        args.force_unlock.as_deref(),
    )
    .await?;
    let outcome = rollback_locked(args, style, &journal, &lock).await;
    release(lock).await;
    outcome
}

async fn rollback_locked(
    args: &RollbackArgs,
    style: &Style,
    journal: &Journal,
    lock: &DeploymentLock,
) -> Result<u8, CliError> {
    let progress: Arc<dyn ProgressSink> = Arc::from(sink(args.format, style));
    if let Some(unfinished) = journal.unfinished_run().await.map_err(journal_error)?
        && unfinished.info.kind == RunKind::Rollback
    {
        return Err(CliError::new(format!(
            "rollback run `{}` is unfinished: {}",
            unfinished.info.run_id,
            where_it_stopped(&unfinished)
        ))
        .with_hint("`omsup resume` finishes it")
        .with_exit_code(exit_codes::REFUSED));
    }
    let forward = match &args.run {
        Some(id) => journal
            .run(&RunId::new(id.as_str()))
            .await
            .map_err(journal_error)?,
        None => journal
            .last_apply_run()
            .await
            .map_err(journal_error)?
            .ok_or_else(|| {
                CliError::new(format!(
                    "deployment `{}` has no apply run to undo",
                    journal.deployment()
                ))
            })?,
    };
    let forward_id = forward.info.run_id.clone();
    if forward.info.kind != RunKind::Apply {
        return Err(CliError::new(format!(
            "run `{forward_id}` is a rollback; only apply runs can be undone"
        ))
        .with_exit_code(exit_codes::USAGE));
    }
    // Only the last apply can be undone: an older one's containers and backups were replaced
    // by the runs after it, and restoring its backups would run under a newer OMS.
    let runs = journal.run_infos().await.map_err(journal_error)?;
    let rolled_back: Vec<&RunId> = runs
        .iter()
        .filter(|info| info.kind == RunKind::Rollback && info.outcome == RunOutcome::Succeeded)
        .filter_map(|info| info.undoes.as_ref())
        .collect();
    let later = runs
        .iter()
        .skip_while(|info| info.run_id != forward_id)
        .skip(1)
        .find(|info| info.kind == RunKind::Apply && !rolled_back.contains(&&info.run_id));
    if let Some(later) = later {
        return Err(CliError::new(format!(
            "run `{forward_id}` is not the last apply run of deployment `{}`: `{}` came after it",
            journal.deployment(),
            later.run_id
        ))
        .with_hint(format!(
            "roll back `{}` first (`omsup rollback --run {}`), then `{forward_id}`",
            later.run_id, later.run_id
        ))
        .with_exit_code(exit_codes::REFUSED));
    }
    let undone = journal
        .rollbacks_of(&forward_id)
        .await
        .map_err(journal_error)?
        .into_iter()
        .any(|info| info.outcome == RunOutcome::Succeeded);
    if undone {
        note(
            progress.as_ref(),
            format!("Run `{forward_id}` was already rolled back; nothing to undo."),
        );
        return Ok(exit_codes::SUCCESS);
    }
    let document: ApplyDocument = run_document(journal, &forward_id).await?;
    let (plan_file, secrets) = journaled_plan_file(
        journal,
        lock,
        JournaledPlanFile {
            given: args.file.as_deref(),
            path: &document.plan_file_path,
            text: &document.plan_file_text,
            purpose: LockPurpose::Rollback,
            force_unlock: args.force_unlock.as_deref(),
        },
        style,
        progress.as_ref(),
    )
    .await?;

    let reached = forward_steps(&document, &forward)?;
    let plan = plan_rollback(forward_id.as_str(), &reached);
    print_for(&render_rollback(&plan, &forward, style), args.format);
    // An empty rollback is still recorded: it closes the forward run (nothing to resume).
    let question = if plan.is_empty() {
        format!("Close run `{forward_id}` as rolled back?")
    } else if plan.loses_data_since_backup {
        format!(
            "Roll back run `{forward_id}`? Data written to the meta databases since its backups will be lost."
        )
    } else {
        format!("Roll back run `{forward_id}`?")
    };
    confirm(&question, args.yes)?;
    let rollback_document = RollbackDocument {
        format_version: RollbackDocument::FORMAT_VERSION,
        plan_file_path: document.plan_file_path.clone(),
        plan_file_text: document.plan_file_text.clone(),
        keep_new: args.keep_new,
        rollback: plan.clone(),
    };
    let writer = journal
        .begin_run(
            lock,
            NewRun {
                kind: RunKind::Rollback,
                undoes: Some(forward_id.clone()),
                plan_fingerprint: forward.info.plan_fingerprint.clone(),
                plan_file_path: PathBuf::from(&document.plan_file_path),
                plan_file_sha256: forward.info.plan_file_sha256.clone(),
                planned_steps: plan
                    .steps
                    .iter()
                    .map(|step| PlannedStep::new(step.id.clone(), step.kind.name()))
                    .collect(),
                document: serde_json::to_value(&rollback_document).expect("a document serializes"),
            },
        )
        .await
        .map_err(journal_error)?;
    let context = UndoContext::connect(
        plan_file,
        writer.run_id().to_string(),
        forward_id.to_string(),
        secrets,
        succeeded_outputs(&forward)?,
        args.keep_new,
    )
    .await
    .map_err(connection_failed)?;
    execute_rollback_run(
        &writer,
        &context,
        &plan,
        None,
        usize::from(args.parallelism),
        "rollback",
        progress,
    )
    .await
}

/// `omsup resume` of an interrupted rollback run.
pub(crate) async fn resume_rollback(
    args: &ResumeArgs,
    style: &Style,
    journal: &Journal,
    lock: &DeploymentLock,
    run: RunState,
    progress: Arc<dyn ProgressSink>,
) -> Result<u8, CliError> {
    let run_id = run.info.run_id.clone();
    let document: RollbackDocument = run_document(journal, &run_id).await?;
    let forward_id = run.info.undoes.clone().ok_or_else(|| {
        CliError::new(format!(
            "rollback run `{run_id}` does not say which run it undoes"
        ))
    })?;
    let forward = journal.run(&forward_id).await.map_err(journal_error)?;
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
    let plan = &document.rollback;
    let writer = reopen(
        journal,
        lock,
        &run,
        "rollback run",
        plan.steps.len(),
        args.yes,
        progress.as_ref(),
    )
    .await?;
    let context = UndoContext::connect(
        plan_file,
        run_id.to_string(),
        forward_id.to_string(),
        secrets,
        succeeded_outputs(&forward)?,
        document.keep_new,
    )
    .await
    .map_err(connection_failed)?;
    execute_rollback_run(
        &writer,
        &context,
        plan,
        Some(&run),
        usize::from(args.parallelism),
        "resume",
        progress,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn execute_rollback_run(
    writer: &omsup_journal::RunWriter,
    context: &UndoContext,
    plan: &RollbackPlan,
    before: Option<&RunState>,
    parallelism: usize,
    kind: &'static str,
    progress: Arc<dyn ProgressSink>,
) -> Result<u8, CliError> {
    drive(
        Drive {
            writer,
            kind,
            what: "rollback",
            deployment: context.plan_file.deployment.name.clone(),
            steps: &plan.steps,
            executor: context,
            before,
            parallelism,
            secret: context.secrets.meta_password.expose(),
            estimate_ms: None,
        },
        &progress,
    )
    .await
}

/// A forward run's journal that does not read as this release's types.
fn unreadable(run: &RunState, what: String, error: serde_json::Error) -> CliError {
    CliError::new(format!(
        "the journal of run `{}` cannot be read: {what}",
        run.info.run_id
    ))
    .with_cause(error.to_string())
}

/// What the forward run reached, step by step, from its journal: the intent's capture and the
/// output, read back as their types.
fn forward_steps(
    document: &ApplyDocument,
    forward: &RunState,
) -> Result<Vec<ForwardStep>, CliError> {
    let mut reached = Vec::new();
    for step in &document.plan.steps {
        let Some(record) = forward.step(step.id.as_str()) else {
            continue;
        };
        let intent: IntentPayload<StepKind> = serde_json::from_value(record.intent_payload.clone())
            .map_err(|error| unreadable(forward, format!("the intent of `{}`", step.id), error))?;
        let output = match (&record.state, &record.output) {
            (StepState::Succeeded, Some(output)) => Some(
                serde_json::from_value::<StepOutput>(output.clone()).map_err(|error| {
                    unreadable(forward, format!("the output of `{}`", step.id), error)
                })?,
            ),
            _ => None,
        };
        reached.push(ForwardStep {
            id: step.id.clone(),
            kind: step.kind.clone(),
            reached: match record.state {
                StepState::Succeeded => Reached::Succeeded,
                _ => Reached::Intent,
            },
            captured: intent.captured.filter(|_| !intent.capture_failed),
            output,
        });
    }
    Ok(reached)
}

/// The outputs of the forward run's succeeded steps.
fn succeeded_outputs(run: &RunState) -> Result<Outputs<StepOutput>, CliError> {
    run.with_state(StepState::Succeeded)
        .filter_map(|record| Some((record, record.output.as_ref()?)))
        .map(|(record, output)| {
            let output = serde_json::from_value::<StepOutput>(output.clone()).map_err(|error| {
                unreadable(run, format!("the output of `{}`", record.step_id), error)
            })?;
            Ok((record.step_id.clone(), output))
        })
        .collect()
}

/// The rollback plan for humans: what is undone, in which order, and what is lost.
fn render_rollback(plan: &RollbackPlan, forward: &RunState, style: &Style) -> String {
    let mut out = format!(
        "{} run `{}` ({}, {} of {} steps done, {})\n",
        style.bold("Rollback of"),
        forward.info.run_id,
        forward.info.kind,
        forward.steps_done(),
        forward.info.planned_steps.len(),
        forward.info.outcome
    );
    if plan.is_empty() {
        out.push_str("\nNothing to undo: the run changed nothing that needs compensating.\n");
        return out;
    }
    out.push_str(
        "\nSteps (the steps of one lane may run in parallel; ┃ marks the downtime window):\n",
    );
    let mut lane = usize::MAX;
    for step in &plan.steps {
        let gutter = if step.downtime { "┃" } else { " " };
        let label = if step.lane == lane {
            String::new()
        } else {
            lane = step.lane;
            format!("[lane {}]", step.lane + 1)
        };
        out.push_str(&format!(
            "  {gutter} {label:<9} {:<36} {}\n",
            step.id, step.changes
        ));
    }
    for note in &plan.notes {
        out.push_str(&format!("\n{} {note}\n", style.yellow("note:")));
    }
    if plan.loses_data_since_backup {
        out.push_str(&format!(
            "\n{} the meta databases go back to their backups: anything written to them since the backups were taken is lost.\n",
            style.yellow("warning:")
        ));
    }
    out.push_str(&format!(
        "\nRollback: {} steps; downtime window: {} steps\n",
        plan.steps.len(),
        plan.steps.iter().filter(|s| s.downtime).count()
    ));
    out
}
