//! Snapshot tests of the three renderers on synthetic plans (no Docker, no database): the
//! committed example plan file against synthetic observed worlds.

use omsup_engine::observed::{DockerReach, MetaDbReach};
use omsup_engine::synthetic;
use omsup_engine::{UpgradePlan, plan};
use omsup_model::PlanFile;

use super::{render_dot, render_plan_human, render_plan_json};
use crate::style::Style;

const TWO_NODES_HA: &str = include_str!("../../../../plans/two-nodes-ha.toml");

fn plan_file() -> PlanFile {
    toml::from_str(TWO_NODES_HA).expect("the example plan parses")
}

/// Two nodes, one region, 4.2.8 -> 4.2.9, HA on: every step.
fn two_nodes_plan() -> UpgradePlan {
    let file = plan_file();
    plan(
        &file,
        TWO_NODES_HA.as_bytes(),
        &synthetic::world(&file, "4.2.8"),
    )
}

/// 10.0.0.3 already upgraded by hand, its image loaded; 10.0.0.2's store mount moved; an extra
/// environment variable on 10.0.0.2 that the new container keeps.
fn partial_plan_with_findings() -> UpgradePlan {
    let mut file = plan_file();
    let ip = "10.0.0.2";
    file.mounts = Some(omsup_model::plan::Mounts {
        config: format!("/data/{ip}/home/admin/conf/config.yaml").into(),
        logs: format!("/data/{ip}/home/admin/logs").into(),
        store: format!("/data/{ip}/home/ds/store").into(),
        run: format!("/data/{ip}/home/ds/run").into(),
    });
    let mut world = synthetic::world(&file, "4.2.8");
    let upgraded = synthetic::node_mut(&mut world, "10.0.0.3");
    upgraded.container = Some(synthetic::container(
        "10.0.0.3",
        "4.2.9",
        vec!["10.0.0.2".into(), "10.0.0.3".into()],
    ));
    upgraded.target_image_id = Some("sha256:4.2.9".into());
    let old = synthetic::node_mut(&mut world, ip)
        .container
        .as_mut()
        .unwrap();
    old.binds[2].host = "/mnt/moved/store".into();
    old.env.insert("LANG".into(), "en_US.UTF-8".into());
    plan(&file, TWO_NODES_HA.as_bytes(), &world)
}

#[test]
fn human_two_nodes_every_step_by_lane_with_the_downtime_window() {
    let rendered = render_plan_human(&two_nodes_plan(), &Style::plain());
    insta::assert_snapshot!(rendered);
    assert!(rendered.contains("Plan: 17 steps on 2 nodes; downtime window: 11 steps"));
    assert!(
        rendered.contains("+env IS_UPGRADE=true"),
        "the env diff shows IS_UPGRADE"
    );
    assert!(!rendered.contains('\x1b'), "no colour without a terminal");
}

#[test]
fn human_partial_world_shows_only_what_is_left_and_the_blocking_finding() {
    let rendered = render_plan_human(&partial_plan_with_findings(), &Style::plain());
    insta::assert_snapshot!(rendered);
    assert!(!rendered.contains("node[10.0.0.3].stop-old"));
    assert!(rendered.contains("error[mount-mismatch] node[10.0.0.2]"));
}

#[test]
fn human_fully_upgraded_says_no_changes() {
    let file = plan_file();
    let mut world = synthetic::world(&file, "4.2.9");
    for node in &mut world.nodes {
        if let DockerReach::Reachable(docker) = &mut node.docker {
            docker.target_image_id = Some("sha256:4.2.9".into());
        }
    }
    let planned = plan(&file, TWO_NODES_HA.as_bytes(), &world);
    let rendered = render_plan_human(&planned, &Style::plain());
    insta::assert_snapshot!(rendered);
    assert!(rendered.ends_with("No changes. The deployment runs 4.2.9-CE everywhere.\n"));
    let json: serde_json::Value = serde_json::from_str(&render_plan_json(&planned)).unwrap();
    assert_eq!(json["summary"]["no_changes"], true);
    assert_eq!(json["steps"], serde_json::json!([]));
}

#[test]
fn human_unreachable_parts_are_findings_and_no_steps() {
    let file = plan_file();
    let mut world = synthetic::world(&file, "4.2.8");
    world.nodes[1].docker = DockerReach::Unreachable {
        error: "connection refused".into(),
    };
    world.meta_db = MetaDbReach::Unreachable {
        error: "access denied for user `oms_meta_user`".into(),
    };
    let rendered = render_plan_human(
        &plan(&file, TWO_NODES_HA.as_bytes(), &world),
        &Style::plain(),
    );
    insta::assert_snapshot!(rendered);
    assert!(rendered.contains("Plan: no steps until the 2 preflight errors above are fixed."));
}

#[test]
fn colour_only_when_the_style_says_so() {
    let coloured = Style {
        color: true,
        ..Style::plain()
    };
    let rendered = render_plan_human(&partial_plan_with_findings(), &coloured);
    assert!(rendered.contains("\x1b[1m\x1b[31merror[mount-mismatch]\x1b[0m"));
    assert!(rendered.contains("\x1b[32m+env IS_UPGRADE=true\x1b[0m"));
}

#[test]
fn json_is_the_versioned_output_type() {
    let rendered = render_plan_json(&two_nodes_plan());
    insta::assert_snapshot!(rendered);
    let json: serde_json::Value = serde_json::from_str(&rendered).unwrap();
    assert_eq!(json["format_version"], 2);
    let steps = json["steps"].as_array().unwrap();
    for (index, step) in steps.iter().enumerate() {
        for dependency in step["depends_on"].as_array().unwrap() {
            let position = steps
                .iter()
                .position(|s| &s["id"] == dependency)
                .expect("a dependency is a step");
            assert!(position < index, "steps come in topological order");
            assert!(steps[position]["lane"].as_u64() < step["lane"].as_u64());
        }
    }
    assert_eq!(
        steps[0]["lane"], 1,
        "lanes are 1-based, as in the human output"
    );
}

#[test]
fn json_names_the_blocking_findings() {
    let json: serde_json::Value =
        serde_json::from_str(&render_plan_json(&partial_plan_with_findings())).unwrap();
    let finding = &json["preflight"][0];
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["code"], "mount-mismatch");
    assert_eq!(finding["subject"], "node[10.0.0.2]");
    assert_eq!(json["summary"]["errors"], 1);
    let node = &json["changes"][0];
    assert_eq!(node["env"]["added"]["IS_UPGRADE"], "true");
    assert_eq!(json["changes"][1]["action"], "none", "10.0.0.3 is upgraded");
}

#[test]
fn dot_is_a_well_formed_digraph_with_the_downtime_cluster() {
    let planned = two_nodes_plan();
    let dot = render_dot(&planned);
    insta::assert_snapshot!(dot);
    assert!(dot.starts_with("digraph \"omsup plan oms-hz\" {\n") && dot.ends_with("}\n"));
    assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    let declared: Vec<&str> = dot
        .lines()
        .filter(|line| line.contains("[label="))
        .map(|line| line.trim().split(" [").next().unwrap())
        .collect();
    assert_eq!(declared.len(), planned.steps.len(), "each step once");
    let edges: Vec<&str> = dot
        .lines()
        .filter(|line| line.contains(" -> ") && !line.contains("[label="))
        .collect();
    assert_eq!(
        edges.len(),
        planned
            .steps
            .iter()
            .map(|s| s.depends_on.len())
            .sum::<usize>()
    );
    for edge in edges {
        let (from, to) = edge
            .trim()
            .trim_end_matches(';')
            .split_once(" -> ")
            .unwrap();
        assert!(declared.contains(&from) && declared.contains(&to), "{edge}");
    }
    let cluster = dot
        .split("subgraph cluster_downtime {")
        .nth(1)
        .and_then(|rest| rest.split("\n  }\n").next())
        .expect("a downtime cluster");
    assert_eq!(cluster.matches("[label=").count(), planned.downtime_steps());
}

#[test]
fn human_two_regions_init_once_in_one_and_per_node_in_the_other() {
    let file: PlanFile = toml::from_str(&synthetic::plan_toml(2, 2)).unwrap();
    let mut world = synthetic::world(&file, "4.2.8");
    for ip in ["10.1.0.2", "10.1.1.2"] {
        let container = synthetic::node_mut(&mut world, ip)
            .container
            .as_mut()
            .unwrap();
        container.config.as_mut().unwrap().cm_nodes = vec![ip.to_owned()];
    }
    let rendered = render_plan_human(&plan(&file, b"synthetic", &world), &Style::plain());
    let regions: String = rendered
        .split("\n\n")
        .filter(|block| block.trim_start().starts_with("~ region"))
        .collect::<Vec<_>>()
        .join("\n\n");
    insta::assert_snapshot!(regions);
    assert!(rendered.contains("node[10.1.0.2].init") && rendered.contains("region[r0].init"));
}
