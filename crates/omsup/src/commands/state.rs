//! `omsup state migrate --to local|meta_db -f FILE`: move a deployment's history between the
//! journal backends. The history comes from the backend the plan file names (`[state]
//! backend`) and is copied, every run and event verbatim, into the other one, which must hold
//! no run of the deployment yet. Both journals are locked meanwhile (the server's lock keeps
//! every operator's apply, resume and rollback out). The source is left as it was; the user
//! then switches `[state] backend` in the plan file.
//!
//! Exit codes: 0 copied, 1 a journal cannot be read or written, 3 refused (a lock held, the
//! destination already holds runs, `--to` names the backend in use).

use omsup_journal::{DeploymentLock, Journal, JournalError, LockPurpose, LockRequest, RunId};
use omsup_model::plan::StateBackend;

use crate::cli::{BackendArg, MigrateArgs, StateCommand, StateCommandArgs};
use crate::commands::common::{
    journal_error, open_existing_journal, open_journal, runtime, secrets_of, state_dir_for,
};
use crate::commands::plan::read_plan_file;
use crate::exit_codes;
use crate::report::CliError;
use crate::run::release;
use crate::style::Style;

/// `omsup state ...`
pub fn run(args: &StateCommandArgs, style: &Style) -> Result<u8, CliError> {
    match &args.command {
        StateCommand::Migrate(args) => runtime()?.block_on(migrate(args, style)),
    }
}

async fn migrate(args: &MigrateArgs, style: &Style) -> Result<u8, CliError> {
    let (plan, _) = read_plan_file(&args.file, style)?;
    let from = plan.state.backend;
    let to = match args.to {
        BackendArg::Local => StateBackend::Local,
        BackendArg::MetaDb => StateBackend::MetaDb,
    };
    if from == to {
        return Err(CliError::new(format!(
            "the plan file `{}` already keeps the journal in `{}`",
            args.file.display(),
            journal_backend(to).as_str()
        ))
        .with_hint("`--to` names the backend the history goes to: the other one")
        .with_exit_code(exit_codes::REFUSED));
    }
    let secrets = secrets_of(&plan)?;
    let state_dir = state_dir_for(Some(&args.file), args.state.state_dir.as_deref());
    let source = open_existing_journal(Some(&args.file), args.state.state_dir.as_deref()).await?;
    let mut destination_plan = plan.clone();
    destination_plan.state.backend = to;
    let destination = open_journal(&destination_plan, &secrets, &state_dir).await?;
    let run_id = RunId::generate();
    let source_lock = lock(&source, &run_id).await?;
    let destination_lock = match lock(&destination, &run_id).await {
        Ok(lock) => lock,
        Err(error) => {
            release(source_lock).await;
            return Err(error);
        }
    };
    let copied = source
        .copy_history_to(&destination, &destination_lock)
        .await;
    release(destination_lock).await;
    release(source_lock).await;
    let copied = copied.map_err(|error| {
        let refused = matches!(error, JournalError::HistoryExists { .. });
        let error = journal_error(error);
        if refused {
            error.with_exit_code(exit_codes::REFUSED)
        } else {
            error
        }
    })?;
    eprintln!(
        "Copied the history of deployment `{}`: {} runs and {} events, from {} to {}.",
        source.deployment(),
        copied.runs,
        copied.events,
        source.location(),
        destination.location()
    );
    eprintln!(
        "Now set `backend = \"{}\"` under `[state]` in `{}`; the old journal is left as it was.",
        journal_backend(to).as_str(),
        args.file.display()
    );
    Ok(exit_codes::SUCCESS)
}

fn journal_backend(backend: StateBackend) -> omsup_journal::Backend {
    match backend {
        StateBackend::Local => omsup_journal::Backend::Local,
        StateBackend::MetaDb => omsup_journal::Backend::MetaDb,
    }
}

async fn lock(journal: &Journal, run_id: &RunId) -> Result<DeploymentLock, CliError> {
    journal
        .acquire_lock(LockRequest {
            run_id: run_id.clone(),
            purpose: LockPurpose::Migrate,
            force_unlock: None,
        })
        .await
        .map_err(crate::shared_lock::refusal)
}
