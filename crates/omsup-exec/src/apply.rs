//! Step executors: one per [`StepKind`], each idempotent. It observes first and skips what is
//! already done, then acts, then verifies, and returns its typed [`StepOutput`] (T1, the
//! previous `ha.config`, the kept container, backup manifests, init results) for the journal,
//! for later steps and for rollback.
//!
//! [`ApplyContext`] holds the connections of one run and is the forward [`Executor`]; the
//! caller (the CLI's runner) orders the steps with [`crate::scheduler::run_dag`] and journals
//! each one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use omsup_engine::StepId;
use omsup_engine::container::ContainerSpec;
use omsup_engine::diff::NodeChange;
use omsup_engine::observed::Bind;
use omsup_engine::outputs::{
    Capture, HaOffOutput, HaRestoreOutput, InitOutput, LoadImageOutput, Outputs, PreflightOutput,
    PruneHeartbeatsOutput, StartNewOutput, StepOutput, StopOldOutput, VerifyOnlineOutput,
    WaitReadyOutput,
};
use omsup_engine::steps::{InitScope, Step, StepKind, UpgradePlan};
use omsup_model::PlanFile;
use omsup_model::plan::PackageLocation;
use sqlx::MySqlPool;

use crate::backup::{self, ClientConnection};
use crate::docker_actions;
use crate::executor::{Executor, Failure, StepError};
use crate::meta_actions;
use crate::node_package;
use crate::secrets::Secrets;
use crate::time::{unix_now, unix_seconds};

/// Bytes a long step has moved so far: `(step id, bytes, total if known)`.
pub type OnBytes = Arc<dyn Fn(&StepId, u64, Option<u64>) + Send + Sync>;

/// The connections and settings of one run.
pub struct ApplyContext {
    pub plan_file: PlanFile,
    pub plan: UpgradePlan,
    pub run_id: String,
    pub secrets: Secrets,
    pub pool: MySqlPool,
    /// Docker per node IP.
    pub dockers: BTreeMap<String, Docker>,
    /// `<backup dir>/<deployment>-<run id>`.
    pub backup_dir: PathBuf,
    /// Outputs of finished steps (loaded from the journal on resume).
    pub outputs: Mutex<Outputs<StepOutput>>,
    /// Progress of image loads and backups (a no-op unless the caller sets one).
    pub on_bytes: OnBytes,
}

impl ApplyContext {
    /// Connects to every node's daemon and the meta database.
    pub async fn connect(
        plan_file: PlanFile,
        plan: UpgradePlan,
        run_id: String,
        secrets: Secrets,
    ) -> Result<Self, String> {
        let dockers = crate::docker_actions::connect_dockers(&plan_file).await?;
        let pool = connect_meta_db(&plan_file, &secrets).await?;
        let backup_dir = plan_file
            .backup
            .dir
            .join(format!("{}-{run_id}", plan_file.deployment.name));
        Ok(Self {
            plan_file,
            plan,
            run_id,
            secrets,
            pool,
            dockers,
            backup_dir,
            outputs: Mutex::new(Outputs::default()),
            on_bytes: Arc::new(|_, _, _| {}),
        })
    }

    fn docker(&self, step: &Step, ip: &str) -> Result<&Docker, StepError> {
        self.dockers.get(ip).ok_or_else(|| {
            StepError::other(&step.id, format!("no Docker connection for node {ip}"))
        })
    }

    fn node(&self, step: &Step, ip: &str) -> Result<&NodeChange, StepError> {
        self.plan
            .diff
            .nodes
            .iter()
            .find(|n| n.ip == ip)
            .ok_or_else(|| StepError::other(&step.id, format!("node {ip} is not in the plan")))
    }

    /// The node as the plan file declares it (its endpoint and SSH files).
    fn plan_node(&self, step: &Step, ip: &str) -> Result<&omsup_model::plan::Node, StepError> {
        self.plan_file
            .nodes()
            .map(|(_, node)| node)
            .find(|n| n.ip == ip)
            .ok_or_else(|| StepError::other(&step.id, format!("node {ip} is not in the plan file")))
    }

    /// The size of the package `ip` loads, for progress: the operator's file, or the one the
    /// plan observed on the node.
    fn package_size(&self, ip: &str) -> Option<u64> {
        match self.plan_file.image.package_on {
            PackageLocation::Operator => std::fs::metadata(&self.plan_file.image.package)
                .ok()
                .map(|m| m.len()),
            PackageLocation::Nodes => self
                .plan
                .facts
                .get(&format!("node[{ip}].package.size"))
                .and_then(|size| size.parse().ok()),
        }
    }

    /// T1 of this run (see [`Outputs::t1`]).
    pub fn t1(&self) -> Option<u64> {
        self.outputs.lock().expect("outputs lock").t1()
    }
}

impl Executor for ApplyContext {
    type Kind = StepKind;

    async fn capture(&self, step: &Step) -> Result<Option<Capture>, StepError> {
        capture(self, step).await
    }

    async fn execute(
        &self,
        step: &Step,
        captured: Option<&Capture>,
    ) -> Result<StepOutput, StepError> {
        execute_step(self, step, captured).await
    }

    fn record(&self, id: StepId, output: StepOutput) {
        self.outputs
            .lock()
            .expect("outputs lock")
            .insert(id, output);
    }
}

/// Connects to the meta database with the run's password.
pub async fn connect_meta_db(plan: &PlanFile, secrets: &Secrets) -> Result<MySqlPool, String> {
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .host(&plan.meta_db.host)
        .port(plan.meta_db.port)
        .username(&plan.meta_db.user)
        .password(secrets.meta_password.expose());
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(6)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| {
            format!(
                "cannot connect to the meta database: {}",
                scrub(&e.to_string(), secrets.meta_password.expose())
            )
        })
}

/// `text` without the password (drivers do not print it, but nothing relies on that).
fn scrub(text: &str, password: &str) -> String {
    if password.is_empty() {
        text.to_owned()
    } else {
        text.replace(password, "***")
    }
}

/// Reads, without changing anything, the facts a step must remember from *before* it acts:
/// the caller journals them in the step's intent, and passes the first attempt's capture to
/// every later attempt of the step (a resume), so a retried step still knows the world as it
/// was before its first attempt.
///
/// - `ha.off`: the whole `ha.config` value (what `ha.restore` and rollback write back);
/// - `ha.restore`: the same, the base when there was no `ha.off`;
/// - `stop-old`: the time just before the stop (T1, if the stop is only found done later).
pub async fn capture(ctx: &ApplyContext, step: &Step) -> Result<Option<Capture>, StepError> {
    match &step.kind {
        // `ha.restore` too: without an `ha.off` step (HA was already off) the base it writes
        // over is the value as it is before restoring, every key kept.
        StepKind::HaOff | StepKind::HaRestore => {
            let ha_config = meta_actions::read_ha_config(&ctx.pool, &ctx.plan_file.meta_db.rm)
                .await
                .map_err(StepError::meta(&step.id))?;
            Ok(Some(Capture::HaConfig { ha_config }))
        }
        StepKind::StopOld { .. } => Ok(Some(Capture::BeforeStop { at: unix_now() })),
        _ => Ok(None),
    }
}

/// Runs one step and returns its output; records it in the context. `captured` is what
/// [`capture`] returned before the step's first attempt.
pub async fn execute_step(
    ctx: &ApplyContext,
    step: &Step,
    captured: Option<&Capture>,
) -> Result<StepOutput, StepError> {
    let output = run(ctx, step, captured).await?;
    ctx.record(step.id.clone(), output.clone());
    Ok(output)
}

async fn run(
    ctx: &ApplyContext,
    step: &Step,
    captured: Option<&Capture>,
) -> Result<StepOutput, StepError> {
    let timeouts = &ctx.plan_file.timeouts;
    let docker_err = StepError::docker(&step.id);
    let meta_err = StepError::meta(&step.id);
    match &step.kind {
        StepKind::Preflight => {
            let blocking: Vec<String> = ctx
                .plan
                .blocking_findings()
                .map(|f| format!("{}: {}", f.subject, f.message))
                .collect();
            if !blocking.is_empty() {
                return Err(StepError::other(&step.id, blocking.join("; ")));
            }
            Ok(StepOutput::Preflight(PreflightOutput {
                checked_at: unix_now(),
            }))
        }
        StepKind::LoadImage { node } => {
            let docker = ctx.docker(step, node)?;
            let started = Instant::now();
            let total = ctx.package_size(node);
            let on_bytes = ctx.on_bytes.clone();
            let id = step.id.clone();
            let on_progress = move |bytes| on_bytes(&id, bytes, total);
            let image_id = match ctx.plan_file.image.package_on {
                PackageLocation::Operator => {
                    docker_actions::load_image(
                        docker,
                        &ctx.plan_file.image.package,
                        &ctx.plan_file.image.tag,
                        on_progress,
                    )
                    .await
                }
                PackageLocation::Nodes => {
                    let plan_node = ctx.plan_node(step, node)?;
                    node_package::load(&ctx.plan_file, plan_node, docker, on_progress).await
                }
            }
            .map_err(&docker_err)?;
            Ok(StepOutput::LoadImage(LoadImageOutput {
                image_id,
                took_ms: started.elapsed().as_millis() as u64,
            }))
        }
        StepKind::HaOff => {
            let outcome = meta_actions::ha_off(&ctx.pool, &ctx.plan_file.meta_db.rm)
                .await
                .map_err(&meta_err)?;
            // On a retry the value read now may already be "off": the capture from before the
            // first attempt wins.
            let previous = captured
                .and_then(Capture::ha_config)
                .cloned()
                .unwrap_or(outcome.previous);
            Ok(StepOutput::HaOff(HaOffOutput {
                previous,
                changed: outcome.changed,
                at: unix_now(),
            }))
        }
        StepKind::StopOld { node } => {
            let change = ctx.node(step, node)?;
            let docker = ctx.docker(step, node)?;
            let kept = change.kept_as.clone().unwrap_or_default();
            // After a rename (a resumed run), the old container lives under its kept name.
            let name = if docker.inspect_container(&kept, None).await.is_ok() {
                kept.as_str()
            } else {
                change.container.as_str()
            };
            let outcome = docker_actions::stop_container(docker, name, timeouts.stop.as_duration())
                .await
                .map_err(&docker_err)?;
            let mut stopped_at = unix_seconds(outcome.stopped_at);
            // Found already stopped on a retry: it stopped after the first attempt's capture,
            // and the earlier T1 is the safe one (it lengthens the HA window, never shortens).
            if !outcome.was_running
                && let Some(before) = captured.and_then(Capture::before_stop)
            {
                stopped_at = stopped_at.min(before);
            }
            Ok(StepOutput::StopOld(StopOldOutput {
                container_id: outcome.container_id,
                was_running: outcome.was_running,
                stopped_at,
            }))
        }
        StepKind::PruneHeartbeats { database, .. } => {
            let outcome = meta_actions::prune_heartbeats(&ctx.pool, database)
                .await
                .map_err(&meta_err)?;
            Ok(StepOutput::PruneHeartbeats(PruneHeartbeatsOutput {
                kept_id: outcome.kept_id,
                deleted_rows: outcome.deleted_rows,
            }))
        }
        StepKind::Backup { database } => {
            let client = backup::find_dump_client(ctx.plan_file.backup.dump_command.as_deref())
                .map_err(StepError::backup(&step.id))?;
            let connection = ClientConnection {
                host: &ctx.plan_file.meta_db.host,
                port: ctx.plan_file.meta_db.port,
                user: &ctx.plan_file.meta_db.user,
                password: ctx.secrets.meta_password.expose(),
            };
            let manifest = backup::backup_database(
                &client,
                &connection,
                &ctx.pool,
                database,
                &ctx.backup_dir,
                &|bytes| (ctx.on_bytes)(&step.id, bytes, None),
            )
            .await
            .map_err(StepError::backup(&step.id))?;
            Ok(StepOutput::Backup(manifest))
        }
        StepKind::StartNew { node, container } => start_new(ctx, step, node, container).await,
        StepKind::WaitReady { node } => {
            let change = ctx.node(step, node)?;
            let waited = docker_actions::wait_ready(
                ctx.docker(step, node)?,
                &change.container,
                timeouts.readiness.as_duration(),
            )
            .await
            .map_err(&docker_err)?;
            Ok(StepOutput::WaitReady(WaitReadyOutput {
                ready_after_ms: waited.as_millis() as u64,
            }))
        }
        StepKind::Init { scope, run_on } => init(ctx, step, scope, run_on).await,
        StepKind::VerifyOnline => {
            let ips: Vec<String> = ctx.plan_file.nodes().map(|(_, n)| n.ip.clone()).collect();
            let health_port = |ip: &str| {
                ctx.plan
                    .diff
                    .nodes
                    .iter()
                    .find(|n| n.ip == ip)
                    .map_or(crate::health::HEALTH_PORT, |n| n.health_port)
            };
            let after = crate::health::verify_online(
                &ctx.pool,
                &ctx.dockers,
                &ctx.plan_file,
                &step.id,
                health_port,
            )
            .await?;
            Ok(StepOutput::VerifyOnline(VerifyOnlineOutput {
                online: ips,
                after_ms: after.as_millis() as u64,
            }))
        }
        StepKind::HaRestore => {
            let previous = ctx
                .outputs
                .lock()
                .expect("outputs lock")
                .ha_off()
                .map(|off| off.previous.clone())
                .or_else(|| captured.and_then(Capture::ha_config).cloned())
                .ok_or_else(|| {
                    StepError::other(
                        &step.id,
                        "the value `ha.config` had before the upgrade is unknown",
                    )
                })?;
            let t1 = ctx.t1();
            let window = t1.map_or(Duration::ZERO, |t1| {
                Duration::from_secs(unix_now().saturating_sub(t1))
            });
            let value = meta_actions::ha_restore(
                &ctx.pool,
                &ctx.plan_file.meta_db.rm,
                &previous,
                &ctx.plan_file.ha,
                window,
            )
            .await
            .map_err(&meta_err)?;
            Ok(StepOutput::HaRestore(HaRestoreOutput {
                value,
                t2: unix_now(),
                ha_off_window_s: window.as_secs(),
            }))
        }
    }
}

async fn start_new(
    ctx: &ApplyContext,
    step: &Step,
    node: &str,
    spec: &ContainerSpec,
) -> Result<StepOutput, StepError> {
    let change = ctx.node(step, node)?;
    let docker = ctx.docker(step, node)?;
    let docker_err = StepError::docker(&step.id);
    let kept = change
        .kept_as
        .clone()
        .ok_or_else(|| StepError::other(&step.id, "no name to keep the old container under"))?;
    let current = docker.inspect_container(&spec.name, None).await.ok();
    // Created by this run (a resumed step): leave it. Anything else under the name (the old
    // container, even one an earlier omsup run created) is renamed out of the way.
    let ours = current
        .as_ref()
        .and_then(docker_actions::run_label)
        .is_some_and(|run| run == ctx.run_id);
    if current.is_some() && !ours {
        docker_actions::rename_container(docker, &spec.name, &kept)
            .await
            .map_err(&docker_err)?;
    }
    let old = docker
        .inspect_container(&kept, None)
        .await
        .map_err(docker_actions::docker_error(
            "cannot inspect the kept container",
            &kept,
        ))
        .map_err(&docker_err)?;
    if crate::docker_spec::settings(&old).restart_policy.is_some() {
        docker_actions::set_restart_policy(docker, &kept, None)
            .await
            .map_err(&docker_err)?;
    }
    let old_env = crate::docker_spec::container_env(&old);
    let (id, created) = docker_actions::create_container(docker, spec, &ctx.run_id, &old_env)
        .await
        .map_err(&docker_err)?;
    docker_actions::start_container(docker, &spec.name)
        .await
        .map_err(&docker_err)?;
    Ok(StepOutput::StartNew(StartNewOutput {
        old_container_id: old.id,
        kept_as: kept,
        new_container_id: id,
        created,
        binds: spec.binds.iter().map(Bind::to_docker).collect(),
        health_port: change.health_port,
    }))
}

async fn init(
    ctx: &ApplyContext,
    step: &Step,
    scope: &InitScope,
    run_on: &str,
) -> Result<StepOutput, StepError> {
    let change = ctx.node(step, run_on)?;
    let docker = ctx.docker(step, run_on)?;
    let (outcome, remedy) = run_init_judged(
        docker,
        (&change.container, run_on),
        (&ctx.pool, &ctx.plan_file.meta_db.rm),
        ctx.plan.diff.from,
        &ctx.plan_file.timeouts,
        &step.id,
    )
    .await?;
    let scope = match scope {
        InitScope::Region(region) => format!("region {region}"),
        InitScope::Node(ip) => format!("node {ip}"),
    };
    Ok(StepOutput::Init(InitOutput {
        scope,
        run_on: run_on.to_owned(),
        exit_code: outcome.exit_code,
        took_ms: outcome.took.as_millis() as u64,
        oms_version_remedy: remedy,
    }))
}

/// `docker_init.sh` in `container` (on node `node`) as the upgrade runs it: once every
/// supervisor component is RUNNING, with the `oms_version` remedy when init asks for it
/// (recorded in `rm` through `pool`, from the old version `from`, then init again), judged by
/// exit 0 *and* the `[Completed]` last line; a failure carries the init log's tail. Returns the
/// outcome and whether the remedy was applied. Shared by apply's init steps and `omsup
/// rehearse` (whose `rm` is its copy).
pub async fn run_init_judged(
    docker: &Docker,
    (container, node): (&str, &str),
    (pool, rm): (&MySqlPool, &str),
    from: Option<omsup_model::OmsVersion>,
    timeouts: &omsup_model::plan::Timeouts,
    step: &StepId,
) -> Result<(docker_actions::InitOutcome, bool), StepError> {
    let timeout = timeouts.init.as_duration();
    let docker_err = StepError::docker(step);
    // The upgrade guides wait for every supervisor component to be RUNNING before init.
    docker_actions::wait_components_running(docker, container, timeouts.readiness.as_duration())
        .await
        .map_err(&docker_err)?;
    let mut outcome = docker_actions::run_init(docker, container, timeout)
        .await
        .map_err(&docker_err)?;
    let mut remedy = false;
    if outcome.needs_version_remedy() {
        let from = from.filter(|v| *v >= omsup_model::OmsVersion::MINIMUM_UPGRADABLE).ok_or_else(|| {
            StepError::other(step, "init refused the upgrade (`Version before 4.1.1 is not allowed to upgrade`) and the old version is unknown or below 4.1.1")
        })?;
        meta_actions::record_oms_version(pool, rm, from)
            .await
            .map_err(StepError::meta(step))?;
        remedy = true;
        outcome = docker_actions::run_init(docker, container, timeout)
            .await
            .map_err(&docker_err)?;
    }
    if !outcome.succeeded() {
        let tail: Vec<&str> = outcome.output.trim_end().lines().rev().take(15).collect();
        let tail = tail.into_iter().rev().collect::<Vec<&str>>().join("\n");
        let (container, node) = (container.to_owned(), node.to_owned());
        let failure = if outcome.exit_code == 0 {
            Failure::InitIncomplete {
                container,
                node,
                tail,
            }
        } else {
            Failure::InitFailed {
                container,
                node,
                exit_code: outcome.exit_code,
                tail,
            }
        };
        return Err(StepError::failed(step, failure));
    }
    Ok((outcome, remedy))
}
