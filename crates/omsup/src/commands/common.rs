//! What the commands share: the async runtime, where a deployment's journal is (the plan file's
//! `[state] backend`: the meta database server, or a local state directory: `--state-dir`,
//! else `.omsup/` next to the plan file, else `.omsup/` here; see `status`), journal errors for
//! the CLI, and where user-facing text goes while stdout carries JSON Lines.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use omsup_exec::secrets::Secrets;
use omsup_journal::shared::SharedState;
use omsup_journal::{Journal, JournalError, journals_in};
use omsup_model::PlanFile;
use omsup_model::plan::StateBackend;

use crate::cli::ProgressFormat;
use crate::exit_codes;
use crate::report::CliError;

/// The runtime commands that observe or act run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| {
            CliError::new("cannot start the async runtime").with_cause(error.to_string())
        })
}

/// The state directory for a plan file and/or an explicit `--state-dir`.
pub fn state_dir_for(plan_file: Option<&Path>, state_dir: Option<&Path>) -> PathBuf {
    if let Some(state_dir) = state_dir {
        return state_dir.to_owned();
    }
    match plan_file.and_then(Path::parent) {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(".omsup"),
        _ => PathBuf::from(".omsup"),
    }
}

/// The `[deployment] name` of a plan file.
pub fn deployment_name_of(plan_file: &Path) -> Result<String, CliError> {
    Ok(plan_of(plan_file)?.deployment.name)
}

/// A plan file read for finding its journal (its deployment name and `[state]`), without
/// printing lint findings.
pub(crate) fn plan_of(plan_file: &Path) -> Result<PlanFile, CliError> {
    let display = plan_file.display();
    let text = std::fs::read_to_string(plan_file).map_err(|error| {
        CliError::new(format!("cannot read the plan file `{display}`"))
            .with_cause(error.to_string())
            .with_hint("check the path given to `-f`")
            .with_exit_code(exit_codes::USAGE)
    })?;
    match omsup_model::lint::lint_source(&text).plan {
        Some(plan) => Ok(plan),
        None => Err(
            CliError::new(format!("cannot read the deployment name from `{display}`"))
                .with_hint(format!("run `omsup lint {display}`")),
        ),
    }
}

pub fn journal_error(error: JournalError) -> CliError {
    let hint = error.hint();
    let cli_error = CliError::from_error(&error);
    match hint {
        Some(hint) => cli_error.with_hint(hint),
        None => cli_error,
    }
}

/// The state directory and deployment whose journal a command means (see the module doc).
pub fn locate_journal(
    file: Option<&Path>,
    state_dir: Option<&Path>,
) -> Result<(PathBuf, String), CliError> {
    let state_dir = state_dir_for(file, state_dir);
    let deployment = match file {
        Some(file) => deployment_name_of(file)?,
        None => {
            let found = journals_in(&state_dir).map_err(|error| {
                CliError::new(format!(
                    "cannot list the state directory `{}`",
                    state_dir.display()
                ))
                .with_cause(error.to_string())
            })?;
            match found.as_slice() {
                [only] => only.clone(),
                [] => {
                    return Err(CliError::new(format!(
                        "no journal in `{}`",
                        state_dir.display()
                    ))
                    .with_hint(
                        "pass the plan file with `-f FILE`, or its journal directory with `--state-dir DIR`",
                    ));
                }
                several => {
                    return Err(CliError::new(format!(
                        "`{}` holds the journals of {} deployments: {}",
                        state_dir.display(),
                        several.len(),
                        several
                            .iter()
                            .map(|name| format!("`{name}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .with_hint("pass the plan file of the deployment you mean with `-f FILE`"));
                }
            }
        }
    };
    Ok((state_dir, deployment))
}

/// The secrets a plan file names (the meta database password).
pub fn secrets_of(plan: &PlanFile) -> Result<Secrets, CliError> {
    Secrets::from_plan(plan).map_err(|error| {
        let hint = error.hint();
        CliError::from_error(&error).with_hint(hint)
    })
}

/// Opens (creating it if needed) the journal of `plan`'s deployment where its `[state]
/// backend` keeps it: in `state_dir`, or in omsup's database in the meta database server.
/// The meta database password is registered as a secret the journal refuses to hold.
pub async fn open_journal(
    plan: &PlanFile,
    secrets: &Secrets,
    state_dir: &Path,
) -> Result<Journal, CliError> {
    let deployment = &plan.deployment.name;
    let journal = match plan.state.backend {
        StateBackend::Local => Journal::open(state_dir, deployment).await,
        StateBackend::MetaDb => {
            let config = crate::shared_lock::shared_state_config(plan, secrets);
            match SharedState::open(config).await {
                Ok(state) => Journal::open_shared(&state, &plan.meta_db.rm, deployment).await,
                Err(error) => Err(error),
            }
        }
    }
    .map_err(journal_error)?;
    journal.register_secret(secrets.meta_password.expose());
    Ok(journal)
}

/// Opens the journal that `-f FILE` and `--state-dir DIR` point at, which must exist: with a
/// plan file whose `[state] backend` is `meta_db`, the one in the meta database server (from
/// any machine; nothing is created there); otherwise the local one.
pub async fn open_existing_journal(
    file: Option<&Path>,
    state_dir: Option<&Path>,
) -> Result<Journal, CliError> {
    if let Some(file) = file {
        let plan = plan_of(file)?;
        if plan.state.backend == StateBackend::MetaDb {
            let secrets = secrets_of(&plan)?;
            let config = crate::shared_lock::shared_state_config(&plan, &secrets);
            let database = config.database.clone();
            let Some(state) = SharedState::open_existing(config)
                .await
                .map_err(journal_error)?
            else {
                return Err(CliError::new(format!(
                    "no journal for deployment `{}`: omsup's database `{database}` is not in the meta database server yet",
                    plan.deployment.name
                ))
                .with_hint("a journal is created by the first `omsup apply`"));
            };
            let journal = Journal::open_shared(&state, &plan.meta_db.rm, &plan.deployment.name)
                .await
                .map_err(journal_error)?;
            journal.register_secret(secrets.meta_password.expose());
            return Ok(journal);
        }
    }
    let (state_dir, deployment) = locate_journal(file, state_dir)?;
    Journal::open_existing(&state_dir, &deployment)
        .await
        .map_err(|error| {
            journal_error(error).with_hint(
                "a journal is created by the first `omsup apply`; one kept in the meta database server (`[state] backend = \"meta_db\"`) is found with `-f FILE`",
            )
        })
}

/// Text for the user: on stdout, or on stderr when stdout carries JSON Lines events.
pub fn print_for(rendered: &str, format: ProgressFormat) {
    match format {
        ProgressFormat::Human => {
            let mut stdout = anstream::stdout().lock();
            let _ = stdout.write_all(rendered.as_bytes());
            let _ = stdout.flush();
        }
        ProgressFormat::Jsonl => anstream::eprint!("{rendered}"),
    }
}
