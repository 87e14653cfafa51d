//! Timeouts and interruptions through the real binary on real worlds: a step whose timeout
//! fires ends what it started (the exec'd `docker_init.sh`) so that `resume` runs it again; a
//! run that stops inside the downtime window says that OMS is down, since when, and what each
//! way out costs; Ctrl-C (a real SIGINT to the real binary) lets the running steps finish,
//! releases the lock and exits 4, and a second one stops at once; `resume` continues both;
//! Ctrl-C at the question changes nothing and releases the lock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use omsup_testworld::WorldSpec;
use omsup_testworld::world::poll_until;

use crate::apply::{plan_arg, show, status_json};
use crate::apply_scenarios::{assert_exit, assert_online_on_4_2_9, status_step};
use crate::support::{omsup, resume_after_kill, up, workspace_root};

/// Sets `[timeouts] init = "<timeout>"` in the plan file.
fn set_init_timeout(plan: &Path, timeout: &str) {
    let text = std::fs::read_to_string(plan).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("init = ") {
                format!("init = \"{timeout}\"")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == format!("init = \"{timeout}\""))
            .count(),
        1,
        "one [timeouts] init line in {text}"
    );
    std::fs::write(plan, lines.join("\n") + "\n").unwrap();
}

/// The ids of the `docker_init.sh` execs still running in `container`.
async fn running_inits(docker: &bollard::Docker, container: &str) -> Vec<String> {
    let inspect = docker.inspect_container(container, None).await.unwrap();
    let mut running = Vec::new();
    for id in inspect.exec_ids.unwrap_or_default() {
        let Ok(exec) = docker.inspect_exec(&id).await else {
            continue;
        };
        let is_init = exec.process_config.is_some_and(|p| {
            p.arguments
                .unwrap_or_default()
                .iter()
                .any(|a| a.contains("docker_init.sh"))
        });
        if is_init && exec.running == Some(true) {
            running.push(id);
        }
    }
    running
}

#[tokio::test]
async fn a_timed_out_init_is_ended_and_resume_runs_it_again() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    set_init_timeout(&world.plan_path, "6s");
    // The region's init runs on its first node: it hangs there until the knob is removed.
    let knob = world.nodes[0].run_dir().join("sim-init-hang");
    std::fs::write(&knob, "").unwrap();

    let timed_out = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_exit(&timed_out, 1, "apply with a hanging init");
    assert!(
        timed_out.stderr.contains("did not finish within 6s")
            && timed_out.stderr.contains("omsup ended it"),
        "the error must say the init was ended\n{}",
        show(&timed_out)
    );
    let docker = world.nodes[0].docker().unwrap();
    assert_eq!(
        running_inits(&docker, &world.container).await,
        Vec::<String>::new(),
        "the timed-out init must not be left running"
    );
    assert_down_and_ways_out(&timed_out.stderr, "the apply's error");
    let status_text = omsup(&["status", "-f", &plan]);
    assert_down_and_ways_out(&status_text.stdout, "`omsup status`");
    let status = status_json(&plan);
    assert!(
        status["run"]["down_since"].is_string(),
        "status JSON: {status:#}"
    );
    let init = status_step(&status, "region[hz].init");
    assert_eq!(init["state"], "failed", "{init:#}");
    assert!(
        init["error"]
            .as_str()
            .unwrap_or_default()
            .contains("omsup ended it"),
        "the journal must say the init was ended: {init:#}"
    );

    // The operator removes the cause; resume runs the init again, without any manual kill.
    std::fs::remove_file(&knob).unwrap();
    let resumed = omsup(&["resume", "-f", &plan, "--yes"]);
    assert_exit(&resumed, 0, "resume after the cause was removed");
    let status = status_json(&plan);
    let init = status_step(&status, "region[hz].init");
    assert_eq!(init["state"], "succeeded", "{init:#}");
    assert_eq!(init["attempts"], 2, "{init:#}");
    assert_eq!(
        status["run"]["down_since"],
        serde_json::Value::Null,
        "{status:#}"
    );
    assert_online_on_4_2_9(&world, "resumed after an init timeout").await;
}

/// `text` says OMS is down since a time, and what resume and rollback each do.
fn assert_down_and_ways_out(text: &str, what: &str) {
    assert!(
        text.contains("OMS is down since")
            && text.contains("`omsup resume` continues the upgrade")
            && text.contains("`omsup rollback` restores the meta databases"),
        "{what} must say OMS is down and what each way out costs:\n{text}"
    );
}

/// `omsup apply` started in the background, its stderr going to a file.
struct Background {
    child: Child,
    stderr: PathBuf,
}

impl Background {
    fn apply(plan: &str, dir: &Path) -> Self {
        Self::spawn(&["apply", "-f", plan, "--yes"], dir, Stdio::null())
    }

    fn spawn(args: &[&str], dir: &Path, stdin: Stdio) -> Self {
        let stderr = dir.join("apply-interrupted.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_omsup"))
            .args(args)
            .current_dir(workspace_root())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("OMSUP_FAILPOINTS")
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the omsup binary runs");
        Self { child, stderr }
    }

    /// Polls stderr until it holds `text`.
    async fn wait_for_stderr(&self, text: &str) {
        let path = self.stderr.clone();
        poll_until(
            &format!("`{text}` on stderr"),
            Duration::from_secs(60),
            || {
                let seen = std::fs::read_to_string(&path).unwrap_or_default();
                async move { seen.contains(text).then_some(()) }
            },
        )
        .await;
    }

    /// Sends a real SIGINT with `kill -INT`.
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -INT failed");
    }

    /// Waits (bounded) for the exit; returns the exit code and stderr.
    async fn exit(mut self) -> (i32, String) {
        let child = &mut self.child;
        let status = poll_until("omsup to exit", Duration::from_secs(180), || {
            let exited = child.try_wait().unwrap();
            async move { exited }
        })
        .await;
        let stderr = std::fs::read_to_string(&self.stderr).unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

/// Polls `omsup status --format json` until `step` is journaled in one of `states`.
async fn wait_for_step(plan: &str, step: &str, states: &[&str]) {
    poll_until(
        &format!("step `{step}` to be {states:?}"),
        Duration::from_secs(120),
        || {
            let status = omsup(&["status", "-f", plan, "--format", "json"]);
            let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
            let state = json["run"]["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["step_id"] == step)
                .and_then(|s| s["state"].as_str().map(str::to_owned));
            let reached = state.is_some_and(|state| states.contains(&state.as_str()));
            async move { reached.then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn ctrl_c_in_the_downtime_window_finishes_running_steps_and_resume_needs_no_unlock() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let apply = Background::apply(&plan, &world.dir);
    // Inside the window: an old container is stopped.
    let stop = format!("node[{}].stop-old", world.nodes[0].ip);
    wait_for_step(&plan, &stop, &["in flight", "succeeded"]).await;
    apply.interrupt();
    let (code, stderr) = apply.exit().await;
    assert_eq!(
        code, 4,
        "the documented exit code of an interrupted run\n{stderr}"
    );
    assert!(
        stderr.contains("SIGINT received") && stderr.contains(&format!("omsup resume -f {plan}")),
        "must say what happened and the exact command that continues:\n{stderr}"
    );
    assert_down_and_ways_out(&stderr, "the interrupted apply");

    let status = status_json(&plan);
    assert_eq!(
        status["lock"],
        serde_json::Value::Null,
        "the lock must be released: {status:#}"
    );
    let steps = status["run"]["steps"].as_array().unwrap();
    assert!(
        steps.iter().all(|s| s["state"] != "in flight"),
        "every running step must have its outcome journaled: {status:#}"
    );
    assert!(
        steps.iter().any(|s| s["state"] == "pending"),
        "no new step may start after the interrupt: {status:#}"
    );

    let resumed = omsup(&["resume", "-f", &plan, "--yes"]);
    assert_exit(&resumed, 0, "resume after Ctrl-C, without --force-unlock");
    assert_online_on_4_2_9(&world, "resumed after Ctrl-C in the downtime window").await;
}

#[tokio::test]
async fn a_second_ctrl_c_stops_at_once_and_resume_continues() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    // A hanging init keeps a step running after the first Ctrl-C, so the second one finds the
    // run still waiting for it: long enough that a loaded machine acknowledges the first
    // Ctrl-C before the init's own timeout would end it.
    set_init_timeout(&world.plan_path, "15s");
    let knob = world.nodes[0].run_dir().join("sim-init-hang");
    std::fs::write(&knob, "").unwrap();
    let apply = Background::apply(&plan, &world.dir);
    wait_for_step(&plan, "region[hz].init", &["in flight"]).await;
    // In flight in the journal is not yet running in the container: wait for the exec'd
    // init itself, or a loaded machine lets the second Ctrl-C land before it starts.
    let docker = world.nodes[0].docker().unwrap();
    poll_until(
        "docker_init.sh to run in the new container",
        Duration::from_secs(30),
        || {
            let docker = docker.clone();
            let container = world.container.clone();
            async move { (!running_inits(&docker, &container).await.is_empty()).then_some(()) }
        },
    )
    .await;
    apply.interrupt();
    let stderr_file = apply.stderr.clone();
    poll_until(
        "the first interrupt to be acknowledged",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&stderr_file).unwrap_or_default();
            async move { text.contains("SIGINT received").then_some(()) }
        },
    )
    .await;
    apply.interrupt();
    let (code, stderr) = apply.exit().await;
    assert_eq!(code, 130, "a second Ctrl-C stops at once\n{stderr}");
    assert!(stderr.contains("stopping at once"), "{stderr}");
    let status = status_json(&plan);
    assert_eq!(
        status_step(&status, "region[hz].init")["state"],
        "in flight",
        "the journal keeps the cut-off step in flight: {status:#}"
    );

    assert!(
        !running_inits(&docker, &world.container).await.is_empty(),
        "the init the stopped run began still runs in the container"
    );

    // The cause removed, resume first meets the init the stopped run left hanging in the
    // container: it waits for it within `[timeouts] init`, then ends it; the next resume runs
    // the init again and finishes.
    std::fs::remove_file(&knob).unwrap();
    let first = resume_after_kill(&plan);
    assert_exit(&first, 1, "resume meets the hanging init left behind");
    assert!(first.stderr.contains("omsup ended it"), "{}", show(&first));
    let second = omsup(&["resume", "-f", &plan, "--yes"]);
    assert_exit(&second, 0, "resume after the leftover init was ended");
    assert_online_on_4_2_9(&world, "resumed after two Ctrl-C").await;
}

/// A terminal (a pty): its controlling side, kept open for as long as the test runs, and the
/// other side for omsup's stdin.
fn terminal() -> (std::fs::File, Stdio) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    (std::fs::File::from(master), slave.into())
}

#[tokio::test]
async fn ctrl_c_at_the_question_changes_nothing_and_leaves_no_lock() {
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let (_keep_open, stdin) = terminal();
    let asking = Background::spawn(&["apply", "-f", &plan], &world.dir, stdin);
    asking.wait_for_stderr("Only `yes` is accepted").await;
    asking.interrupt();
    let (code, stderr) = asking.exit().await;
    assert_eq!(code, 4, "Ctrl-C at the question\n{stderr}");
    assert!(
        stderr.contains("interrupted before the run began: nothing was changed"),
        "{stderr}"
    );
    let status = omsup(&["status", "-f", &plan, "--format", "json"]);
    assert_exit(&status, 0, "status after the interrupted question");
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert!(
        json.get("deployment").is_some(),
        "a status document: {json:#}"
    );
    assert!(json["run"].is_null(), "no run began: {json:#}");
    assert!(json["lock"].is_null(), "the lock was released: {json:#}");
    // The next apply needs no `--force-unlock`.
    let applied = omsup(&["apply", "-f", &plan, "--yes"]);
    assert_exit(&applied, 0, "apply after the interrupted question");
    assert_online_on_4_2_9(&world, "after the interrupted question").await;
}
