//! Rollback executors: one per [`UndoKind`] of the engine's rollback plan, each idempotent.
//! Each observes first (is the new container already gone? the old one already back under its
//! name and running? HA already off?), then acts, then verifies, and returns its typed
//! [`UndoOutput`] for the rollback's journal (T3, restored row counts, the `ha.config` written).
//!
//! A database restore is never skipped because the row counts already match the manifest
//! (counts say nothing about the values): dropping and restoring again is always safe once
//! `undo.backups.verify` has checked the file.
//!
//! [`UndoContext`] holds the connections of one rollback run and the forward run's outputs, and
//! is the undo [`Executor`]; the caller orders the steps with [`crate::scheduler::run_dag`]
//! and journals each one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use omsup_engine::container::RestartPolicy;
use omsup_engine::outputs::{
    BackupManifest, BackupsVerifiedOutput, Capture, Outputs, RemoveNewOutput, RestoreOutput,
    StartOldOutput, StepOutput, UndoHaOffOutput, UndoHaRestoreOutput, UndoOutput,
    UndoVerifyOnlineOutput, VerifiedBackup,
};
use omsup_engine::rollback::{HaBefore, UndoKind};
use omsup_engine::{Step, StepId};
use omsup_model::PlanFile;
use omsup_model::plan::{HaAfter, HaPolicy, Node};
use sqlx::MySqlPool;

use crate::apply::connect_meta_db;
use crate::backup::{self, ClientConnection};
use crate::docker_actions;
use crate::executor::{Executor, Failure, StepError};
use crate::meta_actions;
use crate::secrets::Secrets;
use crate::time::{unix_now, unix_seconds};

type UndoStep = Step<UndoKind>;

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
    /// Outputs of the forward run's succeeded steps (`db[rm].backup` holds its manifest).
    pub forward_outputs: Outputs<StepOutput>,
    /// Outputs of this rollback's finished undo steps (loaded from its journal on resume).
    pub outputs: Mutex<Outputs<UndoOutput>>,
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
        forward_outputs: Outputs<StepOutput>,
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
            outputs: Mutex::new(Outputs::default()),
            keep_new,
        })
    }

    /// Where node `ip` answers `/oms/health`: the port the forward run observed, else 8089.
    pub fn health_port(&self, ip: &str) -> u16 {
        self.forward_outputs
            .start_new(ip)
            .map_or(crate::health::HEALTH_PORT, |start| start.health_port)
    }

    /// The name a new container is kept under with `keep_new`.
    pub fn kept_new_name(&self, container: &str) -> String {
        format!("{container}-omsup-rolled-back-{}", self.forward_run_id)
    }

    /// The backup manifest the forward run journaled for `database`.
    fn manifest(&self, step: &UndoStep, database: &str) -> Result<BackupManifest, StepError> {
        self.forward_outputs
            .backup(database)
            .cloned()
            .ok_or_else(|| {
                StepError::other(
                    &step.id,
                    format!(
                        "the forward run journaled no backup of `{database}` (`{}`)",
                        StepId::backup(database)
                    ),
                )
            })
    }

    /// T1 of the forward run: its first old container stopped (else when HA went off).
    pub fn forward_t1(&self) -> Option<u64> {
        self.forward_outputs.t1()
    }

    /// T3: the last new container stopped by this rollback.
    pub fn t3(&self) -> Option<u64> {
        self.outputs.lock().expect("outputs lock").t3()
    }
}

impl Executor for UndoContext {
    type Kind = UndoKind;

    async fn capture(&self, _step: &UndoStep) -> Result<Option<Capture>, StepError> {
        Ok(None)
    }

    async fn execute(
        &self,
        step: &UndoStep,
        _captured: Option<&Capture>,
    ) -> Result<UndoOutput, StepError> {
        execute_undo(self, step).await
    }

    fn record(&self, id: StepId, output: UndoOutput) {
        self.outputs
            .lock()
            .expect("outputs lock")
            .insert(id, output);
    }
}

/// Runs one undo step and returns its output; records it in the context.
pub async fn execute_undo(ctx: &UndoContext, step: &UndoStep) -> Result<UndoOutput, StepError> {
    let output = match &step.kind {
        UndoKind::VerifyBackups { databases } => verify_backups(ctx, step, databases).await,
        UndoKind::HaOff => {
            let outcome = meta_actions::ha_off(&ctx.pool, &ctx.plan_file.meta_db.rm)
                .await
                .map_err(StepError::meta(&step.id))?;
            Ok(UndoOutput::HaOff(UndoHaOffOutput {
                found: outcome.previous,
                changed: outcome.changed,
                at: unix_now(),
            }))
        }
        UndoKind::RemoveNew { node } => remove_new(ctx, step, node).await,
        UndoKind::RestoreDatabase { database } => restore(ctx, step, database).await,
        UndoKind::StartOld {
            node,
            restart_policy,
        } => start_old(ctx, step, node, restart_policy.as_ref()).await,
        UndoKind::VerifyOnline { restarted } => verify_online(ctx, step, restarted).await,
        UndoKind::HaRestore { before } => ha_restore(ctx, step, before).await,
    }?;
    ctx.record(step.id.clone(), output.clone());
    Ok(output)
}

/// Every backup file against its manifest's sha256; all are checked, and every bad one is
/// named, before the step fails.
async fn verify_backups(
    ctx: &UndoContext,
    step: &UndoStep,
    databases: &[String],
) -> Result<UndoOutput, StepError> {
    let mut verified = Vec::new();
    let mut failures = Vec::new();
    for database in databases {
        let manifest = ctx.manifest(step, database)?;
        match backup::verify_backup(&manifest).await {
            Ok(()) => verified.push(VerifiedBackup {
                database: database.clone(),
                file: manifest.file,
                sha256: manifest.sha256,
                size_bytes: manifest.size_bytes,
            }),
            Err(error) => failures.push(error),
        }
    }
    match failures.len() {
        0 => Ok(UndoOutput::BackupsVerified(BackupsVerifiedOutput {
            verified,
        })),
        1 => Err(StepError::backup(&step.id)(failures.remove(0))),
        _ => Err(StepError::other(
            &step.id,
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
        .ok_or_else(|| StepError::other(&step.id, format!("node {ip} is not in the plan file")))
}

fn docker<'c>(ctx: &'c UndoContext, step: &UndoStep, ip: &str) -> Result<&'c Docker, StepError> {
    ctx.dockers
        .get(ip)
        .ok_or_else(|| StepError::other(&step.id, format!("no Docker connection for node {ip}")))
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
        Err(source) => Err(StepError::docker(&step.id)(docker_actions::docker_error(
            "cannot inspect container",
            name_or_id,
        )(source))),
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
        .start_new(node)
        .map(|start| start.new_container_id.as_str())
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

async fn remove_new(
    ctx: &UndoContext,
    step: &UndoStep,
    node: &str,
) -> Result<UndoOutput, StepError> {
    let container = plan_node(ctx, step, node)?.container.clone();
    let docker = docker(ctx, step, node)?;
    let Some(new) = find_new_container(ctx, step, docker, node, &container).await? else {
        // Never created, or removed by an earlier attempt: T3 is now (the safe, longer window).
        return Ok(UndoOutput::RemoveNew(RemoveNewOutput {
            container_id: None,
            was_running: false,
            t3: unix_now(),
            removed: false,
            kept_as: None,
        }));
    };
    let id = new.id.clone().unwrap_or_default();
    let stopped =
        docker_actions::stop_container(docker, &id, ctx.plan_file.timeouts.stop.as_duration())
            .await
            .map_err(StepError::docker(&step.id))?;
    let t3 = unix_seconds(stopped.stopped_at);
    if ctx.keep_new {
        let kept = ctx.kept_new_name(&container);
        if name_of(&new) != kept {
            if let Some(holder) = inspect(docker, step, &kept).await? {
                return Err(StepError::other(
                    &step.id,
                    format!(
                        "cannot keep the new container of node {node} as `{kept}`: container {} already has that name",
                        holder.id.unwrap_or_default()
                    ),
                ));
            }
            docker_actions::rename_container(docker, &id, &kept)
                .await
                .map_err(StepError::docker(&step.id))?;
        }
        // Kept stopped: a host reboot must not start it next to the old one.
        docker_actions::set_restart_policy(docker, &id, None)
            .await
            .map_err(StepError::docker(&step.id))?;
        return Ok(UndoOutput::RemoveNew(RemoveNewOutput {
            container_id: Some(id),
            was_running: stopped.was_running,
            t3,
            removed: false,
            kept_as: Some(kept),
        }));
    }
    let removed = docker_actions::remove_container(docker, &id)
        .await
        .map_err(StepError::docker(&step.id))?;
    Ok(UndoOutput::RemoveNew(RemoveNewOutput {
        container_id: Some(id),
        was_running: stopped.was_running,
        t3,
        removed,
        kept_as: None,
    }))
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
            return Err(StepError::failed(
                &step.id,
                Failure::RestoreUnderLiveOms {
                    database: database.to_owned(),
                    container: node.container.clone(),
                    node: node.ip.clone(),
                },
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

async fn restore(
    ctx: &UndoContext,
    step: &UndoStep,
    database: &str,
) -> Result<UndoOutput, StepError> {
    quiesce(ctx, step, database).await?;
    let manifest = ctx.manifest(step, database)?;
    let client = backup::find_restore_client().map_err(StepError::backup(&step.id))?;
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
        .map_err(StepError::backup(&step.id))?;
    Ok(UndoOutput::Restore(RestoreOutput {
        database: database.to_owned(),
        file: manifest.file,
        sha256: manifest.sha256,
        row_counts: manifest.row_counts,
        took_ms: started.elapsed().as_millis() as u64,
    }))
}

async fn start_old(
    ctx: &UndoContext,
    step: &UndoStep,
    node: &str,
    restart_policy: Option<&RestartPolicy>,
) -> Result<UndoOutput, StepError> {
    let container = plan_node(ctx, step, node)?.container.clone();
    let docker = docker(ctx, step, node)?;
    let old_id = ctx
        .forward_outputs
        .stop_old(node)
        .map(|stop| stop.container_id.clone())
        .filter(|id| !id.is_empty())
        .or_else(|| {
            ctx.forward_outputs
                .start_new(node)
                .and_then(|start| start.old_container_id.clone())
                .filter(|id| !id.is_empty())
        });
    let old = match &old_id {
        Some(id) => inspect(docker, step, id).await?,
        // The stop was cut off before journaling the id: the old container still has its name.
        None => inspect(docker, step, &container)
            .await?
            // Not the forward run's new container (an older omsup run's label is fine).
            .filter(|c| docker_actions::run_label(c) != Some(ctx.forward_run_id.as_str())),
    };
    let old = old.ok_or_else(|| {
        StepError::failed(
            &step.id,
            Failure::OldContainerGone {
                node: node.to_owned(),
                container: old_id.clone().unwrap_or_else(|| container.clone()),
            },
        )
    })?;
    let id = old.id.clone().unwrap_or_default();
    let renamed_from = (name_of(&old) != container).then(|| name_of(&old).to_owned());
    if renamed_from.is_some() {
        if let Some(holder) = inspect(docker, step, &container).await? {
            return Err(StepError::other(
                &step.id,
                format!(
                    "cannot rename the old container of node {node} back to `{container}`: container {} has that name (the new container should have been removed by `{}`)",
                    holder.id.unwrap_or_default(),
                    StepId::undo_remove_new(node)
                ),
            ));
        }
        docker_actions::rename_container(docker, &id, &container)
            .await
            .map_err(StepError::docker(&step.id))?;
    }
    if restart_policy.is_some() {
        docker_actions::set_restart_policy(docker, &container, restart_policy)
            .await
            .map_err(StepError::docker(&step.id))?;
    }
    // The ready line of its run before the upgrade is still in its log: only lines written
    // since this start count.
    let started_now = !is_running(&old);
    if started_now {
        docker_actions::start_container(docker, &container)
            .await
            .map_err(StepError::docker(&step.id))?;
    }
    let waited = docker_actions::wait_ready_after_start(
        docker,
        &container,
        ctx.plan_file.timeouts.readiness.as_duration(),
    )
    .await
    .map_err(StepError::docker(&step.id))?;
    let image = old.config.as_ref().and_then(|c| c.image.clone());
    Ok(UndoOutput::StartOld(StartOldOutput {
        container_id: id,
        image,
        renamed_from,
        started: started_now,
        ready_after_ms: waited.as_millis() as u64,
    }))
}

/// Every node of the plan file ONLINE in cm.host and healthy ([`crate::health::verify_online`]),
/// then each restarted node runs its old container again.
async fn verify_online(
    ctx: &UndoContext,
    step: &UndoStep,
    restarted: &[String],
) -> Result<UndoOutput, StepError> {
    let ips: Vec<String> = ctx.plan_file.nodes().map(|(_, n)| n.ip.clone()).collect();
    let after =
        crate::health::verify_online(&ctx.pool, &ctx.dockers, &ctx.plan_file, &step.id, |ip| {
            ctx.health_port(ip)
        })
        .await?;
    let mut images = BTreeMap::new();
    for ip in restarted {
        let container = &plan_node(ctx, step, ip)?.container;
        let expected = ctx
            .outputs
            .lock()
            .expect("outputs lock")
            .start_old(ip)
            .map(|start| start.container_id.clone());
        let running = inspect(docker(ctx, step, ip)?, step, container).await?;
        let running_id = running.as_ref().and_then(|c| c.id.clone());
        if expected.is_some() && running_id != expected {
            return Err(StepError::other(
                &step.id,
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
    Ok(UndoOutput::VerifyOnline(UndoVerifyOnlineOutput {
        online: ips,
        images,
        after_ms: after.as_millis() as u64,
    }))
}

async fn ha_restore(
    ctx: &UndoContext,
    step: &UndoStep,
    before: &HaBefore,
) -> Result<UndoOutput, StepError> {
    let rm = &ctx.plan_file.meta_db.rm;
    let (previous, known) = match before {
        HaBefore::Journaled { value } => (value.clone(), true),
        HaBefore::WasOff | HaBefore::Unknown => {
            let found = ctx
                .outputs
                .lock()
                .expect("outputs lock")
                .ha_off()
                .map(|off| off.found.clone());
            let mut value = match found {
                Some(found) => found,
                None => meta_actions::read_ha_config(&ctx.pool, rm)
                    .await
                    .map_err(StepError::meta(&step.id))?,
            };
            value.set_enable(false);
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
        .map_err(StepError::meta(&step.id))?;
    Ok(UndoOutput::HaRestore(UndoHaRestoreOutput {
        value,
        previous_known: known,
        t1,
        t3,
        window_s: window.as_secs(),
    }))
}
