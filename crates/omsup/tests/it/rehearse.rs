//! `omsup rehearse` on real worlds: the target's init against copies of the meta databases in
//! a throwaway container on a spare host, the deployment running all along. A successful
//! rehearsal, one killed midway and cleaned by `--clean`, and one that catches the failure
//! apply would otherwise meet inside its downtime window leave the real databases and the
//! running containers as they were, and nothing of their own behind.

use std::collections::BTreeMap;

use omsup_testworld::hosts::{self, NodeHost};
use omsup_testworld::world::{self, World, replace_stale_image};
use omsup_testworld::{RegionSpec, WorldSpec};

use crate::apply::show;
use crate::support::{WorldGuard, held_lock_id, omsup, omsup_env, up};

/// One node on a host of its own, and a spare host of the same world for the rehearsal.
struct Stage {
    world: WorldGuard,
    spare: SpareHost,
    plan: String,
}

/// The world's spare private host, removed when dropped.
struct SpareHost(NodeHost);

impl Drop for SpareHost {
    fn drop(&mut self) {
        let _ = hosts::remove(&self.0);
    }
}

async fn stage() -> Stage {
    let world = up(WorldSpec {
        regions: vec![RegionSpec {
            name: "hz".into(),
            nodes: 1,
            shared_cm_nodes: true,
        }],
        projects: 20,
        heartbeat_rows_per_region: 500,
        private_hosts: true,
        ..WorldSpec::two_nodes()
    })
    .await;
    let spare = SpareHost(world::world_private_hosts(&world.id).remove(1));
    hosts::ensure_private(std::slice::from_ref(&spare.0)).expect("the spare host starts");
    let docker = world::connect_docker(&spare.0.socket).expect("the spare host's daemon");
    // This build's target image (the host's data root may keep another build's).
    replace_stale_image(&docker, &world.spec.target_version)
        .await
        .expect("the target image on the spare host");
    let mut text = std::fs::read_to_string(&world.plan_path).unwrap();
    text.push_str(&format!(
        "\n[rehearsal]\ndocker = \"{}\"\nnetwork = \"host\"\nhost_ip = \"{}\"\n",
        spare.0.unix_url(),
        spare.0.address
    ));
    std::fs::write(&world.plan_path, text).unwrap();
    let plan = world.plan_path.display().to_string();
    Stage { world, spare, plan }
}

/// What must not change: every real table's rows and checksum (rm and cm; cm_hb's tables, whose
/// rows the running OMS adds every second), and each container of the node (id, start time).
#[derive(Debug, PartialEq)]
struct Untouched {
    checksums: BTreeMap<String, BTreeMap<String, (u64, Option<i64>)>>,
    heartbeat_tables: Vec<String>,
    containers: Vec<(String, String, String)>,
    ha_events: usize,
}

async fn untouched(world: &World) -> Untouched {
    let mut checksums = BTreeMap::new();
    for database in [&world.rm, &world.cm] {
        checksums.insert(
            database.clone(),
            world.table_checksums(database).await.unwrap(),
        );
    }
    let mut heartbeat_tables = Vec::new();
    for database in world.cm_hb.values() {
        heartbeat_tables.extend(world.table_checksums(database).await.unwrap().into_keys());
    }
    let docker = world.nodes[0].docker().unwrap();
    let mut containers = Vec::new();
    for summary in all_containers(&docker).await {
        let id = summary.id.unwrap_or_default();
        let inspect = docker.inspect_container(&id, None).await.unwrap();
        let state = inspect.state.unwrap_or_default();
        containers.push((
            inspect.name.unwrap_or_default(),
            id,
            format!("{:?} {:?}", state.status, state.started_at),
        ));
    }
    containers.sort();
    Untouched {
        checksums,
        heartbeat_tables,
        containers,
        ha_events: world.ha_events().await.unwrap().len(),
    }
}

/// Every container of a daemon, running or not.
async fn all_containers(docker: &bollard::Docker) -> Vec<bollard::models::ContainerSummary> {
    docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .build(),
        ))
        .await
        .unwrap()
}

/// The scratch databases of the world's deployment, and the rehearsal containers on the spare host.
async fn leftovers(stage: &Stage) -> (Vec<String>, Vec<String>) {
    let databases = stage
        .world
        .databases_like(&format!("{}\\_rh\\_%", deployment_prefix(&stage.world)))
        .await
        .unwrap();
    let docker = world::connect_docker(&stage.spare.0.socket).unwrap();
    let containers = all_containers(&docker)
        .await
        .into_iter()
        .filter(|c| {
            c.labels
                .as_ref()
                .is_some_and(|labels| labels.contains_key("omsup.rehearsal"))
        })
        .filter_map(|c| c.names?.into_iter().next())
        .collect();
    (databases, containers)
}

/// The deployment's name as scratch names start, escaped for `LIKE`.
fn deployment_prefix(world: &World) -> String {
    crate::plan::read_plan(world)
        .deployment
        .name
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "\\_")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rehearsal_killed_midway_is_cleaned_and_the_next_one_succeeds_touching_nothing_real() {
    let stage = stage().await;
    let before = untouched(&stage.world).await;

    // Killed right before init: the copies and the throwaway container are left.
    let killed = omsup_env(
        &["rehearse", "-f", &stage.plan],
        &[("OMSUP_FAILPOINTS", "before:rehearse.init")],
    );
    assert_eq!(
        killed.code,
        -1,
        "killed by the failpoint:\n{}",
        show(&killed)
    );
    let (databases, containers) = leftovers(&stage).await;
    assert_eq!(databases.len(), 3, "rm, cm and cm_hb copies: {databases:?}");
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(untouched(&stage.world).await, before);

    // `--clean` (taking over the killed one's lock) removes exactly those.
    let lock = held_lock_id(&stage.plan).expect("the killed rehearsal's lock");
    let clean = omsup(&[
        "rehearse",
        "-f",
        &stage.plan,
        "--clean",
        "--force-unlock",
        &lock,
    ]);
    assert_eq!(clean.code, 0, "{}", show(&clean));
    assert!(clean.stderr.contains(&databases[0]), "{}", show(&clean));
    assert_eq!(leftovers(&stage).await, (vec![], vec![]));

    // A whole rehearsal: init upgrades the copies; the deployment is as it was.
    let run = omsup(&["rehearse", "-f", &stage.plan]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert!(
        run.stdout.contains("succeeded") && run.stdout.contains("4.2.9"),
        "{}",
        show(&run)
    );
    assert!(run.stderr.contains("rehearse.init"), "{}", show(&run));
    assert_eq!(leftovers(&stage).await, (vec![], vec![]));
    assert_eq!(untouched(&stage.world).await, before);
    let status = omsup(&["status", "-f", &stage.plan, "--format", "json"]);
    assert!(held_lock_id(&stage.plan).is_none(), "{}", show(&status));

    // What it measured feeds the plan's downtime estimate, of this very plan.
    let plan = omsup(&["plan", "-f", &stage.plan]);
    assert_eq!(plan.code, 0, "{}", show(&plan));
    assert!(
        plan.stdout.contains("Estimated downtime window: ~")
            && plan.stdout.contains("ago of this plan"),
        "{}",
        show(&plan)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_rehearsal_shows_the_init_failure_apply_would_meet_in_its_window() {
    let stage = stage().await;
    // A project the target's migration refuses (the simulator's data-driven failure).
    stage
        .world
        .execute(&format!(
            "INSERT INTO `{}`.oms_project(name, status) VALUES ('legacy-sync', 'UNMIGRATABLE')",
            stage.world.rm
        ))
        .await
        .unwrap();
    let before = untouched(&stage.world).await;

    let run = omsup(&["rehearse", "-f", &stage.plan]);
    assert_eq!(run.code, 1, "{}", show(&run));
    for expected in [
        "error: rehearsal",
        "`rehearse.init`",
        "UNMIGRATABLE",
        "legacy-sync",
        "apply` would fail the same way",
    ] {
        assert!(
            run.stderr.contains(expected),
            "no {expected:?}:\n{}",
            show(&run)
        );
    }
    assert_eq!(leftovers(&stage).await, (vec![], vec![]));
    assert_eq!(untouched(&stage.world).await, before);

    // What the rehearsal caught: apply meets it inside its downtime window.
    let apply = omsup(&["apply", "-f", &stage.plan, "--yes"]);
    assert_eq!(apply.code, 1, "{}", show(&apply));
    assert!(
        apply.stderr.contains(".init`") && apply.stderr.contains("legacy-sync"),
        "{}",
        show(&apply)
    );
    assert!(
        apply
            .stderr
            .contains("warning: no successful rehearsal of this plan"),
        "{}",
        show(&apply)
    );
}
