//! One test per clause of the OMS container contract the simulator keeps.

use std::time::{Duration, Instant};

use omsup_testworld::world::{self, exec_init, health, image_tag, remove_named, wait_for_log};
use omsup_testworld::{RegionSpec, World, WorldSpec};
use sqlx::AssertSqlSafe;

fn one_node() -> WorldSpec {
    WorldSpec {
        regions: vec![RegionSpec {
            name: "hz".into(),
            nodes: 1,
            shared_cm_nodes: true,
        }],
        heartbeat_rows_per_region: 100,
        ..WorldSpec::two_nodes()
    }
}

async fn up(spec: WorldSpec) -> World {
    World::up(spec)
        .await
        .unwrap_or_else(|error| panic!("cannot deploy a test world: {error}"))
}

/// Replaces the world's container on its first node with `version`'s image and `env`.
async fn replace_container(world: &World, version: &str, env: &[String]) {
    let node = &world.nodes[0];
    let docker = node.docker().unwrap();
    remove_named(&docker, &world.container).await.unwrap();
    world::ensure_image(&docker, version).await.unwrap();
    world
        .start_node(&docker, node, &image_tag(version), env)
        .await
        .unwrap();
    wait_for_log(
        &docker,
        &world.container,
        "OMS service start successfully",
        Duration::from_secs(30),
    )
    .await
    .unwrap();
}

async fn count(world: &World, table: &str) -> i64 {
    let pool = world.meta_pool().await.unwrap();
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn becomes_ready_only_after_the_configured_delay() {
    let world = up(one_node()).await;
    std::fs::write(world.nodes[0].run_dir().join("sim-start-delay-ms"), "2500").unwrap();
    let started = Instant::now();
    replace_container(&world, "4.2.8", &[]).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "ready after {waited:?}, before the 2.5 s delay"
    );
    world.down().await.unwrap();
}

#[tokio::test]
async fn a_new_version_is_healthy_only_after_its_init_and_init_keeps_every_row() {
    let world = up(one_node()).await;
    let ip = world.nodes[0].ip.clone();
    let rm_before = world.table_checksums(&world.rm).await.unwrap();
    let cm_before = world.table_checksums(&world.cm).await.unwrap();
    let projects_before = rm_before["oms_project"];
    replace_container(&world, "4.2.9", &["IS_UPGRADE=true".to_owned()]).await;
    let answer = world::poll_until(
        "the 4.2.9 health endpoint to answer",
        Duration::from_secs(20),
        || {
            let ip = ip.clone();
            async move { health(&ip).await.map(Some) }
        },
    )
    .await;
    assert_eq!(
        answer,
        Some(false),
        "4.2.9 must not be healthy on a 4.2.8 schema"
    );

    let docker = world.nodes[0].docker().unwrap();
    let (code, output) = exec_init(&docker, &world.container, vec![]).await.unwrap();
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("[Completed] All initialization steps are executed"),
        "{output}"
    );
    world::wait_healthy(&ip, Duration::from_secs(10))
        .await
        .unwrap();

    let after = world.table_checksums(&world.rm).await.unwrap();
    assert!(
        after.contains_key("oms_alarm_event"),
        "the 4.2.9 table is missing: {after:?}"
    );
    assert_eq!(
        after["oms_project"].0, projects_before.0,
        "projects were lost"
    );
    for (table, (rows, _)) in &rm_before {
        if table != "oms_version" {
            assert_eq!(after[table].0, *rows, "rows of rm.{table} changed");
        }
    }
    let cm_after = world.table_checksums(&world.cm).await.unwrap();
    for (table, (rows, _)) in &cm_before {
        assert_eq!(cm_after[table].0, *rows, "rows of cm.{table} changed");
    }
    assert_eq!(
        count(
            &world,
            &format!("{}.oms_version WHERE version = '4.2.9-CE'", world.rm)
        )
        .await,
        1
    );
    let log = std::fs::read_to_string(world.nodes[0].logs_dir().join("docker_init.log")).unwrap();
    assert!(
        log.contains("upgrading the meta schema from 4.2.8-CE to 4.2.9-CE"),
        "{log}"
    );

    let (code, output) = exec_init(&docker, &world.container, vec![]).await.unwrap();
    assert_eq!(code, 0, "a second init must be harmless: {output}");
    assert_eq!(
        world.table_checksums(&world.rm).await.unwrap()["oms_project"].0,
        projects_before.0
    );
    world.down().await.unwrap();
}

#[tokio::test]
async fn init_refuses_a_missing_or_too_old_recorded_version() {
    let world = up(one_node()).await;
    replace_container(&world, "4.2.9", &["IS_UPGRADE=true".to_owned()]).await;
    let docker = world.nodes[0].docker().unwrap();
    let pool = world.meta_pool().await.unwrap();
    for recorded in [None, Some("4.0.0-CE")] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {}.oms_version",
            world.rm
        )))
        .execute(&pool)
        .await
        .unwrap();
        if let Some(version) = recorded {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {}.oms_version(version) VALUES ('{version}')",
                world.rm
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
        let (code, output) = exec_init(&docker, &world.container, vec![]).await.unwrap();
        assert_ne!(code, 0, "init accepted {recorded:?}");
        assert!(
            output.contains("Version before 4.1.1 is not allowed to upgrade"),
            "{recorded:?}: {output}"
        );
    }
    world.down().await.unwrap();
}

#[tokio::test]
async fn init_without_is_upgrade_wipes_the_meta_data() {
    let world = up(one_node()).await;
    assert_eq!(
        count(&world, &format!("{}.oms_project", world.rm)).await,
        50
    );
    replace_container(&world, "4.2.9", &[]).await;
    let docker = world.nodes[0].docker().unwrap();
    let (code, output) = exec_init(&docker, &world.container, vec![]).await.unwrap();
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("all existing meta data is dropped"),
        "{output}"
    );
    assert_eq!(
        count(&world, &format!("{}.oms_project", world.rm)).await,
        0,
        "the projects survived a wipe"
    );
    world.down().await.unwrap();
}

#[tokio::test]
async fn heartbeats_stop_when_the_container_stops() {
    let world = up(one_node()).await;
    let table = format!("{}.heatbeat_sequence", world.cm_hb["hz"]);
    let first = count(&world, &table).await;
    world::poll_until(
        "a heartbeat while running",
        Duration::from_secs(10),
        || async { (count(&world, &table).await > first).then_some(()) },
    )
    .await;

    let docker = world.nodes[0].docker().unwrap();
    docker
        .stop_container(
            &world.container,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    let stopped = count(&world, &table).await;
    // Not a wait for a condition but the window the absence is observed in: more than two of
    // the simulator's 1 s heartbeat periods.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        count(&world, &table).await,
        stopped,
        "heartbeats went on after the stop"
    );
    assert_eq!(
        world.host_statuses().await.unwrap()[&world.nodes[0].ip],
        "OFFLINE"
    );
    world.down().await.unwrap();
}

#[tokio::test]
async fn store_data_survives_a_container_replaced_with_the_same_mounts() {
    let world = up(one_node()).await;
    let before = world.nodes[0]
        .wait_store_longer_than(0, Duration::from_secs(20))
        .await;
    replace_container(&world, "4.2.8", &[]).await;
    let after = world.nodes[0]
        .wait_store_longer_than(before.len(), Duration::from_secs(20))
        .await;
    assert!(
        after.starts_with(&before),
        "store data was not kept and extended"
    );
    world.down().await.unwrap();
}

#[tokio::test]
async fn two_regions_get_their_own_heartbeat_databases_and_cm_nodes() {
    let spec = WorldSpec {
        regions: vec![
            RegionSpec {
                name: "hz".into(),
                nodes: 1,
                shared_cm_nodes: true,
            },
            RegionSpec {
                name: "sh".into(),
                nodes: 2,
                shared_cm_nodes: false,
            },
        ],
        heartbeat_rows_per_region: 10,
        ..WorldSpec::two_nodes()
    };
    let world = up(spec).await;
    assert_eq!(world.cm_hb.len(), 2);
    for hb in world.cm_hb.values() {
        assert!(count(&world, &format!("{hb}.heatbeat_sequence")).await >= 10);
    }
    let sh: Vec<_> = world.nodes.iter().filter(|n| n.region == "sh").collect();
    assert_eq!(
        sh[0].cm_nodes,
        [sh[0].ip.clone()],
        "differing cm_nodes: each node lists itself"
    );
    assert_eq!(
        world
            .host_statuses()
            .await
            .unwrap()
            .values()
            .filter(|s| *s == "ONLINE")
            .count(),
        3
    );
    world.down().await.unwrap();
}

#[tokio::test]
async fn with_a_certificate_mounted_health_is_https_only_and_can_answer_chunked_or_failing() {
    let world = up(WorldSpec {
        https: true,
        // Hosts of its own: a fresh daemon loads this build's simulator images (a shared
        // host keeps whatever image an earlier build tagged).
        private_hosts: true,
        ..one_node()
    })
    .await;
    let node = &world.nodes[0];
    // curl verifies the certificate against the world's CA and that it names the node's IP.
    let answer = node.health_answer().await.unwrap();
    assert!(node.health_url().starts_with("https://"));
    assert_eq!(answer.healthy(), Some(true), "{answer:?}");

    let plain = world::http_get(&format!("http://{}:8089/oms/health", node.ip), None)
        .await
        .unwrap();
    assert_eq!(plain.status, 400, "{plain:?}");
    assert!(
        plain
            .body
            .contains("The plain HTTP request was sent to HTTPS port"),
        "{plain:?}"
    );

    let chunked_knob = node.run_dir().join("sim-health-chunked");
    std::fs::write(&chunked_knob, "").unwrap();
    let chunked = node.health_answer().await.unwrap();
    assert!(
        chunked.has_header("Transfer-Encoding", "chunked"),
        "{chunked:?}"
    );
    assert_eq!(chunked.healthy(), Some(true), "{chunked:?}");
    std::fs::remove_file(&chunked_knob).unwrap();

    let status_knob = node.run_dir().join("sim-health-status");
    std::fs::write(&status_knob, "503").unwrap();
    let failing = node.health_answer().await.unwrap();
    assert_eq!(failing.status, 503, "{failing:?}");
    std::fs::remove_file(&status_knob).unwrap();
    let answer = node.health_answer().await.unwrap();
    assert_eq!((answer.status, answer.healthy()), (200, Some(true)));
    assert!(answer.has_header("Content-Length", &answer.body.len().to_string()));
    world.down().await.unwrap();
}
