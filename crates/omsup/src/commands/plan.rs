//! `omsup plan -f FILE`: read and check the plan file, observe the deployment, diff, and show
//! the steps (human or JSON on stdout; progress and logs on stderr only).
//!
//! Exit codes: 0 success (with `--detailed-exitcode`: nothing to do), 1 an error (an invalid
//! plan file, a part of the world that cannot be observed, a preflight error, printed after the
//! plan), 2 with `--detailed-exitcode` when the plan has changes.

use std::io::Write as _;
use std::path::Path;

use omsup_engine::SavedPlan;
use omsup_exec::observe::{Observation, observe};
use omsup_exec::secrets::Secrets;
use omsup_model::lint::lint_source;
use omsup_model::{PlanFile, Severity};

use crate::cli::{OutputFormat, PlanArgs};
use crate::commands::common::runtime;
use crate::diagnostics::render_human;
use crate::exit_codes;
use crate::render::{render_plan_human, render_plan_json};
use crate::report::CliError;
use crate::style::Style;

/// A plan file read, checked and observed: what `plan` and `graph` start from.
pub struct Prepared {
    pub plan_file: PlanFile,
    pub plan_file_bytes: Vec<u8>,
    pub secrets: Secrets,
    pub observation: Observation,
}

/// [`prepare_async`] on a runtime of its own (for `plan` and `graph`).
pub fn prepare(path: &Path, style: &Style) -> Result<Prepared, CliError> {
    runtime()?.block_on(prepare_async(path, style))
}

/// Reads and checks `path` (see [`read_plan_file`]), reads the password, and observes the
/// deployment.
pub async fn prepare_async(path: &Path, style: &Style) -> Result<Prepared, CliError> {
    let (plan_file, bytes, secrets) = read_with_secrets(path, style)?;
    Ok(observe_prepared(plan_file, bytes, secrets).await)
}

/// The plan file (linted, see [`read_plan_file`]) and its password, without observing.
pub fn read_with_secrets(
    path: &Path,
    style: &Style,
) -> Result<(PlanFile, Vec<u8>, Secrets), CliError> {
    let (plan_file, bytes) = read_plan_file(path, style)?;
    let secrets = crate::commands::common::secrets_of(&plan_file)?;
    Ok((plan_file, bytes, secrets))
}

/// Observes the deployment of a plan file read by [`read_with_secrets`].
pub async fn observe_prepared(plan_file: PlanFile, bytes: Vec<u8>, secrets: Secrets) -> Prepared {
    let started = std::time::Instant::now();
    let observation = observe(&plan_file, &secrets).await;
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        problems = observation.problems.len(),
        "observed the deployment"
    );
    Prepared {
        plan_file,
        plan_file_bytes: bytes,
        secrets,
        observation,
    }
}

/// Reads `path` and refuses a plan file with lint errors (printing every finding on stderr).
pub fn read_plan_file(path: &Path, style: &Style) -> Result<(PlanFile, Vec<u8>), CliError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| {
        CliError::new(format!("cannot read the plan file `{display}`"))
            .with_cause(error.to_string())
            .with_hint("check the path given to `-f`")
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let linted = lint_source(&text);
    let errors: Vec<_> = linted
        .findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .collect();
    {
        // Warnings are shown and do not block; errors are shown and refuse the file.
        let mut stderr = anstream::stderr().lock();
        for finding in &linted.findings {
            let _ = stderr.write_all(render_human(&display, &text, finding, style).as_bytes());
        }
    }
    if !errors.is_empty() || linted.plan.is_none() {
        let count = errors.len().max(1);
        return Err(CliError::new(format!(
            "the plan file `{display}` has {count} error{}",
            if count == 1 { "" } else { "s" }
        ))
        .with_hint(format!("run `omsup lint {display}` and fix every error")));
    }
    Ok((linted.plan.expect("checked above"), bytes))
}

/// Prints every part of the world that could not be observed, as `error:` / `caused by:` /
/// `hint:` blocks on stderr. Returns how many there were.
pub fn report_observation_problems(observation: &Observation, style: &Style) -> usize {
    let mut stderr = anstream::stderr().lock();
    for problem in &observation.problems {
        let mut error = CliError::new(problem.to_string()).with_hint(problem.hint());
        for cause in problem.causes() {
            error = error.with_cause(cause);
        }
        let rendered = error.render(style);
        let _ = stderr.write_all(rendered.as_bytes());
    }
    observation.problems.len()
}

pub fn run(args: &PlanArgs, style: &Style) -> Result<u8, CliError> {
    let prepared = prepare(&args.file, style)?;
    let upgrade = omsup_engine::plan(
        &prepared.plan_file,
        &prepared.plan_file_bytes,
        &prepared.observation.world,
    );
    let rendered = match args.format {
        OutputFormat::Human => render_plan_human(&upgrade, style),
        OutputFormat::Json => render_plan_json(&upgrade),
    };
    {
        let mut stdout = anstream::stdout().lock();
        let _ = stdout.write_all(rendered.as_bytes());
        let _ = stdout.flush();
    }
    note_unfinished_run(&args.file, args.state.state_dir.as_deref(), style);
    if args.format == OutputFormat::Human && !upgrade.is_empty() {
        note_downtime_estimate(
            &args.file,
            args.state.state_dir.as_deref(),
            &upgrade.fingerprint,
        );
    }
    let problems = report_observation_problems(&prepared.observation, style);
    let blocking = upgrade
        .diff
        .findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .count();
    if problems > 0 || blocking > 0 {
        let count = problems.max(blocking);
        let error = CliError::new(format!(
            "preflight found {count} error{}: nothing can be applied{}",
            if count == 1 { "" } else { "s" },
            if args.out.is_some() {
                " and no saved plan was written"
            } else {
                ""
            }
        ))
        .with_hint("fix what the findings above name, then run `omsup plan` again");
        return Err(error);
    }
    if let Some(out) = &args.out {
        let plan_file = std::path::absolute(&args.file)
            .unwrap_or_else(|_| args.file.clone())
            .display()
            .to_string();
        let saved = SavedPlan::new(plan_file, upgrade.clone());
        write_saved_plan(out, &saved)?;
        tracing::info!(path = %out.display(), "saved the plan");
        anstream::eprintln!(
            "Saved the plan to `{}`; apply it with `omsup apply {}`",
            out.display(),
            out.display()
        );
    }
    Ok(if args.detailed_exitcode && !upgrade.is_empty() {
        exit_codes::PLAN_HAS_CHANGES
    } else {
        exit_codes::SUCCESS
    })
}

/// Writes the saved plan atomically (a temporary file in the same directory, then a rename),
/// readable by its owner only.
fn write_saved_plan(path: &Path, saved: &SavedPlan) -> Result<(), CliError> {
    let failed = |error: std::io::Error| {
        CliError::new(format!("cannot write the saved plan `{}`", path.display()))
            .with_cause(error.to_string())
            .with_hint("check that the directory exists and is writable")
    };
    let json = serde_json::to_string_pretty(saved).expect("a saved plan serializes") + "\n";
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // NamedTempFile is created with mode 0600.
    let mut temporary = tempfile::NamedTempFile::new_in(&directory).map_err(failed)?;
    temporary.write_all(json.as_bytes()).map_err(failed)?;
    temporary.as_file().sync_all().map_err(failed)?;
    temporary
        .persist(path)
        .map_err(|error| failed(error.error))?;
    Ok(())
}

/// The downtime window the last successful rehearsal predicts (stdout), or where to get one
/// (stderr).
fn note_downtime_estimate(file: &Path, state_dir: Option<&Path>, fingerprint: &str) {
    let note = runtime().ok().and_then(|runtime| {
        runtime.block_on(async {
            let journal = crate::commands::common::open_existing_journal(Some(file), state_dir)
                .await
                .ok()?;
            crate::commands::rehearse::estimate_note(&journal, fingerprint).await
        })
    });
    match note {
        Some(note) => anstream::println!("{}", note.text),
        None => anstream::eprintln!(
            "no downtime estimate: no successful rehearsal of this deployment; `omsup rehearse -f {}` measures one (and tries init on copies)",
            file.display()
        ),
    }
}

/// A plan is computed from the world as it is; when the journal holds an unfinished run, the
/// user most likely wants `omsup resume` (or `rollback`) instead of a new apply: say so.
fn note_unfinished_run(file: &Path, state_dir: Option<&Path>, style: &Style) {
    let unfinished = runtime().ok().and_then(|runtime| {
        runtime.block_on(async {
            let journal = crate::commands::common::open_existing_journal(Some(file), state_dir)
                .await
                .ok()?;
            journal.unfinished_run().await.ok().flatten()
        })
    });
    if let Some(run) = unfinished {
        anstream::eprintln!(
            "{} {} run `{}` of this deployment is unfinished; `omsup resume` continues it and `omsup rollback` undoes it (a new apply is refused until then)",
            style.yellow("note:"),
            run.info.kind,
            run.info.run_id
        );
    }
}
