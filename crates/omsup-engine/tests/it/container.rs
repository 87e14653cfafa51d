//! The new container's spec: the old container's own settings, only what the upgrade must
//! change changed, the plan file's explicit options winning.

use std::collections::BTreeMap;

use omsup_engine::container::{EnvValue, LABEL_RUN_ID, LABEL_STEP_ID, LabelValue, own_spec};
use omsup_engine::plan;
use omsup_model::PlanFile;

use crate::synthetic;

const IP: &str = "10.0.0.2";

fn planned(
    file: &PlanFile,
    world: &omsup_engine::observed::ObservedWorld,
) -> omsup_engine::container::ContainerSpec {
    let planned = plan(file, b"x", world);
    assert!(
        !planned.has_blocking_findings(),
        "{:#?}",
        planned.diff.findings
    );
    planned
        .new_container(IP)
        .cloned()
        .expect("start-new carries the new container's spec")
}

fn value(text: &str) -> EnvValue {
    EnvValue::Value(text.into())
}

#[test]
fn the_new_container_keeps_the_old_ones_own_settings_and_changes_only_what_the_upgrade_must() {
    let file = synthetic::plan(1, 1);
    let world = synthetic::world(&file, "4.2.8");
    let old = synthetic::node_mut(&mut world.clone(), IP)
        .container
        .clone()
        .unwrap();
    assert_eq!(
        own_spec(&old).env.keys().collect::<Vec<_>>(),
        ["OMS_HOST_IP", "TZ"],
        "the image's OMS_VERSION is not the container's own"
    );
    let new = planned(&file, &world);

    assert_eq!(new.name, "oms");
    assert_eq!(new.image, "oms:feature_4.2.9-ce");
    assert_eq!(
        new.env,
        BTreeMap::from([
            ("IS_UPGRADE".into(), value("true")),
            ("OMS_HOST_IP".into(), value(IP)),
            ("TZ".into(), value("Asia/Shanghai")),
        ]),
        "the operator's TZ kept, the old image's OMS_VERSION not copied over the new image's"
    );
    assert_eq!(new.binds, old.binds);
    assert_eq!(
        new.settings, old.settings,
        "restart policy, ulimits, network, ... as the old container has them"
    );
    assert_eq!(new.labels["team"], LabelValue::Value("dba".into()));
    assert_eq!(new.labels[LABEL_RUN_ID], LabelValue::RunId);
    assert_eq!(
        new.labels[LABEL_STEP_ID],
        LabelValue::Value(format!("node[{IP}].start-new"))
    );
}

#[test]
fn an_operator_value_that_differs_from_the_images_default_is_kept() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, IP)
        .container
        .as_mut()
        .unwrap();
    container
        .env
        .insert("OMS_VERSION".into(), "pinned-by-the-operator".into());
    let new = planned(&file, &world);
    assert_eq!(new.env["OMS_VERSION"], value("pinned-by-the-operator"));
}

#[test]
fn image_labels_and_an_earlier_runs_labels_are_not_copied() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, IP)
        .container
        .as_mut()
        .unwrap();
    container
        .labels
        .insert("org.opencontainers.image.version".into(), "4.2.8".into());
    container
        .image_defaults
        .as_mut()
        .unwrap()
        .labels
        .insert("org.opencontainers.image.version".into(), "4.2.8".into());
    container
        .labels
        .insert(LABEL_RUN_ID.into(), "20250101T000000Z-0ld0".into());
    let new = planned(&file, &world);
    assert_eq!(
        new.labels.keys().collect::<Vec<_>>(),
        [LABEL_RUN_ID, LABEL_STEP_ID, "team"]
    );
    assert_eq!(new.create_labels("run-7")[LABEL_RUN_ID], "run-7");
}

#[test]
fn the_plan_files_explicit_options_win_and_the_nodes_over_the_plans() {
    let text = omsup_engine::synthetic::plan_toml(1, 1).replace(
        "[backup]",
        "[container]\nprivileged = false\nulimit_nproc = 4096\nhttps_cert = \"/certs/oms.crt\"\n\
         [container.env]\nTZ = \"UTC\"\nLANG = \"C.UTF-8\"\n[backup]",
    ) + "[region.node.container_overrides]\npids_limit = 2048\n[region.node.container_overrides.env]\nLANG = \"en_US.UTF-8\"\n";
    let file: PlanFile = toml::from_str(&text).unwrap();
    let world = synthetic::world(&file, "4.2.8");
    let new = planned(&file, &world);
    assert_eq!(new.env["TZ"], value("UTC"));
    assert_eq!(new.env["LANG"], value("en_US.UTF-8"));
    assert!(!new.settings.privileged);
    assert_eq!(new.settings.pids_limit, Some(2048));
    assert_eq!(
        new.settings
            .ulimits
            .iter()
            .map(|u| (u.name.as_str(), u.soft, u.hard))
            .collect::<Vec<_>>(),
        [("nproc", 4096, 4096)]
    );
    assert!(
        new.binds
            .iter()
            .any(|b| b.host == "/certs/oms.crt" && b.container == "/etc/pki/nginx/oms_server.crt")
    );
    assert_eq!(
        new.settings
            .restart_policy
            .as_ref()
            .map(|p| p.name.as_str()),
        Some("always"),
        "what the plan does not set stays the old container's"
    );
}

#[test]
fn nothing_overrides_is_upgrade_and_the_nodes_ip() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    let container = synthetic::node_mut(&mut world, IP)
        .container
        .as_mut()
        .unwrap();
    container.env.insert("IS_UPGRADE".into(), "false".into());
    let new = planned(&file, &world);
    assert_eq!(new.env["IS_UPGRADE"], value("true"));
    assert_eq!(new.env["OMS_HOST_IP"], value(IP));
}

#[test]
fn unknown_image_defaults_refuse_the_plan() {
    let file = synthetic::plan(1, 1);
    let mut world = synthetic::world(&file, "4.2.8");
    synthetic::node_mut(&mut world, IP)
        .container
        .as_mut()
        .unwrap()
        .image_defaults = None;
    let planned = plan(&file, b"x", &world);
    assert!(
        planned
            .blocking_findings()
            .any(|f| f.code == "image-defaults-unknown" && f.subject == format!("node[{IP}]")),
        "{:#?}",
        planned.diff.findings
    );
}

#[test]
fn a_changed_operator_setting_is_a_changed_fact() {
    let file = synthetic::plan(1, 1);
    let world = synthetic::world(&file, "4.2.8");
    let saved = omsup_engine::SavedPlan::new("p".into(), plan(&file, b"x", &world));
    let mut now = world.clone();
    let container = synthetic::node_mut(&mut now, IP)
        .container
        .as_mut()
        .unwrap();
    container.settings.restart_policy = None;
    container.env.insert("TZ".into(), "UTC".into());
    let changed: Vec<String> = saved
        .changed_facts(&now.facts())
        .into_iter()
        .map(|c| format!("{}: {:?} -> {:?}", c.name, c.saved, c.now))
        .collect();
    assert_eq!(
        changed,
        [
            format!("node[{IP}].container.own[env TZ]: Some(\"Asia/Shanghai\") -> Some(\"UTC\")"),
            format!("node[{IP}].container.own[restart]: Some(\"always\") -> Some(\"no\")"),
        ]
    );
}
