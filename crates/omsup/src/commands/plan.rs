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
use crate::diagnostics::render_human;
use crate::exit_codes;
use crate::report::CliError;
use crate::style::Style;
use interim_render::{render_plan_human, render_plan_json};

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
    {
        // Warnings are shown and do not block; errors are shown and refuse the file.
        let mut stderr = std::io::stderr().lock();
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
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(rendered.as_bytes());
        let _ = stdout.flush();
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
        eprintln!(
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

/// Interim renderers, used until `crate::render` lands (then removed).
pub(crate) mod interim_render {
    use omsup_engine::UpgradePlan;

    use crate::style::Style;

    pub fn render_plan_human(plan: &UpgradePlan, style: &Style) -> String {
        use omsup_engine::diff::NodeState;
        use omsup_model::Severity;

        let diff = &plan.diff;
        let mut out = String::new();
        let from = diff
            .from
            .map_or_else(|| "unknown".to_owned(), |v| v.to_string());
        out.push_str(&format!(
            "{} {from} -> {}\n\n",
            style.bold(&format!("Upgrade `{}`:", plan.deployment)),
            diff.to
        ));
        for node in &diff.nodes {
            let (symbol, what) = match node.state {
                NodeState::NeedsUpgrade => ("~", "upgrade"),
                NodeState::Upgraded => (" ", "already on the target"),
                NodeState::Blocked => ("!", "blocked"),
            };
            out.push_str(&format!(
                "  {symbol} node {} (region {}, container `{}`): {what}\n",
                node.ip, node.region, node.container
            ));
            if node.state == NodeState::NeedsUpgrade {
                out.push_str(&format!(
                    "      image: {} -> {}\n",
                    node.image_before.as_deref().unwrap_or("none"),
                    node.image_after
                ));
                if let Some(kept) = &node.kept_as {
                    out.push_str(&format!("      old container kept as `{kept}`\n"));
                }
                for (key, value) in &node.env_after {
                    if node.env_before.get(key) != Some(value) {
                        out.push_str(&format!("      + env {key}={value}\n"));
                    }
                }
            }
        }
        for database in &diff.databases {
            let before = database
                .schema_before
                .map_or_else(|| "unknown".to_owned(), |v| v.to_string());
            out.push_str(&format!(
                "  ~ db {}: schema {before} -> {}{}\n",
                database.name,
                database.schema_after,
                if database.backup {
                    ", backed up first"
                } else {
                    ""
                }
            ));
        }
        if let Some(ha) = &diff.ha {
            out.push_str(&format!(
                "  ~ ha.config enable: {} -> false during the upgrade -> {}\n",
                ha.enable_before, ha.enable_after
            ));
        }
        for finding in &diff.findings {
            let label = match finding.severity {
                Severity::Error => style.red("error"),
                Severity::Warning => style.yellow("warning"),
            };
            out.push_str(&format!(
                "\n{label}[{}] {}: {}\n",
                finding.code, finding.subject, finding.message
            ));
            if let Some(hint) = &finding.hint {
                out.push_str(&format!("  hint: {hint}\n"));
            }
        }
        if plan.steps.is_empty() {
            if !plan.has_blocking_findings() {
                out.push_str("\nNo changes. The deployment matches the plan file.\n");
            }
            return out;
        }
        out.push_str("\nSteps (one lane runs in parallel; * inside the downtime window):\n");
        for (lane, steps) in plan.lanes().iter().enumerate() {
            for step in steps {
                let mark = if step.downtime { "*" } else { " " };
                out.push_str(&format!("  {lane:>2} {mark} {}\n", step.id));
                if !step.depends_on.is_empty() {
                    out.push_str(&format!(
                        "         {}\n",
                        style.dim(&format!("after {}", step.depends_on.join(", ")))
                    ));
                }
            }
        }
        out.push_str(&format!(
            "\nPlan: {} steps on {} nodes; downtime window: {} steps\n",
            plan.steps.len(),
            plan.nodes_touched(),
            plan.downtime_steps()
        ));
        out
    }

    pub fn render_plan_json(plan: &UpgradePlan) -> String {
        serde_json::to_string_pretty(plan).expect("a plan serializes") + "\n"
    }

    pub fn render_dot(plan: &UpgradePlan) -> String {
        let mut out = String::from("digraph plan {\n");
        for step in &plan.steps {
            out.push_str(&format!("  \"{}\";\n", step.id));
            for dependency in &step.depends_on {
                out.push_str(&format!("  \"{dependency}\" -> \"{}\";\n", step.id));
            }
        }
        out.push_str("}\n");
        out
    }
}
