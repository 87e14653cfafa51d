//! Rollback executors: one per [`UndoKind`] of the engine's rollback plan, each idempotent.
//! Each observes first (is the new container already gone? the old one already back under its
//! name and running? HA already off?), then acts, then verifies, and returns its outputs as
//! JSON for the rollback's journal (T3, restored row counts, the `ha.config` written).
//!
//! A database restore is never skipped because the row counts already match the manifest
//! (counts say nothing about the values): dropping and restoring again is always safe once
//! `undo.backups.verify` has checked the file.
//!
//! [`UndoContext`] holds the connections of one rollback run and the forward run's outputs;
//! [`execute_undo`] runs one step. The caller orders the steps with
//! [`crate::scheduler::run_dag`] and journals each one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use omsup_engine::rollback::{HaBefore, UndoKind, UndoStep};
use omsup_model::PlanFile;
use omsup_model::plan::{HaAfter, HaPolicy, Node};
use serde_json::{Value, json};
use sqlx::MySqlPool;

use crate::apply::{StepError, connect_meta_db};
use crate::backup::{self, BackupManifest, ClientConnection};
use crate::docker_actions;
use crate::meta_actions;
use crate::secrets::Secrets;

/// The connections and settings of one rollback run.
pub struct UndoContext {
    pub plan_file: PlanFile,
    /// The rollback run's own id.
    pub run_id: String,
    /// The run being undone: its new containers carry this id in their `omsup.run-id` label.
    pub forward_run_id: String,
    pub secrets: Secrets,
    pub pool: MySqlPool,
    /// Docker per node IP.
    pub dockers: BTreeMap<String, Docker>,
    /// Outputs of the forward run's steps, by step id (`db[rm].backup` holds its manifest).
    pub forward_outputs: BTreeMap<String, Value>,
    /// Outputs of this rollback's finished undo steps (loaded from its journal on resume).
    pub outputs: Mutex<BTreeMap<String, Value>>,
    /// Keep the new containers, stopped and renamed, instead of removing them.
    pub keep_new: bool,
}

impl UndoContext {
    /// Connects to every node's daemon and the meta database.
    pub async fn connect(
        plan_file: PlanFile,
        run_id: String,
        forward_run_id: String,
        secrets: Secrets,
        forward_outputs: BTreeMap<String, Value>,
        keep_new: bool,
    ) -> Result<Self, String> {
        let dockers = crate::docker_actions::connect_dockers(&plan_file).await?;
        let pool = connect_meta_db(&plan_file, &secrets).await?;
        Ok(Self {
            plan_file,
            run_id,
            forward_run_id,
            secrets,
            pool,
            dockers,
            forward_outputs,
            outputs: Mutex::new(BTreeMap::new()),
            keep_new,
        })
    }

    /// Where node `ip` answers `/oms/health`: the port the forward run observed, else 8089.
    pub fn health_port(&self, ip: &str) -> u16 {
        self.forward_outputs
            .get(&format!("node[{ip}].start-new"))
            .and_then(|v| v["health_port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(crate::health::HEALTH_PORT)
    }

    /// The name a new container is kept under with `keep_new`.
    pub fn kept_new_name(&self, container: &str) -> String {
        format!("{container}-omsup-rolled-back-{}", self.forward_run_id)
    }

    fn output(&self, id: &str) -> Option<Value> {
        self.outputs.lock().expect("outputs lock").get(id).cloned()
    }

    /// The backup manifest the forward run journaled for `database`.
    fn manifest(&self, step: &UndoStep, database: &str) -> Result<BackupManifest, StepError> {
        let id = format!("db[{database}].backup");
        let output = self.forward_outputs.get(&id).ok_or_else(|| {
            other(
                step,
                format!("the forward run journaled no backup of `{database}` (`{id}`)"),
            )
        })?;
        serde_json::from_value(output.clone()).map_err(|e| {
            other(
                step,
                format!(
                    "the journaled backup manifest of `{database}` (`{id}`) is unreadable: {e}"
                ),
            )
        })
    }

    /// T1 of the forward run: its first old container stopped (else when HA went off).
    pub fn forward_t1(&self) -> Option<u64> {
        crate::apply::t1_of(&self.forward_outputs)
    }

    /// T3: the last new container stopped by this rollback.
    pub fn t3(&self) -> Option<u64> {
        let outputs = self.outputs.lock().expect("outputs lock");
        outputs
            .iter()
            .filter(|(id, _)| id.ends_with(".remove-new"))
            .filter_map(|(_, v)| v["t3"].as_u64())
            .max()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn other(step: &UndoStep, message: impl Into<String>) -> StepError {
    StepError::Other {
        step: step.id.clone(),
        message: message.into(),
    }
}

fn docker_error(step: &UndoStep) -> impl Fn(docker_actions::DockerActionError) -> StepError {
    let id = step.id.clone();
    move |source| StepError::Docker {
        step: id.clone(),
        source: Box::new(source),
    }
}

fn meta_error(step: &UndoStep) -> impl Fn(meta_actions::MetaActionError) -> StepError {
    let id = step.id.clone();
    move |source| StepError::Meta {
        step: id.clone(),
        source,
    }
}

fn backup_error(step: &UndoStep) -> impl Fn(backup::BackupError) -> StepError {
    let id = step.id.clone();
    move |source| StepError::Backup {
        step: id.clone(),
        source: Box::new(source),
    }
}

/// Runs one undo step and returns its outputs; records them in the context.
pub async fn execute_undo(ctx: &UndoContext, step: &UndoStep) -> Result<Value, StepError> {
    let output = match &step.kind {
        UndoKind::VerifyBackups { databases } => verify_backups(ctx, step, databases).await,
        UndoKind::HaOff => {
            let outcome = meta_actions::ha_off(&ctx.pool, &ctx.plan_file.meta_db.rm)
                .await
                .map_err(meta_error(step))?;
            Ok(json!({ "found": outcome.previous, "changed": outcome.changed, "at": unix_now() }))
        }
        UndoKind::RemoveNew { node } => remove_new(ctx, step, node).await,
        UndoKind::RestoreDatabase { database } => restore(ctx, step, database).await,
        UndoKind::StartOld { node } => start_old(ctx, step, node).await,
        UndoKind::VerifyOnline { restarted } => verify_online(ctx, step, restarted).await,
        UndoKind::HaRestore { before } => ha_restore(ctx, step, before).await,
    }?;
    ctx.outputs
        .lock()
        .expect("outputs lock")
        .insert(step.id.clone(), output.clone());
    Ok(output)
}

/// Every backup file against its manifest's sha256; all are checked, and every bad one is
/// named, before the step fails.
async fn verify_backups(
    ctx: &UndoContext,
    step: &UndoStep,
    databases: &[String],
) -> Result<Value, StepError> {
    let mut verified = Vec::new();
    let mut failures = Vec::new();
    for database in databases {
        let manifest = ctx.manifest(step, database)?;
        match backup::verify_backup(&manifest).await {
            Ok(()) => verified.push(json!({
                "database": database,
                "file": manifest.file,
                "sha256": manifest.sha256,
                "size_bytes": manifest.size_bytes,
            })),
            Err(error) => failures.push(error),
        }
    }
    match failures.len() {
        0 => Ok(json!({ "verified": verified })),
        1 => Err(backup_error(step)(failures.remove(0))),
        _ => Err(other(
            step,
            failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

fn plan_node<'p>(ctx: &'p UndoContext, step: &UndoStep, ip: &str) -> Result<&'p Node, StepError> {
    ctx.plan_file
        .nodes()
        .map(|(_, n)| n)
        .find(|n| n.ip == ip)
        .ok_or_else(|| other(step, format!("node {ip} is not in the plan file")))
}

fn docker<'c>(ctx: &'c UndoContext, step: &UndoStep, ip: &str) -> Result<&'c Docker, StepError> {
    ctx.dockers
        .get(ip)
        .ok_or_else(|| other(step, format!("no Docker connection for node {ip}")))
}

/// `docker inspect`, `None` when no such container exists.
async fn inspect(
    docker: &Docker,
    step: &UndoStep,
    name_or_id: &str,
) -> Result<Option<ContainerInspectResponse>, StepError> {
    match docker.inspect_container(name_or_id, None).await {
        Ok(found) => Ok(Some(found)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(source) => Err(docker_error(step)(
            docker_actions::DockerActionError::Docker {
                what: "cannot inspect container",
                container: name_or_id.to_owned(),
                source,
            },
        )),
    }
}

fn name_of(container: &ContainerInspectResponse) -> &str {
    container
        .name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
}

fn is_running(container: &ContainerInspectResponse) -> bool {
    container
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// The forward run's new container on `node`: by the id `start-new` journaled, else by name
/// (the plan's, or the `keep_new` one) and the run-id label. `None` when there is none.
async fn find_new_container(
    ctx: &UndoContext,
    step: &UndoStep,
    docker: &Docker,
    node: &str,
    container: &str,
) -> Result<Option<ContainerInspectResponse>, StepError> {
    let journaled = ctx
        .forward_outputs
        .get(&format!("node[{node}].start-new"))
        .and_then(|v| v["new_container_id"].as_str())
        .filter(|id| !id.is_empty());
    if let Some(id) = journaled {
        return inspect(docker, step, id).await;
    }
    for name in [container.to_owned(), ctx.kept_new_name(container)] {
        if let Some(found) = inspect(docker, step, &name).await?
            && docker_actions::run_label(&found) == Some(ctx.forward_run_id.as_str())
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

async fn remove_new(ctx: &UndoContext, step: &UndoStep, node: &str) -> Result<Value, StepError> {
    let container = plan_node(ctx, step, node)?.container.clone();
    let docker = docker(ctx, step, node)?;
    let Some(new) = find_new_container(ctx, step, docker, node, &container).await? else {
        // Never created, or removed by an earlier attempt: T3 is now (the safe, longer window).
        return Ok(
            json!({ "container_id": null, "was_running": false, "t3": unix_now(), "removed": false, "kept_as": null }),
        );
    };
    let id = new.id.clone().unwrap_or_default();
    let stopped =
        docker_actions::stop_container(docker, &id, ctx.plan_file.timeouts.stop.as_duration())
            .await
            .map_err(docker_error(step))?;
    let t3 = stopped
        .stopped_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if ctx.keep_new {
        let kept = ctx.kept_new_name(&container);
        if name_of(&new) != kept {
            if let Some(holder) = inspect(docker, step, &kept).await? {
                return Err(other(
                    step,
                    format!(
                        "cannot keep the new container of node {node} as `{kept}`: container {} already has that name",
                        holder.id.unwrap_or_default()
                    ),
                ));
            }
            docker_actions::rename_container(docker, &id, &kept)
                .await
                .map_err(docker_error(step))?;
        }
        return Ok(
            json!({ "container_id": id, "was_running": stopped.was_running, "t3": t3, "removed": false, "kept_as": kept }),
        );
    }
    let removed = docker_actions::remove_container(docker, &id)
        .await
        .map_err(docker_error(step))?;
    Ok(
        json!({ "container_id": id, "was_running": stopped.was_running, "t3": t3, "removed": removed, "kept_as": null }),
    )
}

/// A restore never runs under a live OMS: it refuses while any node's OMS container is
/// running (a node already on the target, or one started by hand), and it ends the sessions
/// an earlier, killed restore may have left importing into the database.
async fn quiesce(ctx: &UndoContext, step: &UndoStep, database: &str) -> Result<(), StepError> {
    for (_, node) in ctx.plan_file.nodes() {
        let docker = docker(ctx, step, &node.ip)?;
        let running = docker
            .inspect_container(&node.container, None)
            .await
            .ok()
            .and_then(|c| c.state?.running)
            .unwrap_or(false);
        if running {
            return Err(other(
                step,
                format!(
                    "refusing to restore `{database}`: the OMS container `{}` on node {} is running and writes to the meta databases; stop it first, then `omsup resume`",
                    node.container, node.ip
                ),
            ));
        }
    }
    let leftovers: Vec<u64> = sqlx::query_scalar(
        "SELECT id FROM information_schema.processlist \
         WHERE user = ? AND db = ? AND id <> CONNECTION_ID()",
    )
    .bind(&ctx.plan_file.meta_db.user)
    .bind(database)
    .fetch_all(&ctx.pool)
    .await
    .unwrap_or_default();
    for id in leftovers {
        tracing::warn!(
            database,
            session = id,
            "ending a session left in the database"
        );
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
            .execute(&ctx.pool)
            .await;
    }
    Ok(())
}

async fn restore(ctx: &UndoContext, step: &UndoStep, database: &str) -> Result<Value, StepError> {
    quiesce(ctx, step, database).await?;
    let manifest = ctx.manifest(step, database)?;
    let client = backup::find_restore_client().map_err(backup_error(step))?;
    let meta = &ctx.plan_file.meta_db;
    let connection = ClientConnection {
        host: &meta.host,
        port: meta.port,
        user: &meta.user,
        password: ctx.secrets.meta_password.expose(),
    };
    let started = Instant::now();
    backup::restore_database(&client, &connection, &ctx.pool, &manifest)
        .await
        .map_err(backup_error(step))?;
    Ok(json!({
        "database": database,
        "file": manifest.file,
        "sha256": manifest.sha256,
        "row_counts": manifest.row_counts,
        "took_ms": started.elapsed().as_millis() as u64,
    }))
}

async fn start_old(ctx: &UndoContext, step: &UndoStep, node: &str) -> Result<Value, StepError> {
    let container = plan_node(ctx, step, node)?.container.clone();
    let docker = docker(ctx, step, node)?;
    let forward = |id: &str, key: &str| {
        ctx.forward_outputs
            .get(&format!("node[{node}].{id}"))
            .and_then(|v| v[key].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let old_id =
        forward("stop-old", "container_id").or_else(|| forward("start-new", "old_container_id"));
    let old = match &old_id {
        Some(id) => inspect(docker, step, id).await?,
        // The stop was cut off before journaling the id: the old container still has its name.
        None => inspect(docker, step, &container)
            .await?
            // Not the forward run's new container (an older omsup run's label is fine).
            .filter(|c| docker_actions::run_label(c) != Some(ctx.forward_run_id.as_str())),
    };
    let old = old.ok_or_else(|| {
        other(
            step,
            format!(
                "the old container of node {node} ({}) is gone: nothing to start; hint: recreate it by hand from the backup's version, or run `omsup apply` again",
                old_id.as_deref().unwrap_or(container.as_str())
            ),
        )
    })?;
    let id = old.id.clone().unwrap_or_default();
    let renamed_from = (name_of(&old) != container).then(|| name_of(&old).to_owned());
    if renamed_from.is_some() {
        if let Some(holder) = inspect(docker, step, &container).await? {
            return Err(other(
                step,
                format!(
                    "cannot rename the old container of node {node} back to `{container}`: container {} has that name (the new container should have been removed by `undo.node[{node}].remove-new`)",
                    holder.id.unwrap_or_default()
                ),
            ));
        }
        docker_actions::rename_container(docker, &id, &container)
            .await
            .map_err(docker_error(step))?;
    }
    // The ready line of its run before the upgrade is still in its log: only lines written
    // since this start count.
    let started_now = !is_running(&old);
    if started_now {
        docker_actions::start_container(docker, &container)
            .await
            .map_err(docker_error(step))?;
    }
    let waited = docker_actions::wait_ready_after_start(
        docker,
        &container,
        ctx.plan_file.timeouts.readiness.as_duration(),
    )
    .await
    .map_err(docker_error(step))?;
    let image = old.config.as_ref().and_then(|c| c.image.clone());
    Ok(json!({
        "container_id": id,
        "image": image,
        "renamed_from": renamed_from,
        "started": started_now,
        "ready_after_ms": waited.as_millis() as u64,
    }))
}

/// Polls until every node of the plan file is ONLINE in cm.host and healthy, then checks that
/// each restarted node runs its old container again.
async fn verify_online(
    ctx: &UndoContext,
    step: &UndoStep,
    restarted: &[String],
) -> Result<Value, StepError> {
    let timeout = ctx.plan_file.timeouts.online.as_duration();
    let started = Instant::now();
    let cm = &ctx.plan_file.meta_db.cm;
    let query = format!("SELECT CAST(ip AS CHAR), CAST(host_status AS CHAR) FROM `{cm}`.host");
    let mut pending: Vec<String> = ctx.plan_file.nodes().map(|(_, n)| n.ip.clone()).collect();
    let mut last_seen: BTreeMap<String, String> = BTreeMap::new();
    while !pending.is_empty() {
        let statuses: BTreeMap<String, String> =
            sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(query.clone()))
                .fetch_all(&ctx.pool)
                .await
                .map(|rows| rows.into_iter().collect())
                .unwrap_or_default();
        let mut still = Vec::new();
        for ip in pending {
            let status = statuses.get(&ip).map_or("not registered", String::as_str);
            let healthy = crate::health::healthy(&ip, ctx.health_port(&ip)).await == Some(true);
            if status != "ONLINE" || !healthy {
                let health = if healthy { "healthy" } else { "not healthy" };
                last_seen.insert(ip.clone(), format!("{status}, {health}"));
                still.push(ip);
            }
        }
        pending = still;
        if !pending.is_empty() {
            if started.elapsed() >= timeout {
                let waiting: Vec<String> = pending
                    .iter()
                    .map(|ip| format!("{ip} ({})", last_seen[ip]))
                    .collect();
                return Err(other(
                    step,
                    format!(
                        "not ONLINE and healthy within {timeout:?}: {}",
                        waiting.join(", ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let mut images = BTreeMap::new();
    for ip in restarted {
        let container = &plan_node(ctx, step, ip)?.container;
        let expected = ctx
            .output(&format!("undo.node[{ip}].start-old"))
            .and_then(|v| v["container_id"].as_str().map(str::to_owned));
        let running = inspect(docker(ctx, step, ip)?, step, container).await?;
        let running_id = running.as_ref().and_then(|c| c.id.clone());
        if expected.is_some() && running_id != expected {
            return Err(other(
                step,
                format!(
                    "node {ip}: `{container}` is {}, not the old container {}",
                    running_id.as_deref().unwrap_or("absent"),
                    expected.as_deref().unwrap_or_default()
                ),
            ));
        }
        let image = running.and_then(|c| c.config.and_then(|c| c.image));
        images.insert(ip.clone(), image);
    }
    Ok(json!({
        "online": ctx.plan_file.nodes().map(|(_, n)| n.ip.clone()).collect::<Vec<_>>(),
        "images": images,
        "after_ms": started.elapsed().as_millis() as u64,
    }))
}

async fn ha_restore(
    ctx: &UndoContext,
    step: &UndoStep,
    before: &HaBefore,
) -> Result<Value, StepError> {
    let rm = &ctx.plan_file.meta_db.rm;
    let (previous, known) = match before {
        HaBefore::Journaled { value } => (value.clone(), true),
        HaBefore::WasOff | HaBefore::Unknown => {
            let found = match ctx.output("undo.ha.off").map(|v| v["found"].clone()) {
                Some(found) if found.is_object() => found,
                _ => meta_actions::read_ha_config(&ctx.pool, rm)
                    .await
                    .map_err(meta_error(step))?,
            };
            let mut value = found;
            if let Some(map) = value.as_object_mut() {
                map.insert("enable".into(), Value::Bool(false));
            }
            (value, matches!(before, HaBefore::WasOff))
        }
    };
    // HA has been off since T1 and stays off until now (restores, restarts and checks come
    // after T3): the window runs to now, which is never shorter than T3 - T1.
    let t1 = ctx.forward_t1();
    let t3 = ctx.t3().unwrap_or_else(unix_now);
    let window = Duration::from_secs(t1.map_or(0, |t1| unix_now().max(t3).saturating_sub(t1)));
    let policy = HaPolicy {
        after: HaAfter::Restore,
        perceive_store_client_checkpoint: None,
    };
    let value = meta_actions::ha_restore(&ctx.pool, rm, &previous, &policy, window)
        .await
        .map_err(meta_error(step))?;
    Ok(json!({
        "value": value,
        "previous_known": known,
        "t1": t1,
        "t3": t3,
        "window_s": window.as_secs(),
    }))
}
