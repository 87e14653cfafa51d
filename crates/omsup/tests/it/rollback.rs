//! `omsup rollback` through the real binary on real worlds: after a successful apply the meta
//! databases equal their backups and the world is back where it was; the rollback matrix (an
//! apply killed before and after every step, then rolled back); a rollback killed half-way and
//! resumed; a corrupted backup refused before anything is dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use omsup_testworld::{World, WorldSpec};
use serde_json::Value;

use crate::apply::{checked_plan_steps, matrix_part, plan_arg, plan_steps, show};
use crate::support::{omsup, omsup_env, resume_after_kill, rollback_after_kill, up};

type Checksums = BTreeMap<String, (u64, Option<i64>)>;

/// The world before any upgrade.
pub(crate) struct Original {
    rm: Checksums,
    ha: Value,
    binds: BTreeMap<String, Vec<String>>,
}

async fn binds_of(world: &World, ip: &str) -> Vec<String> {
    let node = world.nodes.iter().find(|n| n.ip == ip).unwrap();
    let inspect = node
        .docker()
        .unwrap()
        .inspect_container(&world.container, None)
        .await
        .unwrap();
    let mut binds: Vec<String> = inspect
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            format!(
                "{}:{}",
                m.source.unwrap_or_default(),
                m.destination.unwrap_or_default()
            )
        })
        .collect();
    binds.sort();
    binds
}

async fn ha_config(world: &World) -> Value {
    let pool = world.meta_pool().await.unwrap();
    omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap()
        .to_value()
}

pub(crate) async fn original(world: &World) -> Original {
    let mut binds = BTreeMap::new();
    for node in &world.nodes {
        binds.insert(node.ip.clone(), binds_of(world, &node.ip).await);
    }
    Original {
        rm: world.table_checksums(&world.rm).await.unwrap(),
        ha: ha_config(world).await,
        binds,
    }
}

/// `ha.config` without `refetchStoreIntervalMin`, which a restore may raise on purpose.
fn ha_without_refetch(ha: &Value) -> Value {
    let mut ha = ha.clone();
    if let Some(object) = ha.as_object_mut() {
        object.remove("refetchStoreIntervalMin");
    }
    ha
}

/// Old containers running the old image with the same mounts and restart policy, every node
/// ONLINE and healthy,
/// HA as it was, the pre-upgrade rows, and `omsup plan` showing the upgrade again.
pub(crate) async fn assert_back_to_original(world: &World, original: &Original, context: &str) {
    for node in &world.nodes {
        let docker = node.docker().unwrap();
        let container = docker
            .inspect_container(&world.container, None)
            .await
            .unwrap_or_else(|e| panic!("{context}: no container on {}: {e}", node.ip));
        assert_eq!(
            container.config.unwrap().image.as_deref(),
            Some("oms:feature_4.2.8-ce"),
            "{context}: {}",
            node.ip
        );
        assert_eq!(
            container.state.unwrap().running,
            Some(true),
            "{context}: {}",
            node.ip
        );
        assert_eq!(
            container
                .host_config
                .and_then(|h| h.restart_policy)
                .and_then(|p| p.name)
                .map(|name| name.to_string()),
            world.spec.operator.restart,
            "{context}: the old container's restart policy on {} (`no` while it was kept)",
            node.ip
        );
        assert_eq!(
            binds_of(world, &node.ip).await,
            original.binds[&node.ip],
            "{context}: the mounts of {} changed",
            node.ip
        );
        let kept = docker
            .inspect_container(&format!("{}-omsup-4.2.8", world.container), None)
            .await;
        assert!(
            kept.is_err(),
            "{context}: the kept old container must have its name back"
        );
        assert_eq!(
            omsup_testworld::world::health(&node.ip).await,
            Some(true),
            "{context}: {} unhealthy",
            node.ip
        );
    }
    world
        .wait_online(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let rm = world.table_checksums(&world.rm).await.unwrap();
    for table in ["oms_project", "cluster_info"] {
        assert_eq!(rm[table], original.rm[table], "{context}: {table} changed");
    }
    assert!(
        !rm.contains_key("oms_alarm_event"),
        "{context}: the 4.2.9 schema is still there"
    );
    let ha = ha_config(world).await;
    assert_eq!(
        ha_without_refetch(&ha),
        ha_without_refetch(&original.ha),
        "{context}: ha.config"
    );
    let plan = plan_arg(world);
    let again = omsup(&["plan", "-f", &plan, "--detailed-exitcode"]);
    assert_eq!(
        again.code,
        2,
        "{context}: the upgrade must be planned again\n{}",
        show(&again)
    );
}

#[tokio::test]
async fn rollback_after_a_successful_apply_restores_the_backups_and_a_killed_rollback_resumes() {
    let world = up(WorldSpec::two_nodes()).await;
    let original = original(&world).await;
    let plan = plan_arg(&world);
    let steps = plan_steps(&plan);
    let first_start = steps.iter().find(|s| s.ends_with(".start-new")).unwrap();

    // Stop the apply right after the backups, to read what they hold, then finish it.
    let point = format!("before:{first_start}");
    let killed = omsup_env(
        &["apply", "-f", &plan, "--yes"],
        &[("OMSUP_FAILPOINTS", &point)],
    );
    assert_eq!(killed.code, -1, "{}", show(&killed));
    let mut at_backup: BTreeMap<String, Checksums> = BTreeMap::new();
    for database in world.databases() {
        at_backup.insert(
            database.clone(),
            world.table_checksums(&database).await.unwrap(),
        );
    }
    let resumed = resume_after_kill(&plan);
    assert_eq!(resumed.code, 0, "{}", show(&resumed));

    // No terminal, no --yes: refused, with the data-loss warning shown.
    let refused = omsup(&["rollback", "-f", &plan]);
    assert_eq!(refused.code, 3, "{}", show(&refused));
    assert!(
        refused.stdout.contains("is lost"),
        "the data-loss warning must be shown\n{}",
        show(&refused)
    );

    // Kill the rollback after the restores, before the old containers start.
    let start_old = format!("before:undo.node[{}].start-old", world.nodes[0].ip);
    let killed = omsup_env(
        &["rollback", "-f", &plan, "--yes"],
        &[("OMSUP_FAILPOINTS", &start_old)],
    );
    assert_eq!(killed.code, -1, "{}", show(&killed));
    for database in world.databases() {
        let now = world.table_checksums(&database).await.unwrap();
        for (table, sums) in &at_backup[&database] {
            // HA is switched off again by the rollback itself (it is restored at the end).
            if table == "oms_normal_config" {
                continue;
            }
            assert_eq!(
                now.get(table),
                Some(sums),
                "{database}.{table} differs from its backup"
            );
        }
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            at_backup[&database].keys().collect::<Vec<_>>(),
            "{database}: tables differ from the backup"
        );
    }
    let resumed = resume_after_kill(&plan);
    assert_eq!(
        resumed.code,
        0,
        "resume of the rollback\n{}",
        show(&resumed)
    );
    assert_back_to_original(&world, &original, "rollback after apply").await;

    let history = omsup(&["history", "-f", &plan, "--format", "json"]);
    assert!(
        history.stdout.contains("\"rollback\""),
        "{}",
        show(&history)
    );
}

#[tokio::test]
async fn a_corrupted_backup_stops_the_rollback_before_anything_is_dropped() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let applied = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_eq!(applied.code, 0, "{}", show(&applied));
    let backup = std::fs::read_dir(world.dir.join("backups"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(format!("{}.sql", world.rm)))
        .find(|path| path.is_file())
        .expect("the rm backup file");
    let mut bytes = std::fs::read(&backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&backup, bytes).unwrap();

    let refused = omsup(&["rollback", "-f", &plan, "--yes"]);
    assert_eq!(refused.code, 1, "{}", show(&refused));
    assert!(
        refused.stderr.contains(&backup.display().to_string()),
        "the error must name the file\n{}",
        show(&refused)
    );
    // Nothing was dropped or stopped: still upgraded.
    let rm = world.table_checksums(&world.rm).await.unwrap();
    assert!(rm.contains_key("oms_alarm_event"), "rm was touched");
    let again = omsup(&["plan", "-f", &plan, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", show(&again));
}

/// Kill the apply at `moment` of step number `index`, roll back, and check the world is as it
/// was. Returns the world's plan steps; panics when the plan has no such step.
async fn kill_then_rollback(moment: &'static str, index: usize) -> Vec<String> {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let steps = checked_plan_steps(&world).await;
    let step = steps
        .get(index)
        .unwrap_or_else(|| panic!("the plan has no step {index}: {steps:?}"));
    let context = format!("apply killed {moment} {step}, then rolled back");
    let original = original(&world).await;
    let point = format!("{moment}:{step}");
    let killed = omsup_env(
        &["apply", "-f", &plan, "--yes"],
        &[("OMSUP_FAILPOINTS", &point)],
    );
    assert_eq!(killed.code, -1, "{context}\n{}", show(&killed));
    let rolled_back = rollback_after_kill(&plan);
    assert_eq!(rolled_back.code, 0, "{context}\n{}", show(&rolled_back));
    assert_back_to_original(&world, &original, &context).await;
    let resume = omsup(&["resume", "-f", &plan, "--yes"]);
    assert!(
        resume.stderr.contains("Nothing to resume"),
        "{context}: the rolled-back run must be closed\n{}",
        show(&resume)
    );
    eprintln!("rollback matrix: {context}: back to the original state");
    steps
}

#[tokio::test]
async fn rollback_matrix_part_1() {
    matrix_part("rollback matrix", 0, 4, kill_then_rollback).await;
}

#[tokio::test]
async fn rollback_matrix_part_2() {
    matrix_part("rollback matrix", 1, 4, kill_then_rollback).await;
}

#[tokio::test]
async fn rollback_matrix_part_3() {
    matrix_part("rollback matrix", 2, 4, kill_then_rollback).await;
}

#[tokio::test]
async fn rollback_matrix_part_4() {
    matrix_part("rollback matrix", 3, 4, kill_then_rollback).await;
}
