//! The plan cross-checked against the deployment's own records (config.yaml, cm `host`,
//! `OMS_HOST_IP`, image ids, `oms_version`): each disagreement blocks before any side effect
//! and names the file, key or host.

use omsup_engine::observed::MetaDbReach;
use omsup_engine::plan;
use omsup_engine::steps::UpgradePlan;

use crate::synthetic;

fn finding<'p>(
    planned: &'p UpgradePlan,
    code: &str,
) -> Vec<&'p omsup_engine::diff::PreflightFinding> {
    planned
        .diff
        .findings
        .iter()
        .filter(|f| f.code == code)
        .collect()
}

#[test]
fn the_synthetic_world_agrees_with_its_plan() {
    let file = synthetic::plan(2, 2);
    let planned = plan(&file, b"x", &synthetic::world(&file, "4.2.8"));
    assert!(
        !planned.has_blocking_findings(),
        "{:?}",
        planned.diff.findings
    );
}

/// Changes one key of a node's config.yaml.
type ChangeConfig = fn(&mut omsup_engine::observed::ObservedOmsConfig);

#[test]
fn each_config_yaml_key_that_differs_from_the_plan_blocks_naming_the_file_and_key() {
    let file = synthetic::plan(1, 2);
    let cases: [(&str, ChangeConfig, &str); 6] = [
        (
            "drc_rm_db",
            |c| c.drc_rm_db = Some("rm_other".into()),
            "[meta_db] rm",
        ),
        (
            "drc_cm_db",
            |c| c.drc_cm_db = Some("cm_other".into()),
            "[meta_db] cm",
        ),
        (
            "drc_cm_heartbeat_db",
            |c| c.drc_cm_heartbeat_db = Some("hb_other".into()),
            "cm_hb",
        ),
        (
            "cm_region",
            |c| c.cm_region = Some("other".into()),
            "the region's name",
        ),
        (
            "oms_meta_host",
            |c| c.oms_meta_host = Some("10.9.9.9".into()),
            "[meta_db] host",
        ),
        (
            "oms_meta_port",
            |c| c.oms_meta_port = Some(3306),
            "[meta_db] port",
        ),
    ];
    for (key, change, plan_key) in cases {
        let mut world = synthetic::world(&file, "4.2.8");
        let container = synthetic::node_mut(&mut world, "10.0.1.2")
            .container
            .as_mut()
            .unwrap();
        change(container.config.as_mut().unwrap());
        let planned = plan(&file, b"x", &world);
        let found = finding(&planned, "config-mismatch");
        assert_eq!(found.len(), 1, "{key}: {:?}", planned.diff.findings);
        assert_eq!(found[0].subject, "node[10.0.1.2]");
        assert!(
            found[0]
                .message
                .contains("`/data/10.0.1.2/home/admin/conf/config.yaml`")
                && found[0].message.contains(&format!("`{key}: "))
                && found[0].message.contains(plan_key),
            "{key}: {:?}",
            found[0]
        );
        assert!(
            found[0].hint.as_deref().unwrap().contains(plan_key),
            "{:?}",
            found[0]
        );
        assert!(planned.has_blocking_findings(), "{key}");
    }
}

#[test]
fn a_host_in_cm_host_or_cm_nodes_that_the_plan_does_not_declare_blocks_naming_it() {
    let file = synthetic::plan(1, 2);
    let mut world = synthetic::world(&file, "4.2.8");
    if let MetaDbReach::Reachable(db) = &mut world.meta_db {
        db.hosts.insert("10.0.0.2".into(), "ONLINE".into());
        db.hosts.insert("10.0.9.2".into(), "ONLINE".into());
    }
    let container = synthetic::node_mut(&mut world, "10.0.0.2")
        .container
        .as_mut()
        .unwrap();
    container
        .config
        .as_mut()
        .unwrap()
        .cm_nodes
        .push("10.0.8.2".into());
    let planned = plan(&file, b"x", &world);
    let found = finding(&planned, "undeclared-host");
    let subjects: Vec<&str> = found.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(subjects, ["host[10.0.8.2]", "host[10.0.9.2]"]);
    assert!(
        found[0]
            .message
            .contains("`cm_nodes` of node 10.0.0.2's config.yaml"),
        "{:?}",
        found[0]
    );
    assert!(
        found[1]
            .message
            .contains("registered in `cm.host` (ONLINE)"),
        "{:?}",
        found[1]
    );
    assert!(
        found[1]
            .hint
            .as_deref()
            .unwrap()
            .contains("ip = \"10.0.9.2\""),
        "{:?}",
        found[1]
    );
    assert!(planned.has_blocking_findings());
}

#[test]
fn an_old_container_whose_oms_host_ip_is_not_its_node_blocks() {
    let file = synthetic::plan(1, 2);
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, "10.0.1.2")
        .container
        .as_mut()
        .unwrap();
    container
        .env
        .insert("OMS_HOST_IP".into(), "10.0.0.2".into());
    let planned = plan(&file, b"x", &world);
    let found = finding(&planned, "host-ip-mismatch");
    assert_eq!(found.len(), 1, "{:?}", planned.diff.findings);
    assert_eq!(found[0].subject, "node[10.0.1.2]");
    assert!(
        found[0].message.contains("OMS_HOST_IP=10.0.0.2"),
        "{:?}",
        found[0]
    );
    assert!(planned.has_blocking_findings());
}

#[test]
fn the_nodes_of_a_region_on_different_image_ids_block() {
    let file = synthetic::plan(2, 2);
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, "10.1.1.2")
        .container
        .as_mut()
        .unwrap();
    container.image_id = "sha256:0123456789abcdef0123".into();
    let planned = plan(&file, b"x", &world);
    let found = finding(&planned, "region-image-disagreement");
    assert_eq!(found.len(), 1, "{:?}", planned.diff.findings);
    assert_eq!(found[0].subject, "region[r1]");
    assert!(
        found[0].message.contains("0123456789ab on 10.1.1.2"),
        "{:?}",
        found[0]
    );
}

/// An OMS started by image id: no tag to read a version off. The observer reads the image's
/// labels and environment; failing those, the version `rm.oms_version` records is the one.
#[test]
fn a_container_without_a_version_takes_the_recorded_one_and_a_missing_one_blocks_the_remedy() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, "10.0.0.2")
        .container
        .as_mut()
        .unwrap();
    container.image = "sha256:4f2a".into();
    container.version = None;
    let planned = plan(&file, b"x", &world);
    assert_eq!(
        planned.diff.from.map(|v| v.to_string()).as_deref(),
        Some("4.2.8-CE")
    );
    assert!(
        !planned.has_blocking_findings(),
        "{:?}",
        planned.diff.findings
    );
    assert_eq!(
        planned.diff.nodes[0].kept_as.as_deref(),
        Some("oms-omsup-4.2.8")
    );

    // No `oms_version` row either: the remedy would need a version nobody knows.
    if let MetaDbReach::Reachable(db) = &mut world.meta_db {
        db.oms_version = None;
    }
    let planned = plan(&file, b"x", &world);
    let found = finding(&planned, "old-version-unknown");
    assert_eq!(found.len(), 1, "{:?}", planned.diff.findings);
    assert!(
        found[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("current_version"),
        "{:?}",
        found[0]
    );
    assert!(planned.has_blocking_findings());

    // The plan names it: the remedy has what it needs.
    let mut named = file.clone();
    named.deployment.current_version = Some("4.2.8-CE".into());
    let planned = plan(&named, b"x", &world);
    assert!(finding(&planned, "old-version-unknown").is_empty());
    assert_eq!(
        planned.diff.from.map(|v| v.to_string()).as_deref(),
        Some("4.2.8-CE")
    );
    assert_eq!(finding(&planned, "oms-version-missing").len(), 1);
}

#[test]
fn a_node_without_room_for_the_image_blocks_and_one_that_cannot_be_seen_is_said() {
    let file = synthetic::plan(1, 2);
    let mut world = synthetic::world(&file, "4.2.8");
    synthetic::node_mut(&mut world, "10.0.0.2").data_root_free_bytes = Some(1 << 20);
    synthetic::node_mut(&mut world, "10.0.1.2").data_root_free_bytes = None;
    let planned = plan(&file, b"x", &world);
    let full = finding(&planned, "node-space");
    assert_eq!(full.len(), 1, "{:?}", planned.diff.findings);
    assert_eq!(full[0].subject, "node[10.0.0.2]");
    assert!(
        full[0].message.contains("1.0 MiB free") && full[0].message.contains("2.0 GiB"),
        "{:?}",
        full[0]
    );
    let unknown = finding(&planned, "node-space-unknown");
    assert_eq!(unknown.len(), 1, "{:?}", planned.diff.findings);
    assert_eq!(unknown[0].subject, "node[10.0.1.2]");
    assert_eq!(unknown[0].severity, omsup_model::Severity::Warning);

    // The image is already there: no room needed.
    for ip in ["10.0.0.2", "10.0.1.2"] {
        synthetic::node_mut(&mut world, ip).target_image_id = Some("sha256:target".into());
    }
    let planned = plan(&file, b"x", &world);
    assert!(
        finding(&planned, "node-space").is_empty()
            && finding(&planned, "node-space-unknown").is_empty()
    );
}

#[test]
fn a_missing_or_failing_client_blocks_before_the_first_stop() {
    use omsup_engine::observed::ClientCheck;
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    world.operator.clients.dump = ClientCheck::Missing {
        error: "the dump client `/nowhere/mysqldump` (`[backup] dump_command`) does not exist"
            .into(),
    };
    world.operator.clients.restore = ClientCheck::Fails {
        client: "/usr/bin/mysql".into(),
        error: "`/usr/bin/mysql` exited with exit status: 1: Access denied".into(),
    };
    let planned = plan(&file, b"x", &world);
    let missing = finding(&planned, "dump-client-missing");
    assert_eq!(missing.len(), 1, "{:?}", planned.diff.findings);
    assert!(missing[0].message.contains("/nowhere/mysqldump"));
    assert!(missing[0].hint.as_deref().unwrap().contains("dump_command"));
    let fails = finding(&planned, "restore-client-fails");
    assert_eq!(fails.len(), 1, "{:?}", planned.diff.findings);
    assert!(fails[0].message.contains("Access denied"), "{:?}", fails[0]);
    assert!(planned.has_blocking_findings());
    // The preflight step runs first: nothing is stopped while a finding blocks.
    assert_eq!(planned.steps[0].id.as_str(), "preflight");
}

#[test]
fn backup_dir_without_room_for_the_estimated_dumps_blocks_with_a_hint() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    world.operator.backup_dir.free_bytes = 1 << 20;
    let planned = plan(&file, b"x", &world);
    let found = finding(&planned, "backup-space");
    assert_eq!(found.len(), 1, "{:?}", planned.diff.findings);
    // rm, cm and one cm_hb of 1 MiB each, twice over.
    assert!(
        found[0].message.contains("1.0 MiB free") && found[0].message.contains("6.0 MiB"),
        "{:?}",
        found[0]
    );
    assert!(found[0].hint.as_deref().unwrap().contains("[backup] dir"));
}
