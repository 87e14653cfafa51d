//! End-to-end `omsup apply` / `omsup resume` scenarios through the real binary on real worlds:
//! init once per region or per node, the `oms_version` remedy, a failing init then resumed, a
//! resume with a changed plan file (its `omsup report` checked in a browser), and the meta password kept out of argv, logs, the journal,
//! saved plans and backup names.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use omsup_testworld::{RegionSpec, World, WorldSpec};
use serde_json::Value;

use crate::apply::{plan_arg, plan_steps, show, status_json};
use crate::support::{Run, omsup, omsup_env, resume_after_kill, up, workspace_root};

/// The journaled record of step `id` in `omsup status --format json`.
pub(crate) fn status_step<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["run"]["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step_id"] == id))
        .unwrap_or_else(|| panic!("no step `{id}` in the status:\n{status:#}"))
}

/// The ids of the journaled steps whose id ends with `suffix`.
fn status_steps_ending(status: &Value, suffix: &str) -> BTreeSet<String> {
    status["run"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in the status:\n{status:#}"))
        .iter()
        .filter_map(|s| s["step_id"].as_str())
        .filter(|id| id.ends_with(suffix))
        .map(str::to_owned)
        .collect()
}

/// Rows in the world's `rm.oms_version`.
async fn oms_version_rows(world: &World) -> u64 {
    let tables = world.table_checksums(&world.rm).await.unwrap();
    tables
        .get("oms_version")
        .unwrap_or_else(|| panic!("no oms_version table in {}: {tables:?}", world.rm))
        .0
}

/// Every node ONLINE in cm.host, running the 4.2.9 image, healthy with the meta schema recorded
/// at 4.2.9 (the newest `rm.oms_version` row); a second plan has nothing left to do.
pub(crate) async fn assert_online_on_4_2_9(world: &World, context: &str) {
    let statuses = world.host_statuses().await.unwrap();
    for node in &world.nodes {
        assert_eq!(
            statuses.get(&node.ip).map(String::as_str),
            Some("ONLINE"),
            "{context}: node {} in cm.host: {statuses:?}",
            node.ip
        );
        let docker = node.docker().unwrap();
        let container = docker.inspect_container(&world.container, None).await;
        let container = container.unwrap_or_else(|e| panic!("{context}: {}: {e}", node.ip));
        let image = container.config.and_then(|c| c.image);
        let running = container.state.and_then(|s| s.running);
        assert_eq!(
            (image.as_deref(), running),
            (Some("oms:feature_4.2.9-ce"), Some(true)),
            "{context}: the container on node {}",
            node.ip
        );
        let health = node
            .health_answer()
            .await
            .and_then(|answer| answer.json())
            .unwrap_or_else(|e| panic!("{context}: {}: {e}", node.health_url()));
        assert_eq!(
            (
                &health["data"]["healthy"],
                &health["data"]["version"],
                &health["data"]["schemaVersion"]
            ),
            (
                &Value::Bool(true),
                &Value::from("4.2.9-CE"),
                &Value::from("4.2.9-CE")
            ),
            "{context}: node {} health: {health}",
            node.ip
        );
    }
    let plan = plan_arg(world);
    let again = omsup(&["plan", "-f", &plan, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{context}: a second plan\n{}", show(&again));
}

pub(crate) fn assert_exit(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, code, "{what}\n{}", show(run));
}

#[tokio::test]
async fn two_regions_init_once_in_the_shared_region_and_per_node_in_the_other() {
    let spec = WorldSpec {
        regions: vec![
            RegionSpec {
                name: "hz".into(),
                nodes: 2,
                shared_cm_nodes: true,
            },
            RegionSpec {
                name: "sh".into(),
                nodes: 2,
                shared_cm_nodes: false,
            },
        ],
        ..WorldSpec::two_nodes()
    };
    let world = up(spec).await;
    let plan = plan_arg(&world);
    let hz: Vec<&str> = world
        .nodes
        .iter()
        .filter(|n| n.region == "hz")
        .map(|n| n.ip.as_str())
        .collect();
    let sh: Vec<&str> = world
        .nodes
        .iter()
        .filter(|n| n.region == "sh")
        .map(|n| n.ip.as_str())
        .collect();
    assert_eq!((hz.len(), sh.len()), (2, 2));
    let mut expected: BTreeSet<String> = sh.iter().map(|ip| format!("node[{ip}].init")).collect();
    expected.insert("region[hz].init".to_owned());

    let planned: BTreeSet<String> = plan_steps(&plan)
        .into_iter()
        .filter(|id| id.ends_with(".init"))
        .collect();
    assert_eq!(
        planned, expected,
        "init once for the shared region, once per node in the other"
    );

    let applied = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_exit(&applied, 0, "apply");
    assert!(
        applied.stderr.contains("Apply complete"),
        "{}",
        show(&applied)
    );

    // The journal says which init steps ran, where, and for what scope.
    let status = status_json(&plan);
    assert_eq!(status["run"]["result"], "succeeded", "{status:#}");
    assert_eq!(
        status_steps_ending(&status, ".init"),
        expected,
        "{status:#}"
    );
    let region = status_step(&status, "region[hz].init");
    assert_eq!(region["state"], "succeeded", "{region:#}");
    assert_eq!(region["outputs"]["scope"], "region hz", "{region:#}");
    let ran_on = region["outputs"]["run_on"].as_str().unwrap_or_default();
    assert!(
        hz.contains(&ran_on),
        "region init ran on {ran_on}: {region:#}"
    );
    for ip in &sh {
        let node = status_step(&status, &format!("node[{ip}].init"));
        assert_eq!(node["state"], "succeeded", "{node:#}");
        assert_eq!(node["outputs"]["scope"], format!("node {ip}"), "{node:#}");
        assert_eq!(node["outputs"]["run_on"], *ip, "{node:#}");
    }
    assert_online_on_4_2_9(&world, "two regions").await;
}

#[tokio::test]
async fn apply_without_an_oms_version_row_records_it_through_the_remedy() {
    let world = up(WorldSpec {
        with_oms_version_row: false,
        ..WorldSpec::two_nodes()
    })
    .await;
    let plan = plan_arg(&world);
    assert_eq!(
        oms_version_rows(&world).await,
        0,
        "the world must start without an oms_version row"
    );

    let applied = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_exit(&applied, 0, "apply without an oms_version row");
    assert!(
        applied.stderr.contains("region[hz].init")
            && applied
                .stderr
                .contains("succeeded after the oms_version remedy"),
        "the progress must say the remedy was needed\n{}",
        show(&applied)
    );

    let status = status_json(&plan);
    let init = status_step(&status, "region[hz].init");
    assert_eq!(init["state"], "succeeded", "{init:#}");
    assert_eq!(init["outputs"]["oms_version_remedy"], true, "{init:#}");
    assert!(
        oms_version_rows(&world).await > 0,
        "rm.oms_version is still empty"
    );
    assert_online_on_4_2_9(&world, "after the oms_version remedy").await;
}

#[tokio::test]
async fn a_failing_init_stops_the_apply_and_resume_finishes_it() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    // The region's init runs on its first node: its next init fails once (the knob file is
    // deleted when it fires).
    let knob = world.nodes[0].run_dir().join("sim-init-fail-once");
    std::fs::write(&knob, "").unwrap();

    let failed = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_exit(&failed, 1, "apply with an init that fails once");
    let stderr = &failed.stderr;
    let error_line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no `error:` line\n{}", show(&failed)));
    assert!(error_line.contains("1 step failed"), "{}", show(&failed));
    assert!(
        error_line.contains("`region[hz].init`"),
        "the error must name the init step\n{}",
        show(&failed)
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("hint:")).count(),
        1,
        "one hint\n{}",
        show(&failed)
    );
    assert!(
        stderr.contains("simulated init failure (fault knob)"),
        "the error must show the init log's tail\n{}",
        show(&failed)
    );
    let hint = stderr
        .lines()
        .rfind(|l| l.starts_with("hint:"))
        .unwrap_or_else(|| panic!("no `hint:` line\n{}", show(&failed)));
    assert!(hint.contains("omsup resume"), "{}", show(&failed));
    assert!(!knob.exists(), "the knob must have fired");

    let status = status_json(&plan);
    assert_eq!(status["run"]["result"], "failed", "{status:#}");
    let init = status_step(&status, "region[hz].init");
    assert_eq!(init["state"], "failed", "{init:#}");
    assert!(
        init["error"]
            .as_str()
            .unwrap_or_default()
            .contains("simulated init failure"),
        "{init:#}"
    );
    assert_eq!(status_step(&status, "ha.restore")["state"], "pending");

    let resumed = omsup(&["resume", "-f", &plan, "--yes"]);
    assert_exit(&resumed, 0, "resume after the failed init");
    let status = status_json(&plan);
    assert_eq!(status["run"]["result"], "succeeded", "{status:#}");
    let init = status_step(&status, "region[hz].init");
    assert_eq!(init["state"], "succeeded", "{init:#}");
    assert_eq!(init["attempts"], 2, "{init:#}");
    assert_eq!(
        init["outputs"]["run_on"], world.nodes[0].ip,
        "the knob was set on the node init runs on: {init:#}"
    );
    assert_online_on_4_2_9(&world, "resumed after a failed init").await;
    crate::report::assert_report_shows_the_run(&plan, &world.dir, &status, "region[hz].init");
}

#[tokio::test]
async fn resume_refuses_a_changed_plan_file_and_accepts_changed_timeouts() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let killed = omsup_env(
        &["apply", "-f", &plan, "--yes"],
        &[("OMSUP_FAILPOINTS", "before:ha.restore")],
    );
    assert_exit(&killed, -1, "apply killed before ha.restore");
    assert!(killed.stderr.contains("failpoint"), "{}", show(&killed));

    let original = std::fs::read_to_string(&world.plan_path).unwrap();
    let retagged = original.replace(
        "tag = \"oms:feature_4.2.9-ce\"",
        "tag = \"oms:feature_4.2.9-ce-hotfix\"",
    );
    assert_ne!(
        retagged, original,
        "the world's plan file names the 4.2.9 tag"
    );
    std::fs::write(&world.plan_path, &retagged).unwrap();
    let lint = omsup(&["lint", &plan]);
    assert_exit(&lint, 0, "the changed plan file lints clean");

    let refused = resume_after_kill(&plan);
    assert_exit(&refused, 3, "resume with a changed [image]");
    assert!(
        refused
            .stderr
            .contains("changed since the run began, in [image]"),
        "{}",
        show(&refused)
    );
    let status = status_json(&plan);
    assert_ne!(status["run"]["result"], "succeeded", "{status:#}");
    assert_ne!(
        status_step(&status, "ha.restore")["state"],
        "succeeded",
        "{status:#}"
    );

    let stop_line = "stop = \"30s\"";
    assert!(original.contains(stop_line), "{original}");
    let retimed = original.replace(stop_line, "stop = \"45s\"");
    std::fs::write(&world.plan_path, &retimed).unwrap();
    let resumed = resume_after_kill(&plan);
    assert_exit(&resumed, 0, "resume with a changed [timeouts]");
    assert!(
        resumed.stderr.contains("changed in [timeouts]") && resumed.stderr.contains("harmless"),
        "{}",
        show(&resumed)
    );
    let status = status_json(&plan);
    assert_eq!(status["run"]["result"], "succeeded", "{status:#}");
    assert_eq!(status_step(&status, "ha.restore")["state"], "succeeded");
    let pool = world.meta_pool().await.unwrap();
    let ha = omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap()
        .to_value();
    assert_eq!(ha["enable"], true, "{ha}");
    assert_online_on_4_2_9(&world, "resumed with changed timeouts").await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_meta_password_stays_out_of_argv_logs_journal_saved_plans_and_backup_names() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let password = std::fs::read_to_string(&world.password_file).unwrap();
    let password = password.trim().to_owned();
    assert!(
        password.len() >= 8,
        "too short to search for: {}",
        password.len()
    );
    let redact = |text: &str| text.replace(&password, "<PASSWORD>");

    // A dump client slow enough to be seen in the process list.
    let wrapper = world.dir.join("slow-dump.sh");
    std::fs::write(&wrapper, "#!/bin/sh\nsleep 1\nexec mariadb-dump \"$@\"\n").unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&world.plan_path).unwrap();
    let with_wrapper = text.replacen(
        "[backup]\n",
        &format!("[backup]\ndump_command = \"{}\"\n", wrapper.display()),
        1,
    );
    assert_ne!(
        with_wrapper, text,
        "the world's plan file has a [backup] section"
    );
    std::fs::write(&world.plan_path, with_wrapper).unwrap();

    let saved = world.dir.join("saved-plan.json");
    let saved_arg = saved.display().to_string();
    let planned = omsup(&["plan", "-f", &plan, "--out", &saved_arg]);
    assert_exit(&planned, 0, "plan --out");

    let mut child = Command::new(env!("CARGO_BIN_EXE_omsup"))
        .args([
            "-vvv",
            "--log-format",
            "json",
            "apply",
            "-f",
            &plan,
            "--yes",
        ])
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("OMSUP_FAILPOINTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the omsup binary runs");
    // Drained on threads: trace logs fill a pipe long before the run ends.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));

    let wrapper_text = wrapper.display().to_string();
    let our_dump = format!("{}_", world.id);
    let (mut polls, mut dumps_seen) = (0, 0);
    // The option files the dump client was given (they must be pipes, see below).
    let mut option_files = BTreeSet::new();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the apply did not end within 300 s"
        );
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let listing = String::from_utf8_lossy(&ps.stdout);
        polls += 1;
        for line in listing.lines() {
            assert!(
                !line.contains(&password),
                "the meta password is in a command line: {}",
                redact(line)
            );
            if line.contains(&wrapper_text)
                || (line.contains("mariadb-dump") && line.contains(&our_dump))
            {
                dumps_seen += 1;
                option_files.extend(
                    line.split_whitespace()
                        .filter_map(|arg| arg.strip_prefix("--defaults-extra-file="))
                        .map(PathBuf::from),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    };
    let shown = || redact(&show(&run));
    assert_eq!(run.code, 0, "apply with the slow dump client\n{}", shown());
    eprintln!(
        "process list polled {polls} times in {:?}; the dump client seen {dumps_seen} times; {} bytes of logs",
        started.elapsed(),
        run.stderr.len()
    );
    assert!(
        dumps_seen > 0,
        "the dump client was never seen running in {polls} polls: the check proves nothing"
    );
    assert!(
        run.stderr.contains("\"level\":\"TRACE\"") || run.stderr.contains("\"level\":\"DEBUG\""),
        "-vvv must log at trace level\n{}",
        shown()
    );

    assert!(
        !option_files.is_empty(),
        "the dump client was given no `--defaults-extra-file`"
    );
    for file in &option_files {
        // Read from an inherited pipe: nothing holding the password is ever on disk.
        assert!(
            file.starts_with("/dev/fd/"),
            "the client option file {} is a file on disk",
            file.display()
        );
    }
    assert!(!run.stdout.contains(&password), "in stdout\n{}", shown());
    assert!(!run.stderr.contains(&password), "in stderr\n{}", shown());
    let state_dir = world.dir.join(".omsup");
    let journal_files = files_under(&state_dir);
    assert!(
        journal_files
            .iter()
            .any(|f| f.to_string_lossy().ends_with(".sqlite")),
        "no journal in {}: {journal_files:?}",
        state_dir.display()
    );
    for file in &journal_files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !contains_bytes(&bytes, password.as_bytes()),
            "the meta password is in the journal file {}",
            file.display()
        );
    }
    let saved_text = std::fs::read_to_string(&saved).unwrap();
    assert!(
        !saved_text.contains(&password),
        "the meta password is in the saved plan {}",
        saved.display()
    );
    let backups = files_under(&world.dir.join("backups"));
    assert!(
        backups
            .iter()
            .any(|f| f.to_string_lossy().ends_with(&format!("{}.sql", world.rm))),
        "no backup of {}: {backups:?}",
        world.rm
    );
    for file in &backups {
        assert!(
            !file.to_string_lossy().contains(&password),
            "the meta password is in a backup's name: {}",
            redact(&file.display().to_string())
        );
    }
    assert_online_on_4_2_9(&world, "apply with the slow dump client").await;
}
