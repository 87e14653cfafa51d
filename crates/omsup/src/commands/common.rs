//! What the commands share: the async runtime, where a deployment's journal is (`--state-dir`,
//! else `.omsup/` next to the plan file, else `.omsup/` here; see `status`), journal errors for
//! the CLI, and where user-facing text goes while stdout carries JSON Lines.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use omsup_journal::{Journal, JournalError, journals_in};

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
    let display = plan_file.display();
    let text = std::fs::read_to_string(plan_file).map_err(|error| {
        CliError::new(format!("cannot read the plan file `{display}`"))
            .with_cause(error.to_string())
            .with_hint("check the path given to `-f`")
            .with_exit_code(exit_codes::USAGE)
    })?;
    match omsup_model::lint::lint_source(&text).plan {
        Some(plan) => Ok(plan.deployment.name),
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

/// Opens the journal that `-f FILE` and `--state-dir DIR` point at, which must exist.
pub async fn open_existing_journal(
    file: Option<&Path>,
    state_dir: Option<&Path>,
) -> Result<Journal, CliError> {
    let (state_dir, deployment) = locate_journal(file, state_dir)?;
    Journal::open_existing(&state_dir, &deployment)
        .await
        .map_err(|error| {
            journal_error(error).with_hint("a journal is created by the first `omsup apply`")
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
