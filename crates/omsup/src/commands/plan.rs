//! `omsup plan -f FILE`: read and check the plan file, observe the deployment, diff, and show
//! the steps (human or JSON on stdout; progress and logs on stderr only).
//!
//! Exit codes: 0 success (with `--detailed-exitcode`: nothing to do), 1 an error (an invalid
//! plan file, a part of the world that cannot be observed, a preflight error, printed after the
//! plan), 2 with `--detailed-exitcode` when the plan has changes.

use std::io::Write as _;
use std::path::Path;

use omsup_exec::observe::{Observation, observe};
use omsup_exec::secrets::Secrets;
use omsup_model::lint::lint_source;
use omsup_model::{PlanFile, Severity};

use crate::cli::PlanArgs;
use crate::diagnostics::render_human;
use crate::exit_codes;
use crate::report::CliError;
use crate::style::Style;

/// A plan file read, checked and observed: what `plan` and `graph` start from.
pub struct Prepared {
    pub plan_file: PlanFile,
    pub plan_file_bytes: Vec<u8>,
    pub observation: Observation,
}

/// Reads `path`, refuses a plan file with lint errors (printing them on stderr), reads the
/// password, and observes the deployment.
pub fn prepare(path: &Path, style: &Style) -> Result<Prepared, CliError> {
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
    if !errors.is_empty() || linted.plan.is_none() {
        let mut stderr = std::io::stderr().lock();
        for finding in &errors {
            let _ = stderr.write_all(render_human(&display, &text, finding, style).as_bytes());
        }
        let count = errors.len().max(1);
        return Err(CliError::new(format!(
            "the plan file `{display}` has {count} error{}",
            if count == 1 { "" } else { "s" }
        ))
        .with_hint(format!("run `omsup lint {display}` and fix every error")));
    }
    let plan_file = linted.plan.expect("checked above");
    let secrets = Secrets::from_plan(&plan_file).map_err(|error| {
        let hint = error.hint();
        CliError::from_error(&error).with_hint(hint)
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| {
            CliError::new("cannot start the async runtime").with_cause(error.to_string())
        })?;
    let started = std::time::Instant::now();
    let observation = runtime.block_on(observe(&plan_file, &secrets));
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        problems = observation.problems.len(),
        "observed the deployment"
    );
    Ok(Prepared {
        plan_file,
        plan_file_bytes: bytes,
        observation,
    })
}

/// Prints every part of the world that could not be observed, as `error:` / `caused by:` /
/// `hint:` blocks on stderr. Returns how many there were.
pub fn report_observation_problems(observation: &Observation, style: &Style) -> usize {
    let mut stderr = std::io::stderr().lock();
    for problem in &observation.problems {
        let rendered = CliError::from_error(problem)
            .with_hint(problem.hint())
            .render(style);
        let _ = stderr.write_all(rendered.as_bytes());
    }
    observation.problems.len()
}

pub fn run(args: &PlanArgs, style: &Style) -> Result<u8, CliError> {
    let prepared = prepare(&args.file, style)?;
    let _ = (&args.out, args.format, args.detailed_exitcode);
    let json = serde_json::to_string_pretty(&prepared.observation.world)
        .expect("the observed world serializes");
    println!("{json}");
    if report_observation_problems(&prepared.observation, style) > 0 {
        return Ok(exit_codes::FAILURE);
    }
    Ok(exit_codes::SUCCESS)
}
