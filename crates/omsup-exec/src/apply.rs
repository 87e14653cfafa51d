//! Step executors: one per [`StepKind`], each idempotent. It observes first and skips what is
//! already done, then acts, then verifies, and returns its outputs as JSON (T1, the previous
//! `ha.config`, the kept container, backup manifests, init results) for the journal, for later
//! steps and for rollback.
//!
//! [`ApplyContext`] holds the connections of one run; [`execute_step`] runs one step. The
//! caller (the CLI) orders the steps with [`crate::scheduler::run_dag`] and journals each one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use omsup_engine::diff::NodeChange;
use omsup_engine::steps::{InitScope, Step, StepKind, UpgradePlan};
use omsup_model::PlanFile;
use serde_json::{Value, json};
use sqlx::MySqlPool;

use crate::backup::{self, ClientConnection};
use crate::docker_actions::{self, NewContainerSpec};
use crate::meta_actions;
use crate::secrets::Secrets;

/// Why a step failed. Carries no secret.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("step `{step}` failed")]
    Docker {
        step: String,
        #[source]
        source: Box<docker_actions::DockerActionError>,
    },
    #[error("step `{step}` failed")]
    Meta {
        step: String,
        #[source]
        source: meta_actions::MetaActionError,
    },
    #[error("step `{step}` failed")]
    Backup {
        step: String,
        #[source]
        source: Box<backup::BackupError>,
    },
    #[error("step `{step}` failed: {message}")]
    Other { step: String, message: String },
}

impl StepError {
    fn other(step: &Step, message: impl Into<String>) -> Self {
        Self::Other {
            step: step.id.clone(),
            message: message.into(),
        }
    }
}

/// Bytes a long step has moved so far: `(step id, bytes, total if known)`.
pub type OnBytes = Arc<dyn Fn(&str, u64, Option<u64>) + Send + Sync>;

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
    /// Outputs of finished steps, by step id (loaded from the journal on resume).
    pub outputs: Mutex<BTreeMap<String, Value>>,
    /// Progress of image loads and backups (a no-op unless the caller sets one).
    pub on_bytes: OnBytes,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
            outputs: Mutex::new(BTreeMap::new()),
            on_bytes: Arc::new(|_, _, _| {}),
        })
    }

    fn docker(&self, step: &Step, ip: &str) -> Result<&Docker, StepError> {
        self.dockers
            .get(ip)
            .ok_or_else(|| StepError::other(step, format!("no Docker connection for node {ip}")))
    }

    fn node(&self, step: &Step, ip: &str) -> Result<&NodeChange, StepError> {
        self.plan
            .diff
            .nodes
            .iter()
            .find(|n| n.ip == ip)
            .ok_or_else(|| StepError::other(step, format!("node {ip} is not in the plan")))
    }

    fn output(&self, id: &str) -> Option<Value> {
        self.outputs.lock().expect("outputs lock").get(id).cloned()
    }

    /// T1 of this run (see [`t1_of`]).
    pub fn t1(&self) -> Option<u64> {
        t1_of(&self.outputs.lock().expect("outputs lock"))
    }
}

/// T1, from a forward run's step outputs: when HA went off for good, the first old container
/// stopped (the earliest `stopped_at`), or `ha.off` itself when nothing was stopped.
pub fn t1_of(outputs: &BTreeMap<String, Value>) -> Option<u64> {
    let first_stop = outputs
        .iter()
        .filter(|(id, _)| id.ends_with(".stop-old"))
        .filter_map(|(_, v)| v["stopped_at"].as_u64())
        .min();
    first_stop.or_else(|| outputs.get("ha.off")?["at"].as_u64())
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
pub async fn capture(ctx: &ApplyContext, step: &Step) -> Result<Value, StepError> {
    match &step.kind {
        // `ha.restore` too: without an `ha.off` step (HA was already off) the base it writes
        // over is the value as it is before restoring, every key kept.
        StepKind::HaOff | StepKind::HaRestore => {
            let value = meta_actions::read_ha_config(&ctx.pool, &ctx.plan_file.meta_db.rm)
                .await
                .map_err(|source| StepError::Meta {
                    step: step.id.clone(),
                    source,
                })?;
            Ok(json!({ "ha_config": value }))
        }
        StepKind::StopOld { .. } => Ok(json!({ "before_stop": unix_now() })),
        _ => Ok(Value::Null),
    }
}

/// Runs one step and returns its outputs; records them in the context. `captured` is what
/// [`capture`] returned before the step's first attempt (`Value::Null` when nothing was).
pub async fn execute_step(
    ctx: &ApplyContext,
    step: &Step,
    captured: &Value,
) -> Result<Value, StepError> {
    let output = run(ctx, step, captured).await?;
    ctx.outputs
        .lock()
        .expect("outputs lock")
        .insert(step.id.clone(), output.clone());
    Ok(output)
}

async fn run(ctx: &ApplyContext, step: &Step, captured: &Value) -> Result<Value, StepError> {
    let timeouts = &ctx.plan_file.timeouts;
    let docker_err = |source| StepError::Docker {
        step: step.id.clone(),
        source: Box::new(source),
    };
    let meta_err = |source| StepError::Meta {
        step: step.id.clone(),
        source,
    };
    match &step.kind {
        StepKind::Preflight => {
            let blocking: Vec<String> = ctx
                .plan
                .diff
                .findings
                .iter()
                .filter(|f| f.severity == omsup_model::Severity::Error)
                .map(|f| format!("{}: {}", f.subject, f.message))
                .collect();
            if !blocking.is_empty() {
                return Err(StepError::other(step, blocking.join("; ")));
            }
            Ok(json!({ "checked_at": unix_now() }))
        }
        StepKind::LoadImage { node } => {
            let docker = ctx.docker(step, node)?;
            let started = Instant::now();
            let total = std::fs::metadata(&ctx.plan_file.image.package)
                .ok()
                .map(|m| m.len());
            let on_bytes = ctx.on_bytes.clone();
            let id = step.id.clone();
            let image_id = docker_actions::load_image(
                docker,
                &ctx.plan_file.image.package,
                &ctx.plan_file.image.tag,
                move |bytes| on_bytes(&id, bytes, total),
            )
            .await
            .map_err(docker_err)?;
            Ok(json!({ "image_id": image_id, "took_ms": started.elapsed().as_millis() as u64 }))
        }
        StepKind::HaOff => {
            let outcome = meta_actions::ha_off(&ctx.pool, &ctx.plan_file.meta_db.rm)
                .await
                .map_err(meta_err)?;
            // On a retry the value read now may already be "off": the capture from before the
            // first attempt wins.
            let previous = captured
                .get("ha_config")
                .cloned()
                .unwrap_or(outcome.previous);
            Ok(json!({ "previous": previous, "changed": outcome.changed, "at": unix_now() }))
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
                .map_err(docker_err)?;
            let mut stopped_at = outcome
                .stopped_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // Found already stopped on a retry: it stopped after the first attempt's capture,
            // and the earlier T1 is the safe one (it lengthens the HA window, never shortens).
            if !outcome.was_running
                && let Some(before) = captured.get("before_stop").and_then(Value::as_u64)
            {
                stopped_at = stopped_at.min(before);
            }
            Ok(
                json!({ "container_id": outcome.container_id, "was_running": outcome.was_running, "stopped_at": stopped_at }),
            )
        }
        StepKind::PruneHeartbeats { database, .. } => {
            let outcome = meta_actions::prune_heartbeats(&ctx.pool, database)
                .await
                .map_err(meta_err)?;
            Ok(json!({ "kept_id": outcome.kept_id, "deleted_rows": outcome.deleted_rows }))
        }
        StepKind::Backup { database } => {
            let client = backup::find_dump_client(ctx.plan_file.backup.dump_command.as_deref())
                .map_err(|source| StepError::Backup {
                    step: step.id.clone(),
                    source: Box::new(source),
                })?;
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
            .map_err(|source| StepError::Backup {
                step: step.id.clone(),
                source: Box::new(source),
            })?;
            Ok(serde_json::to_value(manifest).expect("a manifest serializes"))
        }
        StepKind::StartNew { node } => start_new(ctx, step, node).await,
        StepKind::WaitReady { node } => {
            let change = ctx.node(step, node)?;
            let waited = docker_actions::wait_ready(
                ctx.docker(step, node)?,
                &change.container,
                timeouts.readiness.as_duration(),
            )
            .await
            .map_err(docker_err)?;
            Ok(json!({ "ready_after_ms": waited.as_millis() as u64 }))
        }
        StepKind::Init { scope, run_on } => init(ctx, step, scope, run_on).await,
        StepKind::VerifyOnline => verify_online(ctx, step).await,
        StepKind::HaRestore => {
            let previous = ctx
                .plan
                .steps
                .iter()
                .find(|s| s.kind == StepKind::HaOff)
                .and_then(|s| ctx.output(&s.id))
                .and_then(|v| v.get("previous").cloned())
                .or_else(|| captured.get("ha_config").cloned())
                .ok_or_else(|| {
                    StepError::other(
                        step,
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
            .map_err(meta_err)?;
            Ok(json!({ "value": value, "t2": unix_now(), "ha_off_window_s": window.as_secs() }))
        }
    }
}

async fn start_new(ctx: &ApplyContext, step: &Step, node: &str) -> Result<Value, StepError> {
    let change = ctx.node(step, node)?;
    let docker = ctx.docker(step, node)?;
    let docker_err = |source| StepError::Docker {
        step: step.id.clone(),
        source: Box::new(source),
    };
    let kept = change
        .kept_as
        .clone()
        .ok_or_else(|| StepError::other(step, "no name to keep the old container under"))?;
    let current = docker.inspect_container(&change.container, None).await.ok();
    // Created by this run (a resumed step): leave it. Anything else under the name (the old
    // container, even one an earlier omsup run created) is renamed out of the way.
    let ours = current
        .as_ref()
        .and_then(docker_actions::run_label)
        .is_some_and(|run| run == ctx.run_id);
    if current.is_some() && !ours {
        docker_actions::rename_container(docker, &change.container, &kept)
            .await
            .map_err(docker_err)?;
    }
    let old = docker.inspect_container(&kept, None).await.map_err(|e| {
        StepError::other(
            step,
            format!("cannot find the kept container `{kept}`: {e}"),
        )
    })?;
    let binds: Vec<String> = old
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("bind"))
        .map(|m| {
            let suffix = if m.rw.unwrap_or(true) { "" } else { ":ro" };
            format!(
                "{}:{}{suffix}",
                m.source.unwrap_or_default(),
                m.destination.unwrap_or_default()
            )
        })
        .collect();
    let node_plan = ctx
        .plan_file
        .nodes()
        .find(|(_, n)| n.ip == node)
        .map(|(_, n)| n);
    let options = ctx
        .plan_file
        .container
        .resolve(node_plan.and_then(|n| n.container_overrides.as_ref()));
    let spec = NewContainerSpec {
        name: change.container.clone(),
        image: ctx.plan_file.image.tag.clone(),
        binds: binds.clone(),
        host_ip: node.to_owned(),
        options,
        run_id: ctx.run_id.clone(),
        step_id: step.id.clone(),
    };
    let (id, created) = docker_actions::create_container(docker, &spec)
        .await
        .map_err(docker_err)?;
    docker_actions::start_container(docker, &change.container)
        .await
        .map_err(docker_err)?;
    Ok(json!({
        "old_container_id": old.id,
        "kept_as": kept,
        "new_container_id": id,
        "created": created,
        "binds": binds,
        "health_port": change.health_port,
    }))
}

async fn init(
    ctx: &ApplyContext,
    step: &Step,
    scope: &InitScope,
    run_on: &str,
) -> Result<Value, StepError> {
    let change = ctx.node(step, run_on)?;
    let docker = ctx.docker(step, run_on)?;
    let timeout = ctx.plan_file.timeouts.init.as_duration();
    let docker_err = |source| StepError::Docker {
        step: step.id.clone(),
        source: Box::new(source),
    };
    let mut outcome = docker_actions::run_init(docker, &change.container, timeout)
        .await
        .map_err(docker_err)?;
    let mut remedy = false;
    if outcome.needs_version_remedy() {
        let from = ctx.plan.diff.from.filter(|v| *v >= omsup_model::OmsVersion::MINIMUM_UPGRADABLE).ok_or_else(|| {
            StepError::other(step, "init refused the upgrade (`Version before 4.1.1 is not allowed to upgrade`) and the old version is unknown or below 4.1.1")
        })?;
        meta_actions::record_oms_version(&ctx.pool, &ctx.plan_file.meta_db.rm, from)
            .await
            .map_err(|source| StepError::Meta {
                step: step.id.clone(),
                source,
            })?;
        remedy = true;
        outcome = docker_actions::run_init(docker, &change.container, timeout)
            .await
            .map_err(docker_err)?;
    }
    if !outcome.succeeded() {
        let tail: Vec<&str> = outcome.output.trim_end().lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(StepError::other(
            step,
            format!(
                "`docker_init.sh` in `{}` on node {run_on} exited with {}; its last lines:\n{}\nhint: read /home/admin/logs/docker_init.log on the node, fix the cause, then `omsup resume` (or `omsup rollback`)",
                change.container,
                outcome.exit_code,
                tail.join("\n")
            ),
        ));
    }
    let scope = match scope {
        InitScope::Region(region) => format!("region {region}"),
        InitScope::Node(ip) => format!("node {ip}"),
    };
    Ok(
        json!({ "scope": scope, "run_on": run_on, "exit_code": outcome.exit_code, "took_ms": outcome.took.as_millis() as u64, "oms_version_remedy": remedy }),
    )
}

async fn verify_online(ctx: &ApplyContext, step: &Step) -> Result<Value, StepError> {
    let timeout = ctx.plan_file.timeouts.online.as_duration();
    let started = Instant::now();
    let ips: Vec<String> = ctx.plan_file.nodes().map(|(_, n)| n.ip.clone()).collect();
    let cm = &ctx.plan_file.meta_db.cm;
    loop {
        let statuses: BTreeMap<String, String> =
            sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(ip AS CHAR), CAST(host_status AS CHAR) FROM `{cm}`.host"
            )))
            .fetch_all(&ctx.pool)
            .await
            .map(|rows| rows.into_iter().collect())
            .unwrap_or_default();
        let mut waiting = Vec::new();
        for ip in &ips {
            let online = statuses.get(ip).is_some_and(|s| s == "ONLINE");
            let port = ctx
                .plan
                .diff
                .nodes
                .iter()
                .find(|n| &n.ip == ip)
                .map_or(crate::health::HEALTH_PORT, |n| n.health_port);
            let healthy = crate::health::healthy(ip, port).await == Some(true);
            if !(online && healthy) {
                waiting.push(format!(
                    "{ip} ({}, {})",
                    statuses.get(ip).map_or("not registered", String::as_str),
                    if healthy { "healthy" } else { "not healthy" }
                ));
            }
        }
        if waiting.is_empty() {
            return Ok(json!({ "online": ips, "after_ms": started.elapsed().as_millis() as u64 }));
        }
        if started.elapsed() >= timeout {
            return Err(StepError::other(
                step,
                format!(
                    "not ONLINE and healthy within {timeout:?}: {}",
                    waiting.join(", ")
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
