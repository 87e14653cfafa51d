//! `omsup rehearse -f FILE [--clean]`: the target version's init against copies of the meta
//! databases in a throwaway container, with the deployment still running, before the outage.
//!
//! The deployment lock is held for the whole rehearsal (in the meta database server too), so
//! it never runs beside an apply, a resume or a rollback. Nothing of the real deployment is
//! changed: its databases are only read (copied into scratch databases on the same server,
//! see `omsup_exec::rehearsal`), its containers only inspected and their config.yaml read. The
//! throwaway container runs on the daemon `[rehearsal]` names (default: the first node's,
//! on a `bridge` network of its own). Whatever happens (a failure, Ctrl-C, SIGTERM) the
//! container and the copies are removed before the command returns; what a killed rehearsal
//! left is removed by the next one, or by `--clean`.
//!
//! Exit codes: 0 the rehearsal succeeded (or `--clean` removed what there was), 1 it failed
//! (the step, the init log's tail; apply would fail the same way inside its downtime window),
//! (or the plan file has errors, such as `network = "host"` on a node's daemon), 3 refused
//! before touching anything (lock held, unfinished run), 4 interrupted (cleaned up), 64 usage.

use std::time::{Duration, Instant};

use omsup_engine::StepId;
use omsup_exec::rehearsal::{Cleaned, Phase, Rehearsal};
use omsup_journal::{DeploymentLock, Journal, LockPurpose, RehearsalRecord, RunId, Timestamp};
use omsup_model::PlanFile;
use serde::{Deserialize, Serialize};

use crate::cli::RehearseArgs;
use crate::commands::common::{open_journal, runtime, state_dir_for};
use crate::commands::plan::{observe_prepared, read_with_secrets, report_observation_problems};
use crate::exit_codes;
use crate::report::CliError;
use crate::run::{refuse_unfinished, release, take_lock};
use crate::runner::{Failpoints, StepFailure};
use crate::shared_lock::share_lock;
use crate::style::Style;

/// `omsup rehearse`
pub fn run(args: &RehearseArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(rehearse(args, style))
}

async fn rehearse(args: &RehearseArgs, style: &Style) -> Result<u8, CliError> {
    let (plan_file, bytes, secrets) = read_with_secrets(&args.file, style)?;
    let state_dir = state_dir_for(Some(&args.file), args.state.state_dir.as_deref());
    let journal = open_journal(&plan_file, &secrets, &state_dir).await?;
    let lock = take_lock(
        &journal,
        RunId::generate(),
        LockPurpose::Rehearse,
        args.force_unlock.as_deref(),
    )
    .await?;
    let outcome = async {
        refuse_unfinished(
            &journal,
            "finish it first (`omsup resume` or `omsup rollback`); a rehearsal rehearses an upgrade that has not begun",
        )
        .await?;
        share_lock(
            &lock,
            &plan_file,
            &secrets,
            LockPurpose::Rehearse,
            args.force_unlock.as_deref(),
        )
        .await?;
        locked(args, style, (plan_file, bytes, secrets), (&journal, &lock)).await
    }
    .await;
    release(lock).await;
    outcome
}

/// Where the throwaway container runs, resolved from `[rehearsal]` and the plan file's first node
/// (`network = "host"` on a node's daemon is a lint error, `rehearsal-host-network`).
struct Place {
    docker: omsup_model::plan::Node,
    network: String,
    host_ip: String,
}

fn place(plan_file: &PlanFile) -> Place {
    let first = plan_file
        .nodes()
        .map(|(_, node)| node)
        .next()
        .expect("a plan file has a node (schema)");
    let settings = plan_file.rehearsal.clone().unwrap_or_default();
    let network = settings
        .network
        .clone()
        .unwrap_or_else(|| "bridge".to_owned());
    let mut docker = first.clone();
    if let Some(endpoint) = &settings.docker {
        docker.docker = endpoint.clone();
        docker.tls = settings.tls.clone();
        docker.ssh = settings.ssh.clone();
    }
    Place {
        host_ip: settings.host_ip.unwrap_or_else(|| first.ip.clone()),
        docker,
        network,
    }
}

async fn locked(
    args: &RehearseArgs,
    style: &Style,
    (plan_file, bytes, secrets): (PlanFile, Vec<u8>, omsup_exec::secrets::Secrets),
    (journal, lock): (&Journal, &DeploymentLock),
) -> Result<u8, CliError> {
    // `--clean` and the clean-up of earlier rehearsals need only the meta database and the
    // rehearsal host, not the whole deployment.
    let place = place(&plan_file);
    let pool = omsup_exec::apply::connect_meta_db(&plan_file, &secrets)
        .await
        .map_err(|message| {
            CliError::new(message).with_hint("check `[meta_db]` and the password")
        })?;
    let docker = omsup_exec::docker_actions::connect_node_docker(
        &place.docker,
        &plan_file.timeouts,
        "the rehearsal host",
    )
    .await
    .map_err(CliError::new)?;
    let deployment = plan_file.deployment.name.clone();
    let leftovers = omsup_exec::rehearsal::clean(&pool, &docker, &deployment, None).await;
    report_cleaned(&leftovers, "removed what an earlier rehearsal left");
    if args.clean {
        return if leftovers.problems.is_empty() {
            if leftovers.databases.is_empty() && leftovers.containers.is_empty() {
                anstream::eprintln!(
                    "nothing to clean: no rehearsal of `{deployment}` left anything"
                );
            }
            Ok(exit_codes::SUCCESS)
        } else {
            Err(not_cleaned(&leftovers))
        };
    }

    let prepared = observe_prepared(plan_file, bytes, secrets).await;
    if report_observation_problems(&prepared.observation, style) > 0 {
        return Err(
            CliError::new("cannot observe the whole deployment: nothing was rehearsed")
                .with_hint("fix what the errors above name, then run `omsup rehearse` again"),
        );
    }
    let plan_file = &prepared.plan_file;
    let plan = omsup_engine::plan(
        plan_file,
        &prepared.plan_file_bytes,
        &prepared.observation.world,
    );
    // The node whose new container is mirrored: the first one the plan starts one on.
    let node_ip = plan
        .diff
        .nodes
        .iter()
        .find(|node| plan.new_container(&node.ip).is_some())
        .map(|node| node.ip.clone());
    let Some(node_ip) = node_ip else {
        anstream::eprintln!(
            "nothing to rehearse: the plan starts no new container (the deployment is at {} already)",
            plan_file.deployment.target_version
        );
        return Ok(exit_codes::SUCCESS);
    };
    let node_dockers = omsup_exec::docker_actions::connect_dockers(plan_file)
        .await
        .map_err(CliError::new)?;
    let rehearsal = Rehearsal {
        plan_file,
        plan: &plan,
        pool: &pool,
        id: omsup_exec::rehearsal::new_id(),
        node_docker: &node_dockers[&node_ip],
        node_ip,
        docker: &docker,
        network: place.network.clone(),
        host_ip: place.host_ip.clone(),
    };
    anstream::eprintln!(
        "rehearsal `{}` of deployment `{deployment}`: the throwaway container `{}` runs on `{}` (network `{}`, OMS_HOST_IP {})",
        rehearsal.id,
        rehearsal.container(),
        place.docker.docker,
        place.network,
        place.host_ip,
    );
    let failpoints = Failpoints::from_env();
    let started = Instant::now();
    let on_step = |step: &omsup_engine::StepId, phase: Phase| match phase {
        Phase::Started => {
            failpoints.before(step);
            anstream::eprintln!("[{:>6.1}s] {step} ...", started.elapsed().as_secs_f64());
        }
        Phase::Finished => {
            anstream::eprintln!("[{:>6.1}s] {step} done", started.elapsed().as_secs_f64());
        }
    };
    let work = rehearsal.run(&on_step);
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break Some(result),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if crate::interrupt::requested() {
                    break None;
                }
            }
        }
    };
    let cleaned =
        omsup_exec::rehearsal::clean(&pool, &docker, &deployment, Some(&rehearsal.id)).await;
    report_cleaned(&cleaned, "removed the rehearsal's");
    let problems = (!cleaned.problems.is_empty()).then(|| not_cleaned(&cleaned));
    if let Some(result) = &result {
        let document = RehearsalDocument {
            format_version: RehearsalDocument::FORMAT_VERSION,
            node: rehearsal.node_ip.clone(),
            docker: place.docker.docker.clone(),
            measures: result.as_ref().ok().cloned(),
            failed_step: result.as_ref().err().map(|e| e.step().to_string()),
        };
        let record = RehearsalRecord {
            rehearsal_id: rehearsal.id.clone(),
            plan_fingerprint: plan.fingerprint.clone(),
            finished_at: Timestamp::now(),
            succeeded: result.is_ok(),
            document: serde_json::to_value(&document).expect("a document serializes"),
        };
        if let Err(error) = journal.record_rehearsal(lock, &record).await {
            anstream::eprintln!(
                "warning: the rehearsal could not be recorded in the journal: {error}"
            );
        }
    }
    match result {
        None => Err(CliError::new(format!(
            "rehearsal `{}` interrupted: nothing of the deployment was changed",
            rehearsal.id
        ))
        .with_hint("run `omsup rehearse` again when ready")
        .with_exit_code(exit_codes::INTERRUPTED)),
        Some(Err(error)) => {
            let mut failure = StepFailure::from_error(&error);
            failure.redact(prepared.secrets.meta_password.expose());
            let mut cli = CliError::new(format!(
                "rehearsal `{}` failed at `{}`: {}",
                rehearsal.id, failure.step, failure.message
            ));
            for cause in &failure.causes {
                cli = cli.with_cause(cause.clone());
            }
            // Init and its checks are what apply runs inside its window; a step before them
            // may also have failed for the rehearsal's own set-up (the daemon, its network).
            let migration = [StepId::rehearse_init(), StepId::rehearse_check()];
            cli = cli.with_cause(if migration.contains(&failure.step) {
                "the deployment was not changed; `omsup apply` would fail the same way inside its downtime window".to_owned()
            } else {
                format!(
                    "the deployment was not changed; a step before init can also fail for the rehearsal's own set-up: the `[rehearsal]` daemon and its network must let the throwaway container reach the meta database at {}:{}",
                    plan_file.meta_db.host, plan_file.meta_db.port
                )
            });
            Err(cli.with_hint(failure.hint.unwrap_or_else(|| {
                "fix the cause (the copies and the throwaway container are removed), then run `omsup rehearse` again".to_owned()
            })))
        }
        Some(Ok(measures)) => {
            if let Some(problem) = problems {
                return Err(problem);
            }
            print_measures(&rehearsal.id, &measures, started.elapsed());
            anstream::println!("{}", Estimate::of(&measures).line());
            Ok(exit_codes::SUCCESS)
        }
    }
}

fn report_cleaned(cleaned: &Cleaned, what: &str) {
    if cleaned.databases.is_empty() && cleaned.containers.is_empty() {
        return;
    }
    anstream::eprintln!(
        "{what}: {}",
        cleaned
            .containers
            .iter()
            .map(|c| format!("container `{c}`"))
            .chain(cleaned.databases.iter().map(|d| format!("database `{d}`")))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn not_cleaned(cleaned: &Cleaned) -> CliError {
    let mut error = CliError::new("the rehearsal could not remove everything it made");
    for problem in &cleaned.problems {
        error = error.with_cause(problem.clone());
    }
    error.with_hint("fix the cause, then `omsup rehearse --clean` removes the rest")
}

fn print_measures(id: &str, measures: &omsup_exec::rehearsal::Measures, took: Duration) {
    let mut out = format!(
        "Rehearsal `{id}` succeeded in {:.1} s: init took the copies to {}.\n",
        took.as_secs_f64(),
        measures.schema_version
    );
    for copy in &measures.copies {
        out.push_str(&format!(
            "  copy {:<24} {:>8} rows {:>12} bytes {:>8.1} s\n",
            copy.source,
            copy.rows,
            copy.bytes,
            copy.took_ms as f64 / 1000.0
        ));
    }
    if let Some(ms) = measures.image_load_ms {
        out.push_str(&format!(
            "  image load              {:>8.1} s\n",
            ms as f64 / 1000.0
        ));
    }
    out.push_str(&format!(
        "  container start         {:>8.1} s\n  ready after             {:>8.1} s\n  init                    {:>8.1} s{}\n",
        measures.start_ms as f64 / 1000.0,
        measures.ready_ms as f64 / 1000.0,
        measures.init_ms as f64 / 1000.0,
        if measures.oms_version_remedy { " (with the `oms_version` remedy, as apply will)" } else { "" },
    ));
    anstream::print!("{out}");
}

/// What a rehearsal keeps in the journal ([`RehearsalRecord::document`]), keyed there by the
/// plan's fingerprint. Format version 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RehearsalDocument {
    pub format_version: u32,
    /// The node whose new container was mirrored.
    pub node: String,
    /// Where the throwaway container ran.
    pub docker: String,
    /// What a successful rehearsal measured.
    pub measures: Option<omsup_exec::rehearsal::Measures>,
    /// The step a failed one stopped at.
    pub failed_step: Option<String>,
}

impl RehearsalDocument {
    const FORMAT_VERSION: u32 = 1;
}

/// The downtime window a rehearsal's figures predict: the backups (run in parallel: the
/// slowest database; its copy stands for its dump, both read every row), the new container's
/// start and readiness, and init. Stopping the old containers and the online check come on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Estimate {
    pub backups_ms: u64,
    pub start_ms: u64,
    pub init_ms: u64,
}

impl Estimate {
    pub fn of(measures: &omsup_exec::rehearsal::Measures) -> Self {
        Self {
            backups_ms: measures.copies.iter().map(|c| c.took_ms).max().unwrap_or(0),
            start_ms: measures.start_ms + measures.ready_ms,
            init_ms: measures.init_ms,
        }
    }

    pub fn total_ms(&self) -> u64 {
        self.backups_ms + self.start_ms + self.init_ms
    }

    /// `Estimated downtime window: ~N s (backups A s + start B s + init C s)`.
    pub fn line(&self) -> String {
        let s = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        format!(
            "Estimated downtime window: ~{} (backups {} + start and readiness {} + init {}; stopping the old containers and the online check come on top)",
            s(self.total_ms()),
            s(self.backups_ms),
            s(self.start_ms),
            s(self.init_ms)
        )
    }
}

/// The estimate from the last successful rehearsal of `fingerprint` (else of any plan of the
/// deployment, said so), with its age; `None` when the journal holds no successful rehearsal.
pub(crate) async fn estimate_note(journal: &Journal, fingerprint: &str) -> Option<EstimateNote> {
    let exact = journal
        .last_rehearsal(Some(fingerprint), true)
        .await
        .ok()
        .flatten();
    let (same_plan, record) = match exact {
        Some(record) => (true, record),
        None => (
            false,
            journal.last_rehearsal(None, true).await.ok().flatten()?,
        ),
    };
    let document: RehearsalDocument = serde_json::from_value(record.document.clone()).ok()?;
    if document.format_version != RehearsalDocument::FORMAT_VERSION {
        return None;
    }
    let measures = document.measures?;
    let age = Timestamp::now().duration_since(record.finished_at);
    let estimate = Estimate::of(&measures);
    Some(EstimateNote {
        same_plan,
        total_ms: estimate.total_ms(),
        text: format!(
            "{}\n  based on rehearsal `{}` {} ago{}",
            estimate.line(),
            record.rehearsal_id,
            omsup_journal::time::human_duration(age),
            if same_plan {
                " of this plan".to_owned()
            } else {
                format!(
                    " of another plan (fingerprint {}): the deployment changed since",
                    &record.plan_fingerprint[..record.plan_fingerprint.len().min(12)]
                )
            }
        ),
    })
}

/// [`estimate_note`]'s answer.
pub(crate) struct EstimateNote {
    /// The rehearsal was of this very plan fingerprint.
    pub same_plan: bool,
    pub total_ms: u64,
    /// The estimate, what it is made of, and the rehearsal it comes from with its age.
    pub text: String,
}

#[cfg(test)]
mod tests {
    use omsup_exec::rehearsal::{CopyMeasure, Measures};

    use super::Estimate;

    #[test]
    fn the_estimate_adds_the_slowest_backup_the_start_and_init() {
        let copy = |took_ms| CopyMeasure {
            source: "rm".into(),
            scratch: "x".into(),
            tables: 1,
            rows: 1,
            bytes: 1,
            took_ms,
        };
        let measures = Measures {
            copies: vec![copy(1_200), copy(3_400), copy(800)],
            image_load_ms: Some(9_000),
            start_ms: 500,
            ready_ms: 1_500,
            init_ms: 120_000,
            oms_version_remedy: false,
            schema_version: "4.2.9-CE".into(),
        };
        let estimate = Estimate::of(&measures);
        assert_eq!(estimate.total_ms(), 3_400 + 2_000 + 120_000);
        assert!(
            estimate
                .line()
                .starts_with("Estimated downtime window: ~125.4 s (backups 3.4 s"),
            "{}",
            estimate.line()
        );
    }
}
