//! Real SIGKILLs at random moments: the real `omsup` binary is killed while it applies and
//! while it rolls back, as often as [`KILLS_PER_PHASE`], each at a moment drawn from a seeded
//! generator; `resume` (or, when the kill came before the run was journaled, the command
//! again) must then converge, in a bounded number of rounds, to the same end state the
//! crash and rollback matrices check.
//!
//! The seed is printed; `OMSUP_TEST_KILL_SEED=N` replays the same kill moments (the moments,
//! not the exact instructions: the machine's speed still varies).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omsup_testworld::WorldSpec;

use crate::apply::{assert_upgraded, before, plan_arg, show};
use crate::rollback::{assert_back_to_original, original};
use crate::support::{held_lock_id, omsup, up, workspace_root};

/// Kills per phase (apply, rollback); after them one uninterrupted continuation must finish.
const KILLS_PER_PHASE: usize = 3;
/// Kill moments are drawn from 0 to this after the command starts: about a whole apply on a
/// two-node world, so kills land early, in the downtime window and late.
const LATEST_KILL: Duration = Duration::from_millis(7000);

fn seed() -> u64 {
    match std::env::var("OMSUP_TEST_KILL_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("OMSUP_TEST_KILL_SEED={text} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// `omsup <args>` with a lock taken over when a killed run left one (`--force-unlock`).
fn with_lock_takeover(plan: &str, args: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    if let Some(lock) = held_lock_id(plan) {
        args.extend(["--force-unlock".to_owned(), lock]);
    }
    args
}

fn spawn(args: &[String], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_omsup"))
        .args(args)
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("OMSUP_FAILPOINTS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("the omsup binary runs")
}

/// Runs `args` and SIGKILLs it `after` its start unless it exits first. True when the kill
/// landed (the process was still running).
fn run_and_kill(args: &[String], after: Duration, log: &Path) -> bool {
    let mut child = spawn(args, log);
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!(
                "  exited by itself after {:?} ({status}) before the kill at {after:?}",
                started.elapsed()
            );
            return false;
        }
        if started.elapsed() >= after {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The last run's kind and result, from `omsup status --format json` (None: no run yet).
fn last_run(plan: &str) -> Option<(String, String)> {
    let status = omsup(&["status", "-f", plan, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).ok()?;
    let run = &json["run"];
    Some((
        run["kind"].as_str()?.to_owned(),
        run["result"].as_str()?.to_owned(),
    ))
}

/// The phase is over when its kind of run (`apply`, `rollback`) is the last and succeeded.
fn phase_done(plan: &str, kind: &str) -> bool {
    last_run(plan).is_some_and(|(k, result)| k == kind && result == "succeeded")
}

/// The command that continues: `resume` when the last run is unfinished, else `first` again
/// (a kill before the run was journaled leaves nothing to resume).
fn continuation(plan: &str, first: &[&str]) -> Vec<String> {
    match last_run(plan) {
        Some((_, result)) if result != "succeeded" => {
            with_lock_takeover(plan, &["resume", "-f", plan, "--yes"])
        }
        _ => with_lock_takeover(plan, first),
    }
}

/// Kills `first` (then its continuations) up to [`KILLS_PER_PHASE`] times at random moments,
/// then continues without a kill until the phase is done, at most three more rounds. Returns
/// the kills that landed (the process was still running).
fn kill_phase(rng: &mut fastrand::Rng, plan: &str, first: &[&str], log: &Path) -> usize {
    let kind = first[0];
    let mut landed = 0;
    for round in 0..KILLS_PER_PHASE {
        if round > 0 && phase_done(plan, kind) {
            break;
        }
        let args = continuation(plan, first);
        let after = Duration::from_millis(rng.u64(0..LATEST_KILL.as_millis() as u64));
        eprintln!(
            "  round {}: `omsup {}`, SIGKILL at {after:?}",
            round + 1,
            args.join(" ")
        );
        if run_and_kill(&args, after, log) {
            landed += 1;
        }
    }
    for round in 0..3 {
        if phase_done(plan, kind) {
            return landed;
        }
        let args = continuation(plan, first);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = omsup(&refs);
        eprintln!(
            "  continuation {}: `omsup {}` exit {}",
            round + 1,
            args.join(" "),
            run.code
        );
        assert_eq!(
            run.code,
            0,
            "a continuation after the kills failed\n{}",
            show(&run)
        );
    }
    assert!(
        phase_done(plan, kind),
        "`omsup {}` did not converge in 3 rounds after the kills",
        first.join(" ")
    );
    landed
}

async fn random_kills(seed: u64) {
    eprintln!("random kills: seed {seed} (replay with OMSUP_TEST_KILL_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let world = up(WorldSpec::two_nodes()).await;
    let plan = plan_arg(&world);
    let log = world.dir.join("killed-omsup.log");
    let original = original(&world).await;
    let before = before(&world).await;

    eprintln!("random kills (seed {seed}): apply");
    let landed = kill_phase(&mut rng, &plan, &["apply", "-f", &plan, "--yes"], &log);
    assert_upgraded(
        &world,
        &before,
        &format!("seed {seed}: apply after {landed} kills"),
    )
    .await;

    eprintln!("random kills (seed {seed}): rollback");
    let rolled = kill_phase(&mut rng, &plan, &["rollback", "-f", &plan, "--yes"], &log);
    assert_back_to_original(
        &world,
        &original,
        &format!("seed {seed}: rollback after {rolled} kills"),
    )
    .await;
    eprintln!(
        "random kills (seed {seed}): converged; kills landed: apply {landed}/{KILLS_PER_PHASE}, \
         rollback {rolled}/{KILLS_PER_PHASE}"
    );
}

#[tokio::test]
async fn random_sigkills_during_apply_and_rollback_always_converge_1() {
    random_kills(seed()).await;
}

#[tokio::test]
async fn random_sigkills_during_apply_and_rollback_always_converge_2() {
    random_kills(seed().wrapping_add(1)).await;
}
