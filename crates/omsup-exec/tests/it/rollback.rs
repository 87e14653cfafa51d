//! Rollback on real two-node worlds: a full upgrade undone, an upgrade cut off after the stops
//! undone, and a corrupted backup refused before anything is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use omsup_engine::StepId;
use omsup_engine::outputs::{HaConfig, StartOldOutput};
use omsup_engine::rollback::{ForwardStep, Reached, RollbackPlan, UndoKind, plan_rollback};
use omsup_engine::steps::{Step, StepKind};
use omsup_exec::apply::{ApplyContext, capture, execute_step};
use omsup_exec::scheduler::{ScheduleReport, run_dag};
use omsup_exec::secrets::Secrets;
use omsup_exec::undo::{UndoContext, execute_undo};
use omsup_model::PlanFile;
use omsup_testworld::{World, WorldSpec};

type Checksums = BTreeMap<String, BTreeMap<String, (u64, Option<i64>)>>;

async fn checksums(world: &World) -> Checksums {
    let mut all = BTreeMap::new();
    for database in world.databases() {
        let sums = world.table_checksums(&database).await.unwrap();
        all.insert(database, sums);
    }
    all
}

async fn plan_world(world: &World) -> (PlanFile, Secrets, omsup_engine::UpgradePlan) {
    let bytes = std::fs::read(&world.plan_path).unwrap();
    let plan_file: PlanFile = toml::from_str(std::str::from_utf8(&bytes).unwrap()).unwrap();
    let secrets = Secrets::from_plan(&plan_file).unwrap();
    let observation = omsup_exec::observe::observe(&plan_file, &secrets).await;
    assert!(
        observation.problems.is_empty(),
        "{:?}",
        observation.problems
    );
    let planned = omsup_engine::plan(&plan_file, &bytes, &observation.world);
    assert!(
        !planned.has_blocking_findings(),
        "{:#?}",
        planned.diff.findings
    );
    (plan_file, secrets, planned)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A forward run, journaled the way the lead's apply journals it: an intent (with what the
/// step captured) before each step, the output after it.
struct Forward {
    run_id: String,
    plan_file: PlanFile,
    secrets: Secrets,
    steps: Vec<Step>,
    ctx: ApplyContext,
    journal: Mutex<Vec<ForwardStep>>,
    done: Mutex<BTreeSet<StepId>>,
}

impl Forward {
    async fn start(world: &World) -> Self {
        let (plan_file, secrets, planned) = plan_world(world).await;
        let run_id = format!("fwd-{}", world.id);
        let ctx = ApplyContext::connect(
            plan_file.clone(),
            planned.clone(),
            run_id.clone(),
            secrets.clone(),
        )
        .await
        .unwrap();
        Self {
            run_id,
            plan_file,
            secrets,
            steps: planned.steps,
            ctx,
            journal: Mutex::new(Vec::new()),
            done: Mutex::new(BTreeSet::new()),
        }
    }

    /// Runs the steps `select` picks (closed under dependencies) that have not run yet.
    async fn run(&self, select: impl Fn(&StepKind) -> bool) {
        let done = self.done.lock().unwrap().clone();
        let steps: Vec<Step> = self
            .steps
            .iter()
            .filter(|s| select(&s.kind) || done.contains(&s.id))
            .cloned()
            .collect();
        let report = run_dag(&steps, &done, 4, |step| async move {
            let captured = capture(&self.ctx, step).await.unwrap();
            let position = {
                let mut journal = self.journal.lock().unwrap();
                journal.push(ForwardStep {
                    id: step.id.clone(),
                    kind: step.kind.clone(),
                    reached: Reached::Intent,
                    captured: captured.clone(),
                    output: None,
                });
                journal.len() - 1
            };
            let output = execute_step(&self.ctx, step, captured.as_ref())
                .await
                .map_err(|e| error_chain(&e))?;
            let mut journal = self.journal.lock().unwrap();
            journal[position].reached = Reached::Succeeded;
            journal[position].output = Some(output);
            Ok::<_, String>(())
        })
        .await;
        assert!(
            report.is_success(),
            "forward: failed {:?}, not started {:?}",
            report.failed,
            report.not_started
        );
        self.done.lock().unwrap().extend(report.succeeded);
    }

    fn plan_rollback(&self) -> RollbackPlan {
        plan_rollback(&self.run_id, &self.journal.lock().unwrap())
    }

    async fn undo_context(&self, keep_new: bool) -> UndoContext {
        let outputs = self.ctx.outputs.lock().unwrap().clone();
        UndoContext::connect(
            self.plan_file.clone(),
            format!("undo-{}", self.run_id),
            self.run_id.clone(),
            self.secrets.clone(),
            outputs,
            keep_new,
        )
        .await
        .unwrap()
    }
}

/// Runs the undo steps `select` picks (closed under dependencies) that have not run yet.
async fn run_undo(
    ctx: &UndoContext,
    plan: &RollbackPlan,
    done: &mut BTreeSet<StepId>,
    select: impl Fn(&UndoKind) -> bool,
) -> ScheduleReport<String> {
    let steps: Vec<Step<UndoKind>> = plan
        .steps
        .iter()
        .filter(|s| select(&s.kind) || done.contains(&s.id))
        .cloned()
        .collect();
    let report = run_dag(&steps, done, 4, |step| async move {
        execute_undo(ctx, step)
            .await
            .map(|_| ())
            .map_err(|e| error_chain(&e))
    })
    .await;
    done.extend(report.succeeded.iter().cloned());
    report
}

/// The world as it was before the upgrade: the old containers running 4.2.8 under their names
/// with the same mounts, nothing kept or new left over, every node ONLINE and healthy,
/// `ha.config` and the rm data as before, and a new plan proposes the upgrade again.
async fn assert_back_before_the_upgrade(world: &World, before: &Checksums, ha_before: &HaConfig) {
    let statuses = world.host_statuses().await.unwrap();
    for node in &world.nodes {
        assert_eq!(statuses[&node.ip], "ONLINE", "{}", node.ip);
        assert_eq!(
            omsup_testworld::world::health(&node.ip).await,
            Some(true),
            "{} unhealthy",
            node.ip
        );
        let docker = node.docker().unwrap();
        let container = docker
            .inspect_container(&world.container, None)
            .await
            .unwrap();
        assert_eq!(
            container.config.as_ref().unwrap().image.as_deref(),
            Some("oms:feature_4.2.8-ce"),
            "{}",
            node.ip
        );
        assert_eq!(container.state.as_ref().unwrap().running, Some(true));
        let mut binds = container.host_config.unwrap().binds.unwrap_or_default();
        binds.sort();
        let mut expected = node.binds();
        expected.sort();
        assert_eq!(binds, expected, "{} mounts", node.ip);
        for leftover in [format!("{}-omsup-4.2.8", world.container)] {
            assert!(
                docker.inspect_container(&leftover, None).await.is_err(),
                "{leftover} is still there on {}",
                node.ip
            );
        }
    }
    let pool = world.meta_pool().await.unwrap();
    let ha = omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap();
    assert_eq!(&ha, ha_before);
    assert!(ha.enable());
    // rm is written by nobody but omsup and init; its ha.config row's timestamp moved.
    let rm_now = world.table_checksums(&world.rm).await.unwrap();
    for (table, sums) in &before[&world.rm] {
        if table != "oms_normal_config" {
            assert_eq!(&rm_now[table], sums, "rm table {table}");
        }
    }
    assert_eq!(rm_now.len(), before[&world.rm].len(), "rm tables");
    let (_, _, again) = plan_world(world).await;
    for node in &world.nodes {
        assert!(
            again.step(StepId::start_new(&node.ip).as_str()).is_some(),
            "{:?}",
            again.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
    }
}

async fn ha_config(world: &World) -> HaConfig {
    let pool = world.meta_pool().await.unwrap();
    omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap()
}

/// A two-node 4.2.8 world, its databases' checksums and `ha.config` before any upgrade.
async fn deploy() -> (World, Checksums, HaConfig) {
    let world = World::up(WorldSpec::two_nodes())
        .await
        .unwrap_or_else(|e| panic!("cannot deploy a test world: {e}"));
    let before = checksums(&world).await;
    let ha = ha_config(&world).await;
    (world, before, ha)
}

fn assert_success(report: &ScheduleReport<String>) {
    assert!(
        report.is_success(),
        "failed: {:?}, not started: {:?}",
        report.failed,
        report.not_started
    );
}

/// What `undo.node[ip].start-old` returned.
fn started_old(ctx: &UndoContext, ip: &str) -> StartOldOutput {
    let outputs = ctx.outputs.lock().unwrap();
    outputs.start_old(ip).cloned().unwrap()
}

fn writes_new(kind: &StepKind) -> bool {
    matches!(
        kind,
        StepKind::StartNew { .. }
            | StepKind::WaitReady { .. }
            | StepKind::Init { .. }
            | StepKind::VerifyOnline
            | StepKind::HaRestore
    )
}

#[tokio::test]
async fn a_full_upgrade_rolls_back_to_the_backups_and_the_old_containers() {
    let (world, before, ha_before) = deploy().await;

    let forward = Forward::start(&world).await;
    forward.run(|kind| !writes_new(kind)).await;
    let at_backup = checksums(&world).await;
    forward.run(|_| true).await;
    assert!(
        world
            .table_checksums(&world.rm)
            .await
            .unwrap()
            .contains_key("oms_alarm_event"),
        "the upgrade did not migrate"
    );

    let plan = forward.plan_rollback();
    assert!(plan.loses_data_since_backup);
    for database in world.databases() {
        assert!(
            plan.step(StepId::undo_restore(&database).as_str())
                .is_some(),
            "{database}"
        );
    }
    let ctx = forward.undo_context(false).await;
    let mut done = BTreeSet::new();
    // Up to the restores, then the databases are exactly the backups...
    let report = run_undo(&ctx, &plan, &mut done, |kind| {
        !matches!(
            kind,
            UndoKind::StartOld { .. } | UndoKind::VerifyOnline { .. } | UndoKind::HaRestore { .. }
        )
    })
    .await;
    assert_success(&report);
    let at_restore = checksums(&world).await;
    for database in world.databases() {
        assert_eq!(
            at_restore[&database], at_backup[&database],
            "`{database}` differs from its backup after the restore"
        );
    }
    let restored = ctx
        .outputs
        .lock()
        .unwrap()
        .restore(&world.rm)
        .cloned()
        .unwrap();
    assert_eq!(
        restored.row_counts["oms_project"], at_backup[&world.rm]["oms_project"].0,
        "{restored:?}"
    );
    // ...then the old containers come back.
    let report = run_undo(&ctx, &plan, &mut done, |_| true).await;
    assert_success(&report);
    let outputs = ctx.outputs.lock().unwrap().clone();
    for node in &world.nodes {
        let removed = outputs.remove_new(&node.ip).unwrap();
        assert!(removed.removed, "{removed:?}");
        assert!(removed.t3 > 0);
    }
    let restore = outputs.ha_restore().unwrap();
    // HA stayed off from T1 until this restore, which comes after T3.
    assert!(
        restore.window_s >= restore.t3 - restore.t1.unwrap(),
        "{restore:?}"
    );
    assert_back_before_the_upgrade(&world, &before, &ha_before).await;

    // A resumed rollback may run its container and HA steps again: they find them done.
    let again = |kind: &UndoKind| {
        matches!(
            kind,
            UndoKind::RemoveNew { .. }
                | UndoKind::StartOld { .. }
                | UndoKind::VerifyOnline { .. }
                | UndoKind::HaRestore { .. }
        )
    };
    let mut done: BTreeSet<StepId> = plan
        .steps
        .iter()
        .filter(|s| !again(&s.kind))
        .map(|s| s.id.clone())
        .collect();
    let report = run_undo(&ctx, &plan, &mut done, again).await;
    assert_success(&report);
    for node in &world.nodes {
        let started = started_old(&ctx, &node.ip);
        assert!(!started.started, "{started:?}");
    }
    assert_back_before_the_upgrade(&world, &before, &ha_before).await;
    world.down().await.unwrap();
}

#[tokio::test]
async fn an_upgrade_cut_off_after_the_stops_rolls_back_without_touching_databases() {
    let (world, before, ha_before) = deploy().await;

    let forward = Forward::start(&world).await;
    forward
        .run(|kind| {
            matches!(
                kind,
                StepKind::Preflight
                    | StepKind::LoadImage { .. }
                    | StepKind::HaOff
                    | StepKind::PruneHeartbeats { .. }
                    | StepKind::StopOld { .. }
            )
        })
        .await;
    assert!(!ha_config(&world).await.enable());

    let plan = forward.plan_rollback();
    assert!(!plan.loses_data_since_backup);
    let kinds: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert!(
        plan.steps.iter().all(|s| !matches!(
            s.kind,
            UndoKind::RemoveNew { .. }
                | UndoKind::RestoreDatabase { .. }
                | UndoKind::VerifyBackups { .. }
        )),
        "{kinds:?}"
    );
    let ctx = forward.undo_context(false).await;
    let report = run_undo(&ctx, &plan, &mut BTreeSet::new(), |_| true).await;
    assert_success(&report);
    for node in &world.nodes {
        let started = started_old(&ctx, &node.ip);
        assert!(started.started, "{started:?}");
        assert_eq!(started.renamed_from, None, "{started:?}");
        // The simulator takes 1.5 s to start: the ready line it logged before the upgrade
        // stopped it does not count.
        assert!(started.ready_after_ms >= 1000, "{started:?}");
    }
    assert_back_before_the_upgrade(&world, &before, &ha_before).await;
    world.down().await.unwrap();
}

#[tokio::test]
async fn a_corrupted_backup_stops_the_rollback_before_anything_is_dropped() {
    let (world, before, ha_pre) = deploy().await;
    let forward = Forward::start(&world).await;
    forward.run(|_| true).await;

    let manifest = forward
        .ctx
        .outputs
        .lock()
        .unwrap()
        .backup(&world.rm)
        .cloned()
        .unwrap();
    let file = manifest.file.clone();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let rm_before = world.table_checksums(&world.rm).await.unwrap();
    let ha_before = ha_config(&world).await;

    let plan = forward.plan_rollback();
    let ctx = forward.undo_context(false).await;
    let report = run_undo(&ctx, &plan, &mut BTreeSet::new(), |_| true).await;
    assert_eq!(report.succeeded, Vec::<StepId>::new());
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    let (id, error) = &report.failed[0];
    assert_eq!(id, "undo.backups.verify");
    assert!(
        error.contains(&file.display().to_string()) && error.contains("corrupted"),
        "{error}"
    );
    assert_eq!(report.not_started.len(), plan.steps.len() - 1);
    // Nothing dropped, nothing stopped, HA untouched: still the upgraded deployment.
    assert_eq!(world.table_checksums(&world.rm).await.unwrap(), rm_before);
    assert!(rm_before.contains_key("oms_alarm_event"));
    assert_eq!(ha_config(&world).await, ha_before);
    for node in &world.nodes {
        let container = node
            .docker()
            .unwrap()
            .inspect_container(&world.container, None)
            .await
            .unwrap();
        assert_eq!(
            container.config.unwrap().image.as_deref(),
            Some("oms:feature_4.2.9-ce")
        );
        assert_eq!(container.state.unwrap().running, Some(true));
    }

    // The file repaired, a rollback that keeps the new containers goes through.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[middle] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let ctx = forward.undo_context(true).await;
    let report = run_undo(&ctx, &plan, &mut BTreeSet::new(), |_| true).await;
    assert_success(&report);
    let kept = format!("{}-omsup-rolled-back-{}", world.container, forward.run_id);
    for node in &world.nodes {
        let container = node
            .docker()
            .unwrap()
            .inspect_container(&kept, None)
            .await
            .unwrap_or_else(|e| panic!("{kept} on {}: {e}", node.ip));
        assert_eq!(
            container.config.unwrap().image.as_deref(),
            Some("oms:feature_4.2.9-ce")
        );
        assert_eq!(container.state.unwrap().running, Some(false));
    }
    let after = world.table_checksums(&world.rm).await.unwrap();
    assert!(
        !after.contains_key("oms_alarm_event"),
        "rm was not restored"
    );
    assert_back_before_the_upgrade(&world, &before, &ha_pre).await;
    world.down().await.unwrap();
}
