//! A whole upgrade, step by step through the scheduler, on a two-node world: 4.2.8 -> 4.2.9.

use std::collections::BTreeSet;
use std::time::Duration;

use omsup_exec::apply::{ApplyContext, execute_step};
use omsup_exec::scheduler::run_dag;
use omsup_exec::secrets::Secrets;
use omsup_model::PlanFile;
use omsup_testworld::{World, WorldSpec};

async fn plan_world(world: &World) -> (PlanFile, Vec<u8>, Secrets, omsup_engine::UpgradePlan) {
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
    (plan_file, bytes, secrets, planned)
}

#[tokio::test]
async fn an_upgrade_keeps_every_row_and_store_file_and_ends_online_with_ha_restored() {
    let world = World::up(WorldSpec::two_nodes())
        .await
        .unwrap_or_else(|e| panic!("cannot deploy a test world: {e}"));
    let projects_before = world.table_checksums(&world.rm).await.unwrap();
    let store_files: Vec<_> = world
        .nodes
        .iter()
        .map(|n| n.store_dir().join(&n.ip).join("store.dat"))
        .collect();
    let mut store_before = Vec::new();
    for node in &world.nodes {
        store_before.push(
            node.wait_store_longer_than(0, Duration::from_secs(20))
                .await,
        );
    }

    let (plan_file, _, secrets, planned) = plan_world(&world).await;
    assert!(
        !planned.has_blocking_findings(),
        "{:#?}",
        planned.diff.findings
    );
    let ctx = ApplyContext::connect(
        plan_file.clone(),
        planned.clone(),
        "test-run".into(),
        secrets.clone(),
    )
    .await
    .unwrap();
    let report = run_dag(&planned.steps, &BTreeSet::new(), 4, |step| {
        let ctx = &ctx;
        async move {
            let captured = omsup_exec::apply::capture(ctx, step).await.unwrap();
            execute_step(ctx, step, captured.as_ref())
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "{e}: {:?}",
                        std::error::Error::source(&e).map(|s| s.to_string())
                    )
                })
        }
    })
    .await;
    assert!(
        report.is_success(),
        "failed: {:?}, not started: {:?}",
        report.failed,
        report.not_started
    );

    // Every pre-existing row kept (the tables 4.2.9 does not alter), the new schema in place.
    let after = world.table_checksums(&world.rm).await.unwrap();
    for table in ["oms_project", "cluster_info"] {
        assert_eq!(after[table], projects_before[table], "{table} changed");
    }
    assert!(
        after.contains_key("oms_alarm_event"),
        "the 4.2.9 schema is missing"
    );
    // Every node ONLINE and healthy on 4.2.9; the old containers kept, stopped.
    for node in &world.nodes {
        assert_eq!(world.host_statuses().await.unwrap()[&node.ip], "ONLINE");
        assert_eq!(
            omsup_testworld::world::health(&node.ip).await,
            Some(true),
            "{} unhealthy",
            node.ip
        );
        let docker = node.docker().unwrap();
        let new = docker
            .inspect_container(&world.container, None)
            .await
            .unwrap();
        assert_eq!(
            new.config.unwrap().image.as_deref(),
            Some("oms:feature_4.2.9-ce")
        );
        let old = docker
            .inspect_container(&format!("{}-omsup-4.2.8", world.container), None)
            .await
            .unwrap();
        assert_eq!(
            old.state.unwrap().running,
            Some(false),
            "the kept old container must be stopped"
        );
    }
    // Store data survived on every node.
    for (file, before) in store_files.iter().zip(&store_before) {
        assert!(
            std::fs::read_to_string(file)
                .unwrap()
                .starts_with(before.as_str()),
            "{} lost data",
            file.display()
        );
    }
    // HA back on, refetchStoreIntervalMin above the HA-off window.
    let pool = world.meta_pool().await.unwrap();
    let ha = omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap();
    assert!(ha.enable());
    let window_min = ctx
        .outputs
        .lock()
        .unwrap()
        .ha_restore()
        .unwrap()
        .ha_off_window_s
        .div_ceil(60);
    assert!(ha.refetch_store_interval_min() > window_min, "{ha:?}");
    // Backups exist with their manifests.
    for database in world.databases() {
        let manifest = ctx
            .outputs
            .lock()
            .unwrap()
            .backup(&database)
            .cloned()
            .unwrap();
        assert!(manifest.size_bytes > 0, "{manifest:?}");
    }
    // A second plan has nothing to do.
    let (_, _, _, again) = plan_world(&world).await;
    assert!(
        again.is_empty(),
        "{:?}",
        again.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    world.down().await.unwrap();
}
