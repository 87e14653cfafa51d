//! Which steps, which dependencies, which lanes.

use std::collections::BTreeMap;

use omsup_engine::container::EnvValue;
use omsup_engine::plan;
use omsup_engine::steps::UpgradePlan;

use crate::synthetic;

fn ids(plan: &UpgradePlan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.id.as_str()).collect()
}

fn deps<'p>(plan: &'p UpgradePlan, id: &str) -> Vec<&'p str> {
    let mut deps: Vec<&str> = plan
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
        .depends_on
        .iter()
        .map(omsup_engine::StepId::as_str)
        .collect();
    deps.sort();
    deps
}

#[test]
fn two_nodes_one_region_get_every_step_with_safe_dependencies() {
    let file = synthetic::plan(1, 2);
    let planned = plan(&file, b"x", &synthetic::world(&file, "4.2.8"));
    assert!(
        planned.diff.findings.is_empty(),
        "{:#?}",
        planned.diff.findings
    );
    assert_eq!(
        ids(&planned),
        [
            "preflight",
            "node[10.0.0.2].load-image",
            "node[10.0.1.2].load-image",
            "ha.off",
            "region[r0].prune-heartbeats",
            "node[10.0.0.2].stop-old",
            "node[10.0.1.2].stop-old",
            "db[rm].backup",
            "db[cm].backup",
            "db[hb0].backup",
            "node[10.0.0.2].start-new",
            "node[10.0.1.2].start-new",
            "node[10.0.0.2].wait-ready",
            "node[10.0.1.2].wait-ready",
            "region[r0].init",
            "online.verify",
            "ha.restore",
        ]
    );
    assert_eq!(
        deps(&planned, "ha.off"),
        [
            "node[10.0.0.2].load-image",
            "node[10.0.1.2].load-image",
            "preflight"
        ],
        "the window never waits for an image load"
    );
    assert_eq!(deps(&planned, "region[r0].prune-heartbeats"), ["ha.off"]);
    assert_eq!(
        deps(&planned, "node[10.0.0.2].stop-old"),
        ["ha.off", "region[r0].prune-heartbeats"],
        "heartbeats are pruned before the window opens"
    );
    assert_eq!(
        deps(&planned, "db[rm].backup"),
        ["node[10.0.0.2].stop-old", "node[10.0.1.2].stop-old"]
    );
    assert_eq!(
        deps(&planned, "db[hb0].backup"),
        ["node[10.0.0.2].stop-old", "node[10.0.1.2].stop-old"]
    );
    assert_eq!(
        deps(&planned, "node[10.0.0.2].start-new"),
        [
            "db[cm].backup",
            "db[hb0].backup",
            "db[rm].backup",
            "node[10.0.0.2].load-image",
            "node[10.0.0.2].stop-old"
        ]
    );
    assert_eq!(
        deps(&planned, "region[r0].init"),
        ["node[10.0.0.2].wait-ready", "node[10.0.1.2].wait-ready"]
    );
    let load = planned
        .steps
        .iter()
        .find(|s| s.id == "node[10.0.0.2].load-image")
        .unwrap();
    assert!(
        !load.downtime && load.lane == 1,
        "image loads run outside the window, in parallel"
    );
    let prune = planned
        .steps
        .iter()
        .find(|s| s.id == "region[r0].prune-heartbeats")
        .unwrap();
    assert!(!prune.downtime, "the prune runs before the window");
    assert_eq!(
        planned.downtime_steps(),
        11,
        "stops, backups, starts, waits, init, verify"
    );
}

#[test]
fn every_stop_waits_for_every_regions_prune_so_the_window_opens_once() {
    let file = synthetic::plan(3, 2);
    let planned = plan(&file, b"x", &synthetic::world(&file, "4.2.8"));
    let prunes: Vec<&str> = ids(&planned)
        .into_iter()
        .filter(|id| id.ends_with(".prune-heartbeats"))
        .collect();
    assert_eq!(prunes.len(), 3, "{:?}", ids(&planned));
    let stops: Vec<&str> = ids(&planned)
        .into_iter()
        .filter(|id| id.ends_with(".stop-old"))
        .collect();
    assert_eq!(stops.len(), 6);
    for stop in stops {
        let deps = deps(&planned, stop);
        for prune in &prunes {
            assert!(
                deps.contains(prune),
                "{stop} does not wait for {prune}: {deps:?}"
            );
        }
        let step = planned.steps.iter().find(|s| s.id == stop).unwrap();
        assert!(step.downtime);
    }
    for prune in &prunes {
        let step = planned.steps.iter().find(|s| s.id == *prune).unwrap();
        assert!(!step.downtime, "{prune} runs before the window");
    }
}

#[test]
fn a_node_already_upgraded_gets_no_steps() {
    let file = synthetic::plan(1, 2);
    let mut world = synthetic::world(&file, "4.2.8");
    let docker = synthetic::node_mut(&mut world, "10.0.1.2");
    docker.container = Some(synthetic::container(
        "10.0.1.2",
        "4.2.9",
        vec!["10.0.0.2".into(), "10.0.1.2".into()],
    ));
    docker.target_image_id = Some("sha256:4.2.9".into());
    let planned = plan(&file, b"x", &world);
    assert!(
        ids(&planned).iter().all(|id| !id.contains("10.0.1.2")),
        "{:?}",
        ids(&planned)
    );
    assert!(ids(&planned).contains(&"node[10.0.0.2].start-new"));
    assert!(ids(&planned).contains(&"region[r0].init"));
}

#[test]
fn a_fully_upgraded_deployment_has_nothing_to_do() {
    let file = synthetic::plan(1, 2);
    let mut world = synthetic::world(&file, "4.2.9");
    for ip in ["10.0.0.2", "10.0.1.2"] {
        synthetic::node_mut(&mut world, ip).target_image_id = Some("sha256:4.2.9".into());
    }
    let planned = plan(&file, b"x", &world);
    assert!(planned.is_empty(), "{:?}", ids(&planned));
}

#[test]
fn a_route_the_rules_refuse_is_a_blocking_finding_naming_the_allowed_sources() {
    let file = synthetic::plan(1, 1);
    let planned = plan(&file, b"x", &synthetic::world(&file, "4.1.0"));
    let finding = planned
        .diff
        .findings
        .iter()
        .find(|f| f.code == "upgrade-path")
        .expect("an upgrade-path finding");
    assert!(
        finding
            .hint
            .as_deref()
            .unwrap()
            .contains("4.2.0-CE to 4.2.8-CE"),
        "{finding:?}"
    );
    assert!(planned.has_blocking_findings());
}

#[test]
fn a_changed_mount_blocks_and_names_the_node_and_path() {
    let mut file = synthetic::plan(1, 1);
    file.regions[0].nodes[0].mounts = Some(omsup_model::plan::Mounts {
        config: "/data/10.0.0.2/home/admin/conf/config.yaml".into(),
        logs: "/data/10.0.0.2/home/admin/logs".into(),
        store: "/data/10.0.0.2/home/ds/store".into(),
        run: "/data/10.0.0.2/home/ds/run".into(),
    });
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, "10.0.0.2")
        .container
        .as_mut()
        .unwrap();
    container.binds[2].host = "/elsewhere/store".into();
    let planned = plan(&file, b"x", &world);
    let finding = planned
        .diff
        .findings
        .iter()
        .find(|f| f.code == "mount-mismatch")
        .expect("a mount-mismatch finding");
    assert_eq!(finding.subject, "node[10.0.0.2]");
    assert!(
        finding.message.contains("/home/ds/store") && finding.message.contains("/elsewhere/store"),
        "{finding:?}"
    );
}

#[test]
fn differing_cm_nodes_init_per_node_and_shared_ones_once_per_region() {
    let file = synthetic::plan(2, 2);
    let mut world = synthetic::world(&file, "4.2.8");
    for ip in ["10.1.0.2", "10.1.1.2"] {
        let container = synthetic::node_mut(&mut world, ip)
            .container
            .as_mut()
            .unwrap();
        container.config.as_mut().unwrap().cm_nodes = vec![ip.to_owned()];
    }
    let planned = plan(&file, b"x", &world);
    let inits: Vec<&str> = ids(&planned)
        .into_iter()
        .filter(|id| id.ends_with(".init"))
        .collect();
    assert_eq!(
        inits,
        [
            "region[r0].init",
            "node[10.1.0.2].init",
            "node[10.1.1.2].init"
        ]
    );
    assert_eq!(
        deps(&planned, "node[10.1.0.2].init"),
        ["node[10.1.0.2].wait-ready", "region[r0].init"],
        "inits run one after another"
    );
}

#[test]
fn ha_already_off_plans_no_ha_steps() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    if let omsup_engine::observed::MetaDbReach::Reachable(db) = &mut world.meta_db {
        db.ha_config = Some(serde_json::json!({"enable": false}));
    }
    let planned = plan(&file, b"x", &world);
    assert!(
        !ids(&planned).contains(&"ha.off") && !ids(&planned).contains(&"ha.restore"),
        "{:?}",
        ids(&planned)
    );
}

#[test]
fn an_unreachable_daemon_is_a_finding_not_a_panic() {
    let file = synthetic::plan(1, 2);
    let mut world = synthetic::world(&file, "4.2.8");
    world.nodes[1].docker = omsup_engine::observed::DockerReach::Unreachable {
        error: "connection refused".into(),
    };
    let planned = plan(&file, b"x", &world);
    assert!(
        planned
            .diff
            .findings
            .iter()
            .any(|f| f.code == "docker-unreachable" && f.subject == "node[10.0.1.2]")
    );
    assert!(planned.has_blocking_findings());
}

#[test]
fn a_saved_plan_names_each_changed_fact() {
    let file = synthetic::plan(1, 1);
    let world = synthetic::world(&file, "4.2.8");
    let saved = omsup_engine::SavedPlan::new("p.toml".into(), plan(&file, b"x", &world));
    assert!(saved.changed_facts(&world.facts()).is_empty());
    let mut changed = world.clone();
    synthetic::node_mut(&mut changed, "10.0.0.2")
        .container
        .as_mut()
        .unwrap()
        .id = "other".into();
    let changes = saved.changed_facts(&changed.facts());
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].name, "node[10.0.0.2].container.id");
}

/// Every dependency exists, comes earlier in the order and in an earlier lane, no id repeats,
/// and petgraph finds no cycle: for several shapes and partial worlds.
#[test]
fn the_step_graph_is_acyclic_and_ordered_for_many_shapes() {
    use petgraph::graphmap::DiGraphMap;

    for (regions, nodes) in [(1, 1), (1, 2), (2, 2), (3, 4), (5, 1)] {
        let file = synthetic::plan(regions, nodes);
        let full = synthetic::world(&file, "4.2.8");
        let mut partial = full.clone();
        let first = file.regions[0].nodes[0].ip.clone();
        let docker = synthetic::node_mut(&mut partial, &first);
        docker.container = Some(synthetic::container(&first, "4.2.9", vec![first.clone()]));
        docker.target_image_id = Some("sha256:4.2.9".into());
        for world in [full, partial] {
            let planned = plan(&file, b"x", &world);
            assert!(!planned.is_empty(), "{regions}x{nodes}");
            let position: std::collections::BTreeMap<&str, usize> = planned
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.as_str(), i))
                .collect();
            assert_eq!(position.len(), planned.steps.len(), "ids are unique");
            let mut graph = DiGraphMap::<usize, ()>::new();
            for (i, step) in planned.steps.iter().enumerate() {
                graph.add_node(i);
                let mut expected_lane = 0;
                for dep in &step.depends_on {
                    let d = *position
                        .get(dep.as_str())
                        .unwrap_or_else(|| panic!("{} depends on missing {dep}", step.id));
                    assert!(d < i, "{} comes before its dependency {dep}", step.id);
                    expected_lane = expected_lane.max(planned.steps[d].lane + 1);
                    graph.add_edge(d, i, ());
                }
                assert_eq!(step.lane, expected_lane, "{}", step.id);
            }
            assert!(!petgraph::algo::is_cyclic_directed(&graph));
        }
    }
}

#[test]
fn each_step_says_how_rollback_undoes_it() {
    use omsup_engine::Compensation;

    let file = synthetic::plan(1, 2);
    let planned = plan(&file, b"x", &synthetic::world(&file, "4.2.8"));
    let kind = |id: &str| planned.step(id).unwrap().kind.compensation();
    assert_eq!(kind("ha.off"), Compensation::RestoreHaConfig);
    assert_eq!(
        kind("node[10.0.0.2].stop-old"),
        Compensation::StartOldContainer {
            node: "10.0.0.2".into()
        }
    );
    assert_eq!(
        kind("node[10.0.1.2].start-new"),
        Compensation::ReplaceNewWithOld {
            node: "10.0.1.2".into()
        }
    );
    assert_eq!(kind("region[r0].init"), Compensation::RestoreMetaDatabases);
    assert_eq!(kind("db[rm].backup"), Compensation::Nothing);
    assert_eq!(kind("ha.restore"), Compensation::TurnHaOff);
    assert!(
        planned
            .steps
            .iter()
            .all(|s| !s.kind.compensation_text().is_empty())
    );
}

#[test]
fn only_the_init_is_left_when_every_container_is_new_but_the_schema_is_old() {
    let file = synthetic::plan(1, 2);
    let mut world = synthetic::world(&file, "4.2.9");
    for ip in ["10.0.0.2", "10.0.1.2"] {
        synthetic::node_mut(&mut world, ip).target_image_id = Some("sha256:4.2.9".into());
    }
    if let omsup_engine::observed::MetaDbReach::Reachable(db) = &mut world.meta_db {
        db.oms_version = "4.2.8".parse().ok();
    }
    let planned = plan(&file, b"x", &world);
    assert_eq!(
        ids(&planned),
        [
            "preflight",
            "ha.off",
            "region[r0].init",
            "online.verify",
            "ha.restore"
        ]
    );
}

#[test]
fn secret_looking_environment_values_never_reach_the_plan() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, "10.0.0.2")
        .container
        .as_mut()
        .unwrap();
    container
        .env
        .insert("TSDB_PASSWORD".into(), "hunter2-secret-value".into());
    container
        .env
        .insert("AWS_ACCESS_KEY".into(), "AKIA-value".into());
    let planned = plan(&file, b"x", &world);
    let saved =
        serde_json::to_string(&omsup_engine::SavedPlan::new("p".into(), planned.clone())).unwrap();
    assert!(!saved.contains("hunter2-secret-value") && !saved.contains("AKIA-value"));
    let new = planned.new_container("10.0.0.2").unwrap();
    assert_eq!(
        new.env["TSDB_PASSWORD"],
        EnvValue::FromOldContainer,
        "kept, its value copied from the old container when creating"
    );
    assert_eq!(
        new.shown_env()["OMS_HOST_IP"],
        "10.0.0.2",
        "other values are kept"
    );
    let old_env = BTreeMap::from([
        (
            "TSDB_PASSWORD".to_owned(),
            "hunter2-secret-value".to_owned(),
        ),
        ("AWS_ACCESS_KEY".to_owned(), "AKIA-value".to_owned()),
    ]);
    assert!(
        new.create_env(&old_env)
            .unwrap()
            .contains(&"TSDB_PASSWORD=hunter2-secret-value".to_owned())
    );
}

#[test]
fn a_new_container_waits_for_the_backups_it_writes_to_only() {
    let file = synthetic::plan(2, 1);
    let planned = plan(&file, b"x", &synthetic::world(&file, "4.2.8"));
    assert_eq!(
        deps(&planned, "node[10.1.0.2].start-new"),
        [
            "db[cm].backup",
            "db[hb1].backup",
            "db[rm].backup",
            "node[10.1.0.2].load-image",
            "node[10.1.0.2].stop-old"
        ]
    );
}

#[test]
fn each_step_has_one_name_its_id_ends_with() {
    use omsup_engine::Kind as _;

    let file = synthetic::plan(2, 2);
    let planned = plan(&file, b"x", &synthetic::world(&file, "4.2.8"));
    assert!(planned.steps.len() > 10);
    for step in &planned.steps {
        assert_eq!(step.kind.id(), step.id);
        assert!(
            step.id.as_str().ends_with(step.kind.name()),
            "{} is not named {}",
            step.id,
            step.kind.name()
        );
    }
}
