//! The canonical example plan parses and resolves the documented defaults.

use omsup_model::PlanFile;

fn workspace_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_canonical_example_parses_and_resolves_documented_defaults() {
    let plan: PlanFile = toml::from_str(&workspace_file("plans/two-nodes-ha.toml")).unwrap();
    assert_eq!(plan.regions.len(), 1);
    assert_eq!(plan.nodes().count(), 2);
    let resolved = plan.container.resolve(None);
    assert_eq!(resolved.network, "host");
    assert_eq!(resolved.pids_limit, -1);
    assert_eq!(resolved.ulimit_nproc, 65535);
    assert!(resolved.privileged);
    assert_eq!(plan.timeouts.readiness.to_string(), "15m");
}

#[test]
fn node_overrides_win_over_plan_wide_container_options() {
    let base = omsup_model::plan::ContainerOptions {
        privileged: Some(true),
        ..Default::default()
    };
    let node = omsup_model::plan::ContainerOptions {
        privileged: Some(false),
        ..Default::default()
    };
    let resolved = base.resolve(Some(&node));
    assert!(!resolved.privileged);
    assert_eq!(resolved.pids_limit, -1);
}
