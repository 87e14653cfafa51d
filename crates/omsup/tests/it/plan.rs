//! `omsup plan` and `omsup graph` against the real test world: simulator containers on their
//! own Docker daemons and a real MariaDB. The services must be running; these tests fail loudly
//! (never skip) when they are not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use omsup_model::PlanFile;
use omsup_model::plan::Mounts;
use omsup_testworld::world::{ensure_image, exec_init, image_tag, remove_named, wait_for_log};
use omsup_testworld::{World, WorldSpec};

use crate::support::{Run, omsup, up};

/// An upper bound that only guards against hangs (an unreachable service must fail in seconds).
const HANG_GUARD: Duration = Duration::from_secs(20);

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `omsup` with the given arguments, and how long it took.
fn timed(args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let run = omsup(args);
    (run, started.elapsed())
}

pub(crate) fn read_plan(world: &World) -> PlanFile {
    let text = std::fs::read_to_string(&world.plan_path).unwrap();
    toml::from_str(&text).unwrap()
}

/// Writes a variant of the world's plan file next to it and returns its path.
pub(crate) fn write_plan(world: &World, name: &str, plan: &PlanFile) -> PathBuf {
    let path = world.dir.join(name);
    std::fs::write(&path, toml::to_string(plan).unwrap()).unwrap();
    path
}

fn escape(text: &str) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Filters for everything that differs between worlds and runs.
fn volatile_filters(world: &World) -> Vec<(String, String)> {
    // Node k's address differs per world: `[NET].<k+1>`.
    let nodes = world.nodes.iter().map(|node| {
        (
            format!(r"{}\b", escape(&node.ip)),
            format!("[NET].{}", node.index + 1),
        )
    });
    nodes
        .chain([
            (escape(&world.dir.display().to_string()), "[WORLD]".into()),
            (
                escape(&omsup_testworld::world::target_dir().display().to_string()),
                "[TARGET]".into(),
            ),
            // The world's id is in its container, database and deployment names (`oms_w7`, `w7_rm`).
            (escape(&world.id), "[W]".into()),
            (r"sha256:[0-9a-f]{64}".into(), "sha256:[ID]".into()),
            (r"\b[0-9a-f]{64}\b".into(), "[HASH]".into()),
            (r"\b[0-9a-f]{12}\b".into(), "[ID]".into()),
            (
                r"\b\d+(\.\d+)? ?(B|KiB|MiB|GiB|TiB|bytes)\b".into(),
                "[SIZE]".into(),
            ),
            (r"\b\d+ (heartbeat )?rows\b".into(), "[N] rows".into()),
            // Columns are as wide as the longest step id, which holds the world's IPs: keep the
            // words, not the padding.
            (r"(\S) {2,}".into(), "$1  ".into()),
        ])
        .collect()
}

fn assert_fast(took: Duration, what: &str) {
    assert!(
        took < HANG_GUARD,
        "{what} took {took:?}: an unreachable service must fail in seconds"
    );
}

#[tokio::test]
async fn plan_on_the_two_node_world_shows_every_step_and_exits_2() {
    let world = up(WorldSpec::two_nodes()).await;
    // The daemons are shared by every test: whether the target image is already loaded depends
    // on what ran before. Load it, so the snapshot is the same on every run (no load steps).
    for node in &world.nodes {
        ensure_image(&node.docker().unwrap(), &world.spec.target_version)
            .await
            .unwrap();
    }
    let plan_path = path_arg(&world.plan_path);
    let (run, took) = timed(&["plan", "-f", plan_path, "--detailed-exitcode"]);
    eprintln!("omsup plan on a two-node world took {took:?}");
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    for node in &world.nodes {
        for step in ["stop-old", "start-new"] {
            let id = format!("node[{}].{step}", node.ip);
            assert!(run.stdout.contains(&id), "missing {id} in:\n{}", run.stdout);
        }
    }
    for database in world.databases() {
        let id = format!("db[{database}].backup");
        assert!(run.stdout.contains(&id), "missing {id} in:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("ha.off"), "{}", run.stdout);
    assert!(run.stdout.contains("Plan: "), "{}", run.stdout);

    // The JSON form: the same steps, with dependencies that respect the upgrade's order.
    let json = omsup(&["plan", "-f", plan_path, "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let steps = value["steps"].as_array().expect("`steps` is an array");
    let depends = |id: &str| -> Vec<String> {
        let step = steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id} in {}", json.stdout));
        step["depends_on"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect()
    };
    let position = |id: &str| steps.iter().position(|s| s["id"] == id).unwrap();
    for node in &world.nodes {
        let start = format!("node[{}].start-new", node.ip);
        let stop = format!("node[{}].stop-old", node.ip);
        assert!(position(&stop) < position(&start));
        // HA is off before anything stops; backups are taken between the stop and the start.
        assert!(position("ha.off") < position(&stop));
        for database in world.databases() {
            let backup = position(&format!("db[{database}].backup"));
            assert!(position(&stop) < backup && backup < position(&start));
        }
        assert!(
            depends(&start).contains(&stop),
            "{start} does not wait for {stop}"
        );
    }

    let filters = volatile_filters(&world);
    insta::with_settings!({ filters => filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>() }, {
        insta::assert_snapshot!("plan_two_nodes_human", run.stdout);
        insta::assert_json_snapshot!("plan_two_nodes_json_shape", json_shape(&value));
    });
}

/// The JSON document with every leaf replaced by its type: the shape, not the values.
fn json_shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Null => Value::String("null".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::String(_) => Value::String("string".into()),
        Value::Array(items) => Value::Array(items.first().map(json_shape).into_iter().collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), json_shape(value)))
                .collect(),
        ),
    }
}

/// Does by hand what the upgrade does to one node: the old container goes, the target version
/// runs under the plan's name with the same mounts and `IS_UPGRADE=true`.
async fn replace_by_hand(world: &World, node: &omsup_testworld::WorldNode) {
    let docker = node.docker().unwrap();
    ensure_image(&docker, &world.spec.target_version)
        .await
        .unwrap();
    remove_named(&docker, &world.container).await.unwrap();
    world
        .start_node(
            &docker,
            node,
            &image_tag(&world.spec.target_version),
            &["IS_UPGRADE=true".to_owned()],
        )
        .await
        .unwrap();
    wait_for_log(
        &docker,
        &world.container,
        "OMS service start successfully",
        Duration::from_secs(30),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_fully_upgraded_world_has_no_changes_and_exits_0() {
    let world = up(WorldSpec::two_nodes()).await;
    for node in &world.nodes {
        replace_by_hand(&world, node).await;
    }
    let docker = world.nodes[0].docker().unwrap();
    let (code, output) = exec_init(&docker, &world.container, Vec::new())
        .await
        .unwrap();
    assert_eq!(code, 0, "init failed:\n{output}");

    let run = omsup(&[
        "plan",
        "-f",
        path_arg(&world.plan_path),
        "--detailed-exitcode",
    ]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("No changes"), "{}", run.stdout);
}

#[tokio::test]
async fn a_node_replaced_by_hand_leaves_only_the_other_nodes_steps() {
    let world = up(WorldSpec::two_nodes()).await;
    let (done, todo) = (&world.nodes[0], &world.nodes[1]);
    replace_by_hand(&world, done).await;

    let run = omsup(&["plan", "-f", path_arg(&world.plan_path), "--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|_| panic!("not JSON:\n{}\nstderr:\n{}", run.stdout, run.stderr));
    let ids: Vec<&str> = value["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let done_prefix = format!("node[{}].", done.ip);
    let todo_prefix = format!("node[{}].", todo.ip);
    assert!(
        !ids.iter().any(|id| id.starts_with(&done_prefix)),
        "the replaced node still has steps: {ids:?}"
    );
    assert!(
        ids.iter()
            .any(|id| *id == format!("{todo_prefix}start-new")),
        "the other node has no steps: {ids:?}"
    );
}

#[tokio::test]
async fn a_mount_changed_by_hand_fails_preflight_naming_the_node_and_the_path() {
    let world = up(WorldSpec::two_nodes()).await;
    let node = &world.nodes[1];
    // The plan declares the mounts as deployed; then the store is moved by hand.
    let mut plan = read_plan(&world);
    let declared = Mounts {
        config: node.config_path(),
        logs: node.logs_dir(),
        store: node.store_dir(),
        run: node.run_dir(),
    };
    for region in &mut plan.regions {
        for plan_node in &mut region.nodes {
            if plan_node.ip == node.ip {
                plan_node.mounts = Some(declared.clone());
            }
        }
    }
    let plan_path = write_plan(&world, "plan-with-mounts.toml", &plan);
    let moved_store = world.dir.join("moved-store");
    std::fs::create_dir_all(&moved_store).unwrap();
    let docker = node.docker().unwrap();
    remove_named(&docker, &world.container).await.unwrap();
    let binds: Vec<String> = node
        .binds()
        .into_iter()
        .map(|bind| {
            if bind.ends_with(":/home/ds/store") {
                format!("{}:/home/ds/store", moved_store.display())
            } else {
                bind
            }
        })
        .collect();
    let body = ContainerCreateBody {
        image: Some(image_tag(&world.spec.version)),
        env: Some(vec![format!("OMS_HOST_IP={}", node.ip)]),
        tty: Some(true),
        host_config: Some(HostConfig {
            binds: Some(binds),
            network_mode: Some("host".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name(&world.container)
                    .build(),
            ),
            body,
        )
        .await
        .unwrap();
    docker
        .start_container(&world.container, None)
        .await
        .unwrap();

    let run = omsup(&["plan", "-f", path_arg(&plan_path)]);
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains(&node.ip), "the node is not named:\n{all}");
    assert!(
        all.contains(&moved_store.display().to_string()),
        "the observed path is not named:\n{all}"
    );
    assert!(
        all.contains("/home/ds/store"),
        "the mount is not named:\n{all}"
    );
}

#[tokio::test]
async fn an_unreachable_daemon_fails_in_seconds_with_a_hint() {
    let world = up(WorldSpec::two_nodes()).await;
    let mut plan = read_plan(&world);
    let missing_socket = world.dir.join("no-such-docker.sock");
    plan.regions[0].nodes[1].docker = format!("unix://{}", missing_socket.display());
    plan.regions[0].nodes[1].tls = None;
    plan.regions[0].nodes[1].ssh = None;
    let plan_path = write_plan(&world, "plan-unreachable-daemon.toml", &plan);

    let (run, took) = timed(&["plan", "-f", path_arg(&plan_path)]);
    eprintln!("an unreachable daemon failed after {took:?}");
    assert_fast(took, "an unreachable daemon");
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "error: cannot reach the Docker daemon of node {}",
            world.nodes[1].ip
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("caused by:"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the node's Docker daemon did not answer: no socket at"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[tokio::test]
async fn an_unreachable_meta_database_fails_in_seconds_with_a_hint() {
    let world = up(WorldSpec::two_nodes()).await;
    let mut plan = read_plan(&world);
    // A port nothing listens on: bind one, note it, and let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    plan.meta_db.port = port;
    let plan_path = write_plan(&world, "plan-unreachable-db.toml", &plan);

    let (run, took) = timed(&["plan", "-f", path_arg(&plan_path)]);
    eprintln!("an unreachable meta database failed after {took:?}");
    assert_fast(took, "an unreachable meta database");
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "error: cannot reach the meta database at `{}:{port}`",
            plan.meta_db.host
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("caused by:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: is the meta DB reachable"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_plan_from_4_1_0_is_refused_with_the_allowed_sources() {
    let world = up(WorldSpec {
        version: "4.1.0".into(),
        ..WorldSpec::two_nodes()
    })
    .await;
    // As written (the operator says 4.1.0): refused before anything is observed.
    let run = omsup(&["plan", "-f", path_arg(&world.plan_path)]);
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains("4.1.0"), "{}", run.stderr);
    assert!(
        run.stderr.contains("4.2."),
        "no allowed source named:\n{}",
        run.stderr
    );

    // Without `current_version`: the observed 4.1.0 is refused just the same.
    let mut plan = read_plan(&world);
    plan.deployment.current_version = None;
    let plan_path = write_plan(&world, "plan-observed-version.toml", &plan);
    let run = omsup(&["plan", "-f", path_arg(&plan_path)]);
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("4.1.0"), "{all}");
    assert!(all.contains("4.2."), "no allowed source named:\n{all}");
}

#[tokio::test]
async fn a_saved_plan_and_every_output_hold_no_password() {
    let world = up(WorldSpec::two_nodes()).await;
    let password = std::fs::read_to_string(&world.password_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        password.len() >= 8,
        "the world's password is too short to search for"
    );
    let saved = world.dir.join("saved-plan.json");
    let run = omsup(&[
        "plan",
        "-f",
        path_arg(&world.plan_path),
        "--out",
        path_arg(&saved),
        "-vv",
    ]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let saved_text = std::fs::read_to_string(&saved).unwrap();
    let value: serde_json::Value = serde_json::from_str(&saved_text).unwrap();
    assert!(value["format_version"].is_number(), "{saved_text}");
    assert!(
        !saved_text.contains(&password),
        "the saved plan holds the password"
    );
    assert!(!run.stdout.contains(&password), "stdout holds the password");
    assert!(!run.stderr.contains(&password), "stderr holds the password");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the saved plan is readable by others");
    }
    // `graph` draws a saved plan as it was saved, observing nothing: the same steps and edges
    // as `graph -f` on the unchanged world (the tooltips may differ: heartbeats keep
    // arriving), and still drawn once the world is gone.
    let observed = omsup(&["graph", "-f", path_arg(&world.plan_path)]);
    let drawn = omsup(&["graph", path_arg(&saved)]);
    assert_eq!((observed.code, drawn.code), (0, 0), "{}", drawn.stderr);
    assert!(drawn.stdout.starts_with("digraph"), "{}", drawn.stdout);
    let edges = |dot: &str| -> Vec<String> {
        dot.lines()
            .filter(|l| l.contains(" -> "))
            .map(str::to_owned)
            .collect()
    };
    assert!(edges(&drawn.stdout).len() >= 20, "{}", drawn.stdout);
    assert_eq!(edges(&drawn.stdout), edges(&observed.stdout));
    let kept = tempfile::tempdir().unwrap();
    let saved = kept.path().join("saved-plan.json");
    std::fs::write(&saved, &saved_text).unwrap();
    world.down().await.unwrap();
    let offline = omsup(&["graph", path_arg(&saved)]);
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert_eq!(offline.stdout, drawn.stdout);
}

#[tokio::test]
async fn graph_prints_the_steps_as_dot() {
    let world = up(WorldSpec::two_nodes()).await;
    let run = omsup(&["graph", "-f", path_arg(&world.plan_path)]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.trim_start().starts_with("digraph"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("->"), "{}", run.stdout);
    for node in &world.nodes {
        assert!(
            run.stdout.contains(&format!("node[{}].start-new", node.ip)),
            "{}",
            run.stdout
        );
    }
}
