//! `omsup apply` and `omsup resume` through the real binary on real worlds: the upgrade's end
//! state, the refusals (no confirmation, a stale saved plan, a held lock), and the crash matrix:
//! killed before and after every step, then resumed, always the same end state.

use std::collections::BTreeMap;
use std::time::Duration;

use omsup_testworld::{World, WorldSpec};
use serde_json::Value;

use crate::support::{Run, omsup, omsup_env, resume_after_kill, up};

pub(crate) fn show(run: &Run) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

pub(crate) fn plan_arg(world: &World) -> String {
    world.plan_path.display().to_string()
}

/// What must survive an upgrade, read before it.
pub(crate) struct Before {
    rm: BTreeMap<String, (u64, Option<i64>)>,
    store: Vec<(std::path::PathBuf, String)>,
    /// What HA had done before the run (a test that restarts a node itself may make it act).
    ha_events: Vec<(String, String)>,
}

pub(crate) async fn before(world: &World) -> Before {
    // The simulator appends to its store file while running: wait until it wrote something.
    let mut store = Vec::new();
    for node in &world.nodes {
        let text = node
            .wait_store_longer_than(0, Duration::from_secs(20))
            .await;
        store.push((node.store_file(), text));
    }
    Before {
        rm: world.table_checksums(&world.rm).await.unwrap(),
        store,
        ha_events: world.ha_events().await.unwrap(),
    }
}

/// The end state of a successful 4.2.8 -> 4.2.9 upgrade, whatever happened on the way.
pub(crate) async fn assert_upgraded(world: &World, before: &Before, context: &str) {
    let after = world.table_checksums(&world.rm).await.unwrap();
    for table in ["oms_project", "cluster_info"] {
        assert_eq!(after[table], before.rm[table], "{context}: {table} changed");
    }
    assert!(
        after.contains_key("oms_alarm_event"),
        "{context}: the 4.2.9 schema is missing"
    );
    let statuses = world.host_statuses().await.unwrap();
    for node in &world.nodes {
        assert_eq!(
            statuses[&node.ip], "ONLINE",
            "{context}: {} offline",
            node.ip
        );
        let docker = node.docker().unwrap();
        let new = docker
            .inspect_container(&world.container, None)
            .await
            .unwrap();
        assert_eq!(
            new.config.unwrap().image.as_deref(),
            Some("oms:feature_4.2.9-ce"),
            "{context}: {}",
            node.ip
        );
        assert_eq!(new.state.unwrap().running, Some(true), "{context}");
        let old = docker
            .inspect_container(&format!("{}-omsup-4.2.8", world.container), None)
            .await
            .unwrap_or_else(|e| panic!("{context}: the old container of {} is gone: {e}", node.ip));
        assert_eq!(
            old.state.unwrap().running,
            Some(false),
            "{context}: the kept old container must be stopped"
        );
    }
    for (file, text) in &before.store {
        assert!(
            std::fs::read_to_string(file)
                .unwrap()
                .starts_with(text.as_str()),
            "{context}: {} lost data",
            file.display()
        );
    }
    let pool = world.meta_pool().await.unwrap();
    let ha = omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap()
        .to_value();
    assert_eq!(ha["enable"], true, "{context}: {ha}");
    assert!(
        ha["refetchStoreIntervalMin"].as_u64().unwrap_or(0) >= 1,
        "{context}: {ha}"
    );
    // HA was off whenever a node was down: the simulator never had to act.
    let events = world.ha_events().await.unwrap();
    assert_eq!(
        events.get(..before.ha_events.len()),
        Some(before.ha_events.as_slice()),
        "{context}: HA events changed"
    );
    assert!(
        events.len() == before.ha_events.len(),
        "{context}: HA acted during the upgrade: {:?}",
        &events[before.ha_events.len()..]
    );
    let plan = world.plan_path.display().to_string();
    let again = omsup(&["plan", "-f", &plan, "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{context}: a second plan\n{}", show(&again));
    assert!(again.stdout.contains("No changes"), "{}", show(&again));
}

pub(crate) fn status_json(plan: &str) -> Value {
    let status = omsup(&["status", "-f", plan, "--format", "json"]);
    assert_eq!(status.code, 0, "{}", show(&status));
    serde_json::from_str(&status.stdout).unwrap()
}

#[tokio::test]
async fn apply_upgrades_the_world_and_status_shows_every_step() {
    let world = up(WorldSpec::two_nodes()).await;
    let before = before(&world).await;
    let plan = plan_arg(&world);
    let run = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert!(run.stderr.contains("Apply complete"), "{}", show(&run));
    assert_upgraded(&world, &before, "apply").await;

    let status = status_json(&plan);
    let text = status.to_string();
    assert!(text.contains("\"succeeded\""), "{status:#}");
    for step in ["ha.off", "online.verify", "ha.restore", "region[hz].init"] {
        assert!(text.contains(step), "status lacks {step}: {status:#}");
    }
}

#[tokio::test]
async fn apply_refuses_without_confirmation_and_a_stale_saved_plan_names_the_fact() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);

    // No terminal and no --yes: refused, nothing touched, no run recorded.
    let refused = omsup(&["apply", "-f", &plan]);
    assert_eq!(refused.code, 3, "{}", show(&refused));
    assert!(refused.stderr.contains("--yes"), "{}", show(&refused));
    let still = omsup(&["plan", "-f", &plan, "--detailed-exitcode"]);
    assert_eq!(still.code, 2, "nothing may have changed\n{}", show(&still));

    // A saved plan, then a hand change to the world: refused, naming what changed.
    let saved = world.dir.join("saved-plan.json");
    let saved_arg = saved.display().to_string();
    let planned = omsup(&["plan", "-f", &plan, "--out", &saved_arg]);
    assert_eq!(planned.code, 0, "{}", show(&planned));
    let node = &world.nodes[1];
    node.docker()
        .unwrap()
        .stop_container(
            &world.container,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    let stale = omsup(&["apply", &saved_arg, "--yes"]);
    assert_eq!(stale.code, 3, "{}", show(&stale));
    assert!(
        stale.stderr.contains("changed since the plan was saved")
            && stale.stderr.contains(&format!("node[{}]", node.ip)),
        "{}",
        show(&stale)
    );
    let history = omsup(&["history", "-f", &plan, "--format", "json"]);
    assert!(
        !history.stdout.contains("\"apply\""),
        "a refused apply must not record a run\n{}",
        show(&history)
    );
}

#[tokio::test]
async fn containers_an_earlier_omsup_run_created_are_upgraded_and_rolled_back() {
    let world = up(WorldSpec::two_nodes()).await;
    // As after an earlier upgrade done with omsup: the running containers carry its run label.
    for node in &world.nodes {
        let docker = node.docker().unwrap();
        omsup_testworld::world::remove_named(&docker, &world.container)
            .await
            .unwrap();
        world
            .start_node_labelled(
                &docker,
                node,
                &omsup_testworld::world::image_tag("4.2.8"),
                &[],
                &[("omsup.run-id", "20250101T000000Z-0ld0")],
            )
            .await
            .unwrap();
    }
    world.wait_online(Duration::from_secs(30)).await.unwrap();
    let before = before(&world).await;
    let plan = plan_arg(&world);
    let run = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_upgraded(&world, &before, "labelled by an earlier run").await;
    let undone = omsup(&["rollback", "-f", &plan, "--yes"]);
    assert_eq!(undone.code, 0, "{}", show(&undone));
    let again = omsup(&["plan", "-f", &plan, "--detailed-exitcode"]);
    assert_eq!(again.code, 2, "{}", show(&again));
}

#[tokio::test]
async fn ha_off_before_and_on_after_keeps_every_other_key() {
    let mut spec = WorldSpec::two_nodes();
    spec.ha_enabled = false;
    let world = up(spec).await;
    let pool = world.meta_pool().await.unwrap();
    let ha_before = omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap()
        .to_value();
    assert_eq!(ha_before["enable"], false);
    assert!(
        ha_before.as_object().unwrap().len() > 2,
        "the seeded ha.config must have keys to keep: {ha_before}"
    );
    let text = std::fs::read_to_string(&world.plan_path).unwrap();
    let text = text.replace("[ha]\nafter = \"restore\"", "[ha]\nafter = \"on\"");
    assert!(text.contains("after = \"on\""), "{text}");
    std::fs::write(&world.plan_path, text).unwrap();
    let plan = plan_arg(&world);
    let run = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    let ha_after = omsup_exec::meta_actions::read_ha_config(&pool, &world.rm)
        .await
        .unwrap()
        .to_value();
    assert_eq!(ha_after["enable"], true, "{ha_after}");
    for (key, value) in ha_before.as_object().unwrap() {
        if key != "enable" && key != "refetchStoreIntervalMin" {
            assert_eq!(&ha_after[key], value, "`{key}` was lost: {ha_after}");
        }
    }
}

#[tokio::test]
async fn the_health_port_comes_from_each_nodes_config_yaml() {
    let world = up(WorldSpec::two_nodes()).await;
    // Restarting the containers stops each node for a moment: as an operator would, turn HA
    // off around it (HA would act on the node found down), and give it back after.
    let pool = world.meta_pool().await.unwrap();
    let ha = omsup_exec::meta_actions::ha_off(&pool, &world.rm)
        .await
        .unwrap();
    // OMS answers /oms/health on config.yaml's nginx_server_port: move it off 8089.
    for node in &world.nodes {
        let path = node.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("nginx_server_port: 8089"), "{text}");
        std::fs::write(
            &path,
            text.replace("nginx_server_port: 8089", "nginx_server_port: 18089"),
        )
        .unwrap();
        let docker = node.docker().unwrap();
        docker
            .restart_container(
                &world.container,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
            .unwrap();
    }
    world.wait_online(Duration::from_secs(30)).await.unwrap();
    omsup_exec::meta_actions::ha_restore(
        &pool,
        &world.rm,
        &ha.previous,
        &omsup_model::plan::HaPolicy::default(),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let before = before(&world).await;
    let plan = plan_arg(&world);
    let run = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_upgraded(&world, &before, "health on port 18089").await;
    for node in &world.nodes {
        assert_eq!(
            omsup_testworld::world::health(&node.ip).await,
            None,
            "8089 must be unused"
        );
    }
}

#[tokio::test]
async fn two_concurrent_applies_exactly_one_runs() {
    let world = up(WorldSpec::two_nodes()).await;
    let before = before(&world).await;
    let plan = plan_arg(&world);
    let spawn = |plan: String| std::thread::spawn(move || omsup(&["apply", "-f", &plan, "--yes"]));
    let (first, second) = (spawn(plan.clone()), spawn(plan.clone()));
    let runs = [first.join().unwrap(), second.join().unwrap()];
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [0, 3],
        "{}\n====\n{}",
        show(&runs[0]),
        show(&runs[1])
    );
    let loser = runs.iter().find(|r| r.code == 3).unwrap();
    assert!(
        loser.stderr.contains("is locked by run") || loser.stderr.contains("is unfinished"),
        "{}",
        show(loser)
    );
    assert_upgraded(&world, &before, "one of two concurrent applies").await;
}

/// Issue 13: two operators, each with a state directory of their own (as on two machines),
/// start `apply` together on one world. The lock lives in the meta database server, so
/// exactly one runs; the other is refused with exit 3 before changing anything, and once the
/// winner is done the loser's `plan` shows nothing left to do. On both journal backends.
#[tokio::test]
async fn two_operators_with_their_own_state_dirs_exactly_one_runs() {
    let mut ran = Vec::new();
    for backend in ["local", "meta_db"] {
        two_operators_on(backend).await;
        ran.push(backend);
    }
    assert_eq!(ran, ["local", "meta_db"], "both backends ran");
}

async fn two_operators_on(backend: &str) {
    let world = up(WorldSpec::two_nodes()).await;
    let before = before(&world).await;
    let plan = match backend {
        "local" => plan_arg(&world),
        _ => crate::shared_state::meta_db_plan(&world),
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let state_dirs: Vec<String> = dirs
        .iter()
        .map(|dir| dir.path().join("state").display().to_string())
        .collect();
    let spawn = |plan: String, state_dir: String| {
        std::thread::spawn(move || {
            omsup(&["apply", "-f", &plan, "--yes", "--state-dir", &state_dir])
        })
    };
    let (first, second) = (
        spawn(plan.clone(), state_dirs[0].clone()),
        spawn(plan.clone(), state_dirs[1].clone()),
    );
    let runs = [first.join().unwrap(), second.join().unwrap()];
    let mut codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    codes.sort();
    assert_eq!(
        codes,
        [0, 3],
        "{backend}: {}\n====\n{}",
        show(&runs[0]),
        show(&runs[1])
    );
    let loser = runs.iter().position(|r| r.code == 3).unwrap();
    let refusal = &runs[loser].stderr;
    for part in ["is locked by run", "on host", "last heartbeat"] {
        assert!(
            refusal.contains(part),
            "{backend}: `{part}`: {}",
            show(&runs[loser])
        );
    }
    assert_upgraded(&world, &before, "one of two operators").await;
    // The loser began no run: its journal is empty (local), or holds the winner's run only
    // (the shared one).
    let mut args = vec![
        "history",
        "--state-dir",
        &state_dirs[loser],
        "--format",
        "json",
    ];
    if backend == "meta_db" {
        args.extend(["-f", &plan]);
    }
    let history = omsup(&args);
    assert_eq!(history.code, 0, "{backend}: {}", show(&history));
    let history: Value = serde_json::from_str(&history.stdout).unwrap();
    let results: Vec<&str> = history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["result"].as_str().unwrap())
        .collect();
    let expected: &[&str] = if backend == "local" {
        &[]
    } else {
        &["succeeded"]
    };
    assert_eq!(results, expected, "{backend}: {history:#}");
    // Nothing is left to do, from the loser's side either.
    let replan = omsup(&[
        "plan",
        "-f",
        &plan,
        "--state-dir",
        &state_dirs[loser],
        "--detailed-exitcode",
    ]);
    assert_eq!(
        replan.code,
        0,
        "{backend}: no changes left: {}",
        show(&replan)
    );
}

/// The steps of the world's plan, in order (from `omsup plan --format json`).
pub(crate) fn plan_steps(plan: &str) -> Vec<String> {
    let run = omsup(&["plan", "-f", plan, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    json["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {json:#}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The step ids a two-node world's upgrade must plan, derived from the world itself (its
/// nodes, regions and databases), so a plan that silently lost steps fails the matrices.
///
/// The test daemons are shared, so whether the target image is already loaded depends on
/// which test ran first; the matrices load it beforehand so that every world plans the same
/// steps. `load-image` is therefore not in them (a load is skipped when the tag is there).
pub(crate) async fn expected_two_node_steps(world: &World) -> Vec<String> {
    let mut steps = vec!["preflight".to_owned(), "ha.off".to_owned()];
    for node in &world.nodes {
        for step in ["stop-old", "start-new", "wait-ready"] {
            steps.push(format!("node[{}].{step}", node.ip));
        }
    }
    for region in world.cm_hb.keys() {
        steps.push(format!("region[{region}].prune-heartbeats"));
        steps.push(format!("region[{region}].init"));
    }
    for database in world.databases() {
        steps.push(format!("db[{database}].backup"));
    }
    steps.extend(["online.verify".to_owned(), "ha.restore".to_owned()]);
    steps.sort();
    steps
}

/// The world's plan steps, checked against [`expected_two_node_steps`].
pub(crate) async fn checked_plan_steps(world: &World) -> Vec<String> {
    for node in &world.nodes {
        omsup_testworld::world::ensure_image(&node.docker().unwrap(), &world.spec.target_version)
            .await
            .unwrap();
    }
    let steps = plan_steps(&plan_arg(world));
    let mut sorted = steps.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        expected_two_node_steps(world).await,
        "the two-node plan lost or gained steps: the matrices would cover the wrong set"
    );
    steps
}

/// The moments a failpoint can kill omsup at, per step.
pub(crate) const MOMENTS: [&str; 2] = ["before", "after"];

/// Runs `case(moment, index)` for the plan steps `part`, `part + parts`, ... of a two-node
/// world, both moments each, and asserts the number of cases run against the plan's step
/// count. `case` returns the steps its own world planned (ids differ per world; every world
/// must plan as many, each checked by [`checked_plan_steps`]).
pub(crate) async fn matrix_part<F, Fut>(name: &str, part: usize, parts: usize, case: F)
where
    F: Fn(&'static str, usize) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let mut planned: Option<Vec<String>> = None;
    let mut ran = 0;
    let mut index = part;
    loop {
        for moment in MOMENTS {
            let steps = case(moment, index).await;
            let first = planned.get_or_insert_with(|| steps.clone());
            assert_eq!(
                steps.len(),
                first.len(),
                "{name}: every world must plan as many steps"
            );
            ran += 1;
        }
        index += parts;
        if index >= planned.as_ref().map_or(0, Vec::len) {
            break;
        }
    }
    let total = planned.map_or(0, |p| p.len());
    let expected = MOMENTS.len() * (part..total).step_by(parts).count();
    assert!(
        expected > 0,
        "{name}: part {} of {parts} has no step in a plan of {total}",
        part + 1
    );
    assert_eq!(ran, expected, "{name}: cases run");
    eprintln!(
        "{name} part {}/{parts}: {ran} cases ({} moments x every {parts}th of {total} steps)",
        part + 1,
        MOMENTS.len()
    );
}

/// Kill the apply at `moment` of the plan's step number `index`, resume, and check the end
/// state. Returns the world's plan steps; panics when the plan has no such step.
async fn crash_then_resume(moment: &'static str, index: usize) -> Vec<String> {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let steps = checked_plan_steps(&world).await;
    let step = steps
        .get(index)
        .unwrap_or_else(|| panic!("the plan has no step {index}: {steps:?}"));
    let context = format!("killed {moment} {step}");
    let before = before(&world).await;
    let point = format!("{moment}:{step}");
    let killed = omsup_env(
        &["apply", "-f", &plan, "--yes"],
        &[("OMSUP_FAILPOINTS", &point)],
    );
    assert_eq!(
        killed.code,
        -1,
        "{context}: must die by SIGKILL\n{}",
        show(&killed)
    );
    assert!(killed.stderr.contains("failpoint"), "{}", show(&killed));
    let status = status_json(&plan);
    assert_ne!(
        status["run"]["result"], "succeeded",
        "{context}: {status:#}"
    );
    let resumed = resume_after_kill(&plan);
    assert_eq!(resumed.code, 0, "{context}: resume\n{}", show(&resumed));
    assert_upgraded(&world, &before, &context).await;
    eprintln!("crash matrix: {context}: resumed, same end state");
    steps
}

#[tokio::test]
async fn crash_matrix_part_1() {
    matrix_part("crash matrix", 0, 4, crash_then_resume).await;
}

#[tokio::test]
async fn crash_matrix_part_2() {
    matrix_part("crash matrix", 1, 4, crash_then_resume).await;
}

#[tokio::test]
async fn crash_matrix_part_3() {
    matrix_part("crash matrix", 2, 4, crash_then_resume).await;
}

#[tokio::test]
async fn crash_matrix_part_4() {
    matrix_part("crash matrix", 3, 4, crash_then_resume).await;
}

#[tokio::test]
async fn nodes_with_a_certificate_are_verified_online_over_https() {
    let world = up(WorldSpec {
        https: true,
        // Hosts of its own: a fresh daemon loads this build's simulator images (a shared
        // host keeps whatever image an earlier build tagged).
        private_hosts: true,
        ..WorldSpec::two_nodes()
    })
    .await;
    let before = before(&world).await;
    let plan = plan_arg(&world);
    let run = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_upgraded(&world, &before, "health over HTTPS").await;
    for node in &world.nodes {
        // The new container mounts the same certificate and serves HTTPS only.
        let answer = node.health_answer().await.unwrap();
        assert_eq!(answer.healthy(), Some(true), "{}: {answer:?}", node.ip);
        assert_eq!(
            omsup_testworld::world::health(&node.ip).await,
            None,
            "{}: plain HTTP answered",
            node.ip
        );
    }
}

/// With `--format jsonl`, what a human would read during a run is an event too: resuming a
/// killed apply says so, and the summary, as `note` events on stdout, nothing on stderr.
#[tokio::test]
async fn with_format_jsonl_the_resume_and_summary_lines_are_note_events() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let killed = omsup_env(
        &["apply", "-f", &plan, "--yes"],
        &[("OMSUP_FAILPOINTS", "after:preflight")],
    );
    assert_ne!(killed.code, 0, "{}", show(&killed));
    let lock = crate::support::held_lock_id(&plan).expect("the killed run holds the lock");
    let run = omsup(&[
        "resume",
        "-f",
        &plan,
        "--yes",
        "--force-unlock",
        &lock,
        "--format",
        "jsonl",
    ]);
    assert_eq!(run.code, 0, "{}", show(&run));
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let notes: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "note")
        .map(|event| event["message"].as_str().unwrap_or_default())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("Resuming run `")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.starts_with("Apply complete: run `")),
        "{notes:?}"
    );
    assert_eq!(
        events.last().map(|event| &event["type"]),
        Some(&Value::from("run_finished"))
    );
    assert!(
        !run.stderr.contains("Resuming") && !run.stderr.contains("complete"),
        "a note went to stderr instead:\n{}",
        run.stderr
    );
}
