//! The new container is exactly what the plan showed: a saved plan's `start-new` spec against
//! `docker inspect` of the container apply created, field by field, and every setting the
//! operator put on the old container (environment, restart policy, log options, ulimits,
//! memory, extra hosts, labels) kept.

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::ContainerInspectResponse;
use omsup_engine::SavedPlan;
use omsup_engine::container::{ContainerSpec, LABEL_RUN_ID};
use omsup_exec::docker_spec;
use omsup_testworld::{OperatorSettings, WorldSpec};
use serde_json::Value;

use crate::apply::{assert_upgraded, before, plan_arg, show};
use crate::support::{omsup, up};

fn env_of(inspect: &ContainerInspectResponse) -> BTreeMap<String, String> {
    docker_spec::env_map(
        inspect
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten(),
    )
}

fn labels_of(inspect: &ContainerInspectResponse) -> BTreeMap<String, String> {
    inspect
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn the_new_container_is_the_spec_the_plan_showed_and_keeps_every_operator_setting() {
    let world = up(WorldSpec::two_nodes()).await;
    let operator = OperatorSettings::default();
    let secret = &operator
        .env
        .iter()
        .find(|(key, _)| key == "SIM_API_TOKEN")
        .expect("the world carries a secret-looking variable")
        .1;
    let before = before(&world).await;
    let plan = plan_arg(&world);

    let saved_path = world.dir.join("saved-plan.json");
    let saved_arg = saved_path.display().to_string();
    let planned = omsup(&["plan", "-f", &plan, "--out", &saved_arg]);
    assert_eq!(planned.code, 0, "{}", show(&planned));
    let saved_text = std::fs::read_to_string(&saved_path).unwrap();
    assert!(
        !saved_text.contains(secret.as_str()) && !planned.stdout.contains(secret.as_str()),
        "a secret-looking value reached the plan"
    );
    // The human plan's diff shows what is kept as unchanged lines, what the upgrade sets as
    // added ones, and no variable the old image set itself.
    let diff_line = |marker: char, text: &str| {
        planned.stdout.lines().any(|line| {
            line.trim_start() == format!("{marker}{text}") && line.starts_with("          ")
        })
    };
    for kept in [
        "env TZ=Asia/Shanghai",
        "env SIM_API_TOKEN=<redacted: copied from the old container>",
        "restart always",
        "log-opt max-size=10m",
        "ulimit nofile=4096:8192",
        "memory 1073741824",
        "add-host oms-meta.internal:10.77.0.1",
        "label com.example.team=dba",
    ] {
        assert!(
            planned.stdout.contains(&format!("           {kept}\n")),
            "the plan does not show `{kept}` as kept\n{}",
            planned.stdout
        );
    }
    assert!(diff_line('+', "env IS_UPGRADE=true"), "{}", planned.stdout);
    assert!(
        !planned.stdout.contains("OMS_SIM_VERSION"),
        "the old image's own variable is not the container's\n{}",
        planned.stdout
    );
    let saved: SavedPlan = serde_json::from_str(&saved_text).unwrap();
    let json = omsup(&["plan", "-f", &plan, "--format", "json"]);
    assert_eq!(json.code, 0, "{}", show(&json));
    let json: Value = serde_json::from_str(&json.stdout).unwrap();

    let mut olds = BTreeMap::new();
    let mut specs: BTreeMap<String, ContainerSpec> = BTreeMap::new();
    for node in &world.nodes {
        let docker = node.docker().unwrap();
        olds.insert(
            node.ip.clone(),
            docker
                .inspect_container(&world.container, None)
                .await
                .unwrap(),
        );
        let spec = saved
            .plan
            .new_container(&node.ip)
            .unwrap_or_else(|| panic!("the saved plan has no new container for {}", node.ip))
            .clone();
        // `plan --format json` shows the same spec.
        let shown = json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ip"] == node.ip.as_str())
            .map(|c| c["new_container"].clone())
            .unwrap();
        assert_eq!(shown["image"], spec.image.as_str());
        assert_eq!(
            serde_json::from_value::<BTreeMap<String, String>>(shown["env"].clone()).unwrap(),
            spec.shown_env()
        );
        assert_eq!(
            serde_json::from_value::<BTreeMap<String, String>>(shown["labels"].clone()).unwrap(),
            spec.shown_labels()
        );
        assert_eq!(shown["restart_policy"]["name"], "always");
        specs.insert(node.ip.clone(), spec);
    }

    let run = omsup(&["apply", &saved_arg, "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_upgraded(&world, &before, "apply of a saved plan").await;

    let mut compared = 0;
    for node in &world.nodes {
        let docker = node.docker().unwrap();
        let spec = &specs[&node.ip];
        let old = &olds[&node.ip];
        let new = docker
            .inspect_container(&world.container, None)
            .await
            .unwrap();
        let image = docker.inspect_image(&spec.image).await.unwrap();
        let image_defaults = docker_spec::image_defaults(&image);
        let context = format!("node {}", node.ip);

        // Name and image.
        assert_eq!(
            new.name.as_deref(),
            Some(format!("/{}", spec.name).as_str()),
            "{context}"
        );
        let config = new.config.clone().unwrap();
        assert_eq!(
            config.image.as_deref(),
            Some(spec.image.as_str()),
            "{context}"
        );
        // Environment: the new image's defaults, then exactly the spec's variables (the
        // secret-looking one copied from the old container).
        let mut expected_env = image_defaults.env.clone();
        for entry in spec.create_env(&env_of(old)).unwrap() {
            let (key, value) = entry.split_once('=').unwrap();
            expected_env.insert(key.to_owned(), value.to_owned());
        }
        assert_eq!(env_of(&new), expected_env, "{context}: environment");
        // Labels: the image's and exactly the spec's, with this run's id.
        let run_id = labels_of(&new)
            .get(LABEL_RUN_ID)
            .cloned()
            .unwrap_or_default();
        assert!(!run_id.is_empty(), "{context}: no run label");
        let mut expected_labels = image_defaults.labels.clone();
        expected_labels.extend(spec.create_labels(&run_id));
        assert_eq!(labels_of(&new), expected_labels, "{context}: labels");
        // Mounts, exactly.
        let host = new.host_config.clone().unwrap();
        let binds: BTreeSet<String> = host.binds.clone().unwrap_or_default().into_iter().collect();
        let expected_binds: BTreeSet<String> = spec.binds.iter().map(|b| b.to_docker()).collect();
        assert_eq!(binds, expected_binds, "{context}: mounts");
        // Every other create setting.
        assert_eq!(
            docker_spec::settings(&new),
            spec.settings,
            "{context}: create settings"
        );

        // What the operator set on the old container, read off both with Docker's own fields:
        // every one kept.
        let old_host = old.host_config.clone().unwrap();
        let new_env = env_of(&new);
        for (key, value) in &operator.env {
            assert_eq!(env_of(old).get(key), Some(value), "{context}: old {key}");
            assert_eq!(new_env.get(key), Some(value), "{context}: {key} lost");
        }
        assert_eq!(
            new_env.get("OMS_SIM_VERSION").map(String::as_str),
            Some("4.2.9-CE"),
            "{context}: the new image's own variable must win"
        );
        assert_eq!(new_env.get("IS_UPGRADE").map(String::as_str), Some("true"));
        assert_eq!(
            host.restart_policy.as_ref().and_then(|p| p.name),
            old_host.restart_policy.as_ref().and_then(|p| p.name),
            "{context}: restart policy"
        );
        assert_eq!(
            host.restart_policy
                .as_ref()
                .and_then(|p| p.name)
                .map(|n| n.to_string()),
            operator.restart,
            "{context}: restart policy"
        );
        assert_eq!(
            host.log_config, old_host.log_config,
            "{context}: log options"
        );
        let log_options = host
            .log_config
            .clone()
            .and_then(|l| l.config)
            .unwrap_or_default();
        for (key, value) in &operator.log_options {
            assert_eq!(
                log_options.get(key),
                Some(value),
                "{context}: log-opt {key}"
            );
        }
        let ulimits = |h: &bollard::models::HostConfig| {
            let mut all: Vec<(String, i64, i64)> = h
                .ulimits
                .iter()
                .flatten()
                .map(|u| {
                    (
                        u.name.clone().unwrap_or_default(),
                        u.soft.unwrap_or_default(),
                        u.hard.unwrap_or_default(),
                    )
                })
                .collect();
            all.sort();
            all
        };
        assert_eq!(ulimits(&host), ulimits(&old_host), "{context}: ulimits");
        for ulimit in &operator.ulimits {
            assert!(
                ulimits(&host).contains(ulimit),
                "{context}: {ulimit:?} lost"
            );
        }
        assert_eq!(host.memory, old_host.memory, "{context}: memory");
        assert_eq!(host.memory, operator.memory, "{context}: memory");
        assert_eq!(
            host.extra_hosts, old_host.extra_hosts,
            "{context}: extra hosts"
        );
        assert_eq!(
            host.extra_hosts.clone().unwrap_or_default(),
            operator.extra_hosts,
            "{context}: extra hosts"
        );
        assert_eq!(
            host.network_mode, old_host.network_mode,
            "{context}: network"
        );
        assert_eq!(
            host.privileged, old_host.privileged,
            "{context}: privileged"
        );
        let new_labels = labels_of(&new);
        for (key, value) in &operator.labels {
            assert_eq!(
                new_labels.get(key),
                Some(value),
                "{context}: label {key} lost"
            );
        }
        assert_eq!(
            (config.tty, config.open_stdin),
            (
                old.config.as_ref().and_then(|c| c.tty),
                old.config.as_ref().and_then(|c| c.open_stdin)
            ),
            "{context}: tty and stdin"
        );
        compared += 1;
    }
    assert_eq!(compared, world.nodes.len());
    assert_eq!(compared, 2);
}
