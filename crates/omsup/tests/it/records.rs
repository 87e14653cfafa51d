//! The plan checked against the deployment's own records and the operator's tools before
//! anything stops, and a simulator that is hard to please, on real worlds: config.yaml written
//! the way the deployer writes it, a host the plan forgot, a config.yaml naming another region,
//! an OMS started by image id, dump and restore clients (missing, failing, a MySQL 8 dump
//! client that needs `--column-statistics=0`), a backup directory without room, HA acting on a
//! node stopped while it is on, and init judged by its `[Completed]` line after the supervisor's
//! components run.

use std::path::Path;
use std::time::Duration;

use omsup_testworld::world::{image_tag, poll_until, remove_named, wait_for_log};
use omsup_testworld::{ConfigStyle, WorldSpec};
use serde_json::Value;

use crate::apply::{assert_upgraded, before, plan_arg, show};
use crate::plan::{read_plan, write_plan};
use crate::support::{omsup, resume_after_kill, up};

/// Two nodes on hosts of their own: their daemons load this build's simulator images (the
/// shared hosts keep whichever images were loaded first).
fn own_hosts() -> WorldSpec {
    WorldSpec {
        private_hosts: true,
        ..WorldSpec::two_nodes()
    }
}

/// `omsup plan --format json` of `plan`: the exit code and the output.
fn plan_json(plan: &Path) -> (i32, Value) {
    let run = omsup(&[
        "plan",
        "-f",
        &plan.display().to_string(),
        "--format",
        "json",
    ]);
    let value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("not JSON:\n{}", show(&run)));
    (run.code, value)
}

/// The preflight findings of a plan output with this code.
fn findings<'v>(output: &'v Value, code: &str) -> Vec<&'v Value> {
    output["preflight"]
        .as_array()
        .expect("a preflight array")
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

fn codes(output: &Value) -> Vec<String> {
    output["preflight"]
        .as_array()
        .expect("a preflight array")
        .iter()
        .map(|f| f["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn a_world_written_the_way_the_deployer_writes_config_yaml_is_read_and_upgraded() {
    let world = up(WorldSpec {
        config_style: ConfigStyle::Deployer,
        ..own_hosts()
    })
    .await;
    let text = std::fs::read_to_string(world.nodes[0].config_path()).unwrap();
    for quoted in [
        format!("oms_meta_port: \"{}\"", world.services.meta_port),
        "nginx_server_port: \"8089\"".to_owned(),
        "cm_is_default: \"true\"".to_owned(),
        format!("  - \"{}\"", world.nodes[1].ip),
    ] {
        assert!(text.contains(&quoted), "no `{quoted}` in\n{text}");
    }
    let (code, output) = plan_json(&world.plan_path);
    assert_eq!(code, 0, "{output:#}");
    assert!(codes(&output).is_empty(), "{output:#}");
    // cm_nodes was read: init once for the region, not once per node.
    let steps: Vec<&str> = output["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .filter(|id| id.ends_with(".init"))
        .collect();
    assert_eq!(steps, ["region[hz].init"], "{output:#}");

    let before = before(&world).await;
    let run = omsup(&["apply", "-f", &plan_arg(&world), "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_upgraded(&world, &before, "deployer-style config.yaml").await;
}

#[tokio::test]
async fn ha_acts_on_a_node_stopped_while_it_is_on() {
    let world = up(own_hosts()).await;
    assert!(world.ha_events().await.unwrap().is_empty());
    let stopped = &world.nodes[1];
    stopped
        .docker()
        .unwrap()
        .stop_container(
            &world.container,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    let events = poll_until(
        "the running node to act on the stopped one",
        Duration::from_secs(20),
        || async {
            let events = world.ha_events().await.unwrap();
            events
                .iter()
                .any(|(ip, _)| *ip == stopped.ip)
                .then_some(events)
        },
    )
    .await;
    assert!(
        events
            .iter()
            .all(|(ip, action)| *ip == stopped.ip && action == "HOST_DOWN_MIGRATE"),
        "{events:?}"
    );
}

#[tokio::test]
async fn init_waits_for_the_supervisor_and_succeeds_only_with_its_completed_line() {
    let world = up(own_hosts()).await;
    let before = before(&world).await;
    // The new containers' components take 2.5 s to run after the start line, and their init
    // exits 0 without finishing.
    for node in &world.nodes {
        std::fs::write(node.run_dir().join("sim-components-delay-ms"), "2500").unwrap();
        std::fs::write(node.run_dir().join("sim-init-incomplete"), "").unwrap();
    }
    let plan = plan_arg(&world);
    let run = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_ne!(run.code, 0, "{}", show(&run));
    for expected in [
        "exited 0, but its log does not end with `[Completed] All initialization steps are executed`",
        "creating resource tags",
        "docker_init.log",
    ] {
        assert!(
            run.stderr.contains(expected),
            "no `{expected}` in\n{}",
            show(&run)
        );
    }
    let init_logs = || {
        world
            .nodes
            .iter()
            .map(|node| {
                std::fs::read_to_string(node.logs_dir().join("docker_init.log")).unwrap_or_default()
            })
            .collect::<String>()
    };
    assert!(
        !init_logs().contains("not all RUNNING"),
        "init was started before the components ran:\n{}",
        init_logs()
    );

    for node in &world.nodes {
        std::fs::remove_file(node.run_dir().join("sim-init-incomplete")).unwrap();
    }
    let resumed = resume_after_kill(&plan);
    assert_eq!(resumed.code, 0, "{}", show(&resumed));
    assert!(
        init_logs()
            .trim_end()
            .ends_with("[Completed] All initialization steps are executed"),
        "{}",
        init_logs()
    );
    assert_upgraded(&world, &before, "init waited and completed").await;
}

#[tokio::test]
async fn an_oms_started_by_image_id_is_planned_from_the_version_its_image_carries() {
    let world = up(own_hosts()).await;
    for node in &world.nodes {
        let docker = node.docker().unwrap();
        let id = docker
            .inspect_image(&image_tag(&world.spec.version))
            .await
            .unwrap()
            .id
            .unwrap();
        remove_named(&docker, &world.container).await.unwrap();
        world.start_node(&docker, node, &id, &[]).await.unwrap();
        wait_for_log(
            &docker,
            &world.container,
            "OMS service start successfully",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let (code, output) = plan_json(&world.plan_path);
    assert_eq!(code, 0, "{output:#}");
    assert_eq!(output["from"], "4.2.8-CE", "{output:#}");
    assert!(codes(&output).is_empty(), "{output:#}");
    let nodes: Vec<&Value> = output["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kept_as"].is_string())
        .collect();
    assert_eq!(nodes.len(), 2, "{output:#}");
    for node in nodes {
        assert_eq!(
            node["kept_as"],
            format!("{}-omsup-4.2.8", world.container),
            "{output:#}"
        );
        assert!(
            node["image"]["before"]
                .as_str()
                .unwrap()
                .starts_with("sha256:"),
            "{output:#}"
        );
    }
}

/// A tmpfs of 64 KiB, unmounted when dropped (before the world's directory goes).
struct TinyFs(std::path::PathBuf);

impl TinyFs {
    fn mount(path: std::path::PathBuf) -> Self {
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {}",
            path.display()
        );
        Self(path)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn the_plan_is_checked_against_the_records_and_the_clients_before_anything_stops() {
    let world = up(own_hosts()).await;
    let (first, second) = (&world.nodes[0], &world.nodes[1]);

    // A forgotten node: in cm `host` and in the other node's cm_nodes, not in the plan.
    let mut forgot = read_plan(&world);
    forgot.regions[0].nodes.retain(|n| n.ip == first.ip);
    let (code, output) = plan_json(&write_plan(&world, "forgot.toml", &forgot));
    assert_eq!(code, 1, "{output:#}");
    let undeclared = findings(&output, "undeclared-host");
    assert_eq!(undeclared.len(), 1, "{output:#}");
    let message = undeclared[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&second.ip)
            && message.contains(&format!("`{}.host`", world.cm))
            && message.contains("cm_nodes"),
        "{message}"
    );
    assert!(undeclared[0]["hint"].as_str().unwrap().contains(&second.ip));

    // A config.yaml naming another region than the plan.
    let config = std::fs::read_to_string(second.config_path()).unwrap();
    std::fs::write(
        second.config_path(),
        config.replace("cm_region: hz", "cm_region: hz2"),
    )
    .unwrap();
    let (code, output) = plan_json(&world.plan_path);
    std::fs::write(second.config_path(), &config).unwrap();
    assert_eq!(code, 1, "{output:#}");
    let mismatch = findings(&output, "config-mismatch");
    assert_eq!(mismatch.len(), 1, "{output:#}");
    let message = mismatch[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&second.config_path().display().to_string())
            && message.contains("`cm_region: hz2`"),
        "{message}"
    );

    // A dump client that is not there, one that cannot log in, and a backup directory without
    // room: each named before anything stops.
    let mut missing = read_plan(&world);
    missing.backup.dump_command = Some("/nowhere/mysqldump".into());
    let (code, output) = plan_json(&write_plan(&world, "missing.toml", &missing));
    assert_eq!(code, 1, "{output:#}");
    let found = findings(&output, "dump-client-missing");
    assert_eq!(found.len(), 1, "{output:#}");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("/nowhere/mysqldump"),
        "{output:#}"
    );

    let refusing = world.dir.join("refusing-dump");
    write_script(
        &refusing,
        "#!/bin/sh\necho \"mysqldump: Got error: 1045: Access denied for user 'oms'\" >&2\nexit 2\n",
    );
    let mut fails = read_plan(&world);
    fails.backup.dump_command = Some(refusing.clone());
    let (code, output) = plan_json(&write_plan(&world, "fails.toml", &fails));
    assert_eq!(code, 1, "{output:#}");
    let found = findings(&output, "dump-client-fails");
    assert_eq!(found.len(), 1, "{output:#}");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("Access denied"),
        "{output:#}"
    );

    let tiny = TinyFs::mount(world.dir.join("tiny-backups"));
    let mut cramped = read_plan(&world);
    cramped.backup.dir = tiny.0.clone();
    let (code, output) = plan_json(&write_plan(&world, "cramped.toml", &cramped));
    assert_eq!(code, 1, "{output:#}");
    let found = findings(&output, "backup-space");
    assert_eq!(found.len(), 1, "{output:#}");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("64.0 KiB free"),
        "{output:#}"
    );
    drop(tiny);

    // A MySQL 8 mysqldump against MariaDB (no COLUMN_STATISTICS) fails unless told
    // `--column-statistics=0`: omsup detects it and adapts, in the preflight and the backups.
    let log = world.dir.join("mysqldump8.log");
    let mysql8 = world.dir.join("mysqldump8");
    write_script(
        &mysql8,
        &format!(
            "#!/bin/sh\n\
             if [ \"$1\" = --version ]; then echo 'mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)'; exit 0; fi\n\
             echo \"$*\" | sed 's/--defaults-extra-file=[^ ]*//' >> {log}\n\
             case \" $* \" in *' --column-statistics=0 '*) ;; *) echo \"mysqldump: Couldn't execute 'SELECT COLUMN_NAME FROM information_schema.COLUMN_STATISTICS': Unknown table 'COLUMN_STATISTICS' in information_schema (1109)\" >&2; exit 2;; esac\n\
             for a do shift; [ \"$a\" = --column-statistics=0 ] || set -- \"$@\" \"$a\"; done\n\
             exec mariadb-dump \"$@\"\n",
            log = log.display()
        ),
    );
    let mut adapted = read_plan(&world);
    adapted.backup.dump_command = Some(mysql8);
    let adapted_path = write_plan(&world, "mysql8.toml", &adapted);
    let (code, output) = plan_json(&adapted_path);
    assert_eq!(code, 0, "{output:#}");
    assert!(codes(&output).is_empty(), "{output:#}");
    let before = before(&world).await;
    let run = omsup(&["apply", "-f", &adapted_path.display().to_string(), "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    let calls = std::fs::read_to_string(&log).unwrap();
    let dumps: Vec<&str> = calls.lines().collect();
    // The preflight of plan and of apply (schema only), then one backup per database.
    assert_eq!(dumps.len(), 2 + world.databases().len(), "{calls}");
    assert!(
        dumps
            .iter()
            .all(|call| call.contains("--column-statistics=0")),
        "{calls}"
    );
    assert_eq!(
        dumps
            .iter()
            .filter(|call| !call.contains("--no-data"))
            .count(),
        world.databases().len(),
        "{calls}"
    );
    assert_upgraded(&world, &before, "mysqldump 8 adapted").await;
}
