//! `omsup status` and `omsup history` on journals built through omsup-journal's API in a
//! temporary state directory, read by the real binary.

use std::path::{Path, PathBuf};

use omsup_journal::{
    DeploymentLock, Journal, LockPurpose, LockRequest, NewRun, PlannedStep, RunId, RunKind,
    RunOutcome, RunWriter,
};
use serde_json::{Value, json};

use crate::support::{omsup, workspace_root};

/// A copy of the canonical plan file (deployment `oms-hz`) in a fresh directory.
fn plan_in_temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("two-nodes-ha.toml");
    std::fs::copy(workspace_root().join("plans/two-nodes-ha.toml"), &plan).unwrap();
    (dir, plan)
}

fn new_run(kind: RunKind, undoes: Option<RunId>) -> NewRun {
    NewRun {
        kind,
        undoes,
        plan_fingerprint: "sha256:0f0f".to_owned(),
        plan_file_path: PathBuf::from("two-nodes-ha.toml"),
        plan_file_sha256: "ab".repeat(32),
        planned_steps: vec![
            PlannedStep::new("ha.off", "ha-off"),
            PlannedStep::new("db[rm_428].backup", "backup"),
            PlannedStep::new("node[10.0.0.2].stop-old", "stop-old"),
            PlannedStep::new("node[10.0.0.2].start-new", "start-new"),
        ],
        document: serde_json::Value::Null,
    }
}

async fn begin(
    journal: &Journal,
    kind: RunKind,
    undoes: Option<RunId>,
) -> (DeploymentLock, RunWriter) {
    begin_new_run(journal, new_run(kind, undoes)).await
}

async fn begin_new_run(journal: &Journal, new_run: NewRun) -> (DeploymentLock, RunWriter) {
    let lock = journal
        .acquire_lock(LockRequest {
            run_id: RunId::generate(),
            purpose: LockPurpose::Apply,
            force_unlock: None,
        })
        .await
        .unwrap();
    let run = journal.begin_run(&lock, new_run).await.unwrap();
    (lock, run)
}

/// An apply interrupted with `node[10.0.0.2].stop-old` in flight, after a retried backup.
async fn interrupted_apply(state_dir: &Path) -> RunId {
    let journal = Journal::open(state_dir, "oms-hz").await.unwrap();
    let (lock, run) = begin(&journal, RunKind::Apply, None).await;
    run.intent("ha.off", "ha-off", json!({})).await.unwrap();
    run.succeeded(
        "ha.off",
        json!({ "previous_ha_config": "{\"enable\":true}" }),
    )
    .await
    .unwrap();
    run.intent("db[rm_428].backup", "backup", json!({}))
        .await
        .unwrap();
    run.failed(
        "db[rm_428].backup",
        "`mysqldump` exited with status 2",
        json!(null),
    )
    .await
    .unwrap();
    run.intent("db[rm_428].backup", "backup", json!({}))
        .await
        .unwrap();
    run.succeeded(
        "db[rm_428].backup",
        json!({ "path": "rm_428.sql", "size": 10 }),
    )
    .await
    .unwrap();
    run.intent("node[10.0.0.2].stop-old", "stop-old", json!({}))
        .await
        .unwrap();
    let run_id = run.run_id().clone();
    lock.release().await.unwrap();
    run_id
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

#[tokio::test]
async fn status_shows_the_last_run_step_by_step_and_what_to_do() {
    let (dir, plan) = plan_in_temp_dir();
    let run_id = interrupted_apply(&dir.path().join(".omsup")).await;
    let plan = plan.to_str().unwrap();

    let human = omsup(&["status", "-f", plan]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    let out = &human.stdout;
    assert!(
        out.contains(&format!("apply run {run_id}  interrupted")),
        "{out}"
    );
    for expected in [
        "steps       2/4 done",
        "lock: free",
        "hint: steps in flight had an intent and no outcome; `omsup resume`",
    ] {
        assert!(out.contains(expected), "`{expected}` missing from:\n{out}");
    }
    let state_of = |step: &str| {
        out.lines()
            .find(|line| line.trim_start().starts_with(step))
            .unwrap_or_else(|| panic!("no row for {step}:\n{out}"))
            .to_owned()
    };
    assert!(state_of("ha.off").contains("succeeded"));
    assert!(state_of("db[rm_428].backup").contains("succeeded"));
    assert!(!state_of("db[rm_428].backup").contains("error"));
    assert!(state_of("node[10.0.0.2].stop-old").contains("in flight"));
    assert!(state_of("node[10.0.0.2].start-new").contains("pending"));
    assert!(human.stderr.is_empty(), "{}", human.stderr);

    let json = omsup(&["status", "-f", plan, "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let document = json_of(&json.stdout);
    assert_eq!(document["format_version"], 2);
    assert_eq!(document["deployment"], "oms-hz");
    assert_eq!(document["lock"], Value::Null);
    let run = &document["run"];
    assert_eq!(run["run_id"], run_id.as_str());
    assert_eq!(run["result"], "interrupted");
    assert_eq!(
        (run["steps_done"].as_u64(), run["steps_total"].as_u64()),
        (Some(2), Some(4))
    );
    let steps = run["steps"].as_array().unwrap();
    let states: Vec<&str> = steps
        .iter()
        .map(|step| step["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["succeeded", "succeeded", "in flight", "pending"]);
    for removed in ["undo_attempts", "undo_error", "started_at"] {
        assert!(
            steps[0].get(removed).is_none(),
            "format 2 has no `{removed}`"
        );
    }
    assert_eq!(steps[1]["attempts"], 2);
    assert_eq!(steps[1]["outputs"]["path"], "rm_428.sql");
}

#[tokio::test]
async fn status_names_the_lock_holder() {
    let (dir, plan) = plan_in_temp_dir();
    let journal = Journal::open(&dir.path().join(".omsup"), "oms-hz")
        .await
        .unwrap();
    let (lock, run) = begin(&journal, RunKind::Apply, None).await;
    run.intent("ha.off", "ha-off", json!({})).await.unwrap();

    let human = omsup(&["status", "-f", plan.to_str().unwrap()]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human
            .stdout
            .contains(&format!("apply run {}  running", run.run_id())),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains(&format!(
            "lock: held by run `{}` (apply, lock `{}`)",
            run.run_id(),
            lock.lock_id()
        )) && human
            .stdout
            .contains(&format!("pid {}", std::process::id())),
        "{}",
        human.stdout
    );
    let json = omsup(&["status", "-f", plan.to_str().unwrap(), "--format", "json"]);
    let document = json_of(&json.stdout);
    assert_eq!(document["lock"]["lock_id"], lock.lock_id().as_str());
    assert_eq!(document["lock"]["pid"], std::process::id());
    assert_eq!(document["lock"]["stale"], false);
    lock.release().await.unwrap();
}

#[tokio::test]
async fn history_lists_every_run_with_rollbacks_under_the_runs_they_undid() {
    let (dir, plan) = plan_in_temp_dir();
    let state_dir = dir.path().join(".omsup");
    let interrupted = interrupted_apply(&state_dir).await;
    let journal = Journal::open(&state_dir, "oms-hz").await.unwrap();
    let (lock, rollback) = begin(&journal, RunKind::Rollback, Some(interrupted.clone())).await;
    rollback
        .intent("ha.off", "ha-off", json!({}))
        .await
        .unwrap();
    rollback.succeeded("ha.off", json!({})).await.unwrap();
    rollback.finish(RunOutcome::Succeeded).await.unwrap();
    lock.release().await.unwrap();
    let (lock, again) = begin(&journal, RunKind::Apply, None).await;
    again.intent("ha.off", "ha-off", json!({})).await.unwrap();
    again
        .failed(
            "ha.off",
            "`rm.oms_normal_config` has no `ha.config` row",
            json!(null),
        )
        .await
        .unwrap();
    again.finish(RunOutcome::Failed).await.unwrap();
    lock.release().await.unwrap();

    // With only `--state-dir`, the one journal there is used.
    let human = omsup(&["history", "--state-dir", state_dir.to_str().unwrap()]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", human.stdout);
    assert!(lines[0].starts_with("RUN"));
    assert!(
        lines[1].starts_with(interrupted.as_str()),
        "{}",
        human.stdout
    );
    assert!(
        lines[1].contains("interrupted") && lines[1].contains("2/4"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!("└ {}", rollback.run_id())),
        "{}",
        human.stdout
    );
    assert!(
        lines[2].contains("rollback") && lines[2].contains("succeeded") && lines[2].contains("1/4")
    );
    assert!(
        lines[3].starts_with(again.run_id().as_str())
            && lines[3].contains("failed")
            && lines[3].contains("0/4")
    );

    let json = omsup(&["history", "-f", plan.to_str().unwrap(), "--format", "json"]);
    let document = json_of(&json.stdout);
    assert_eq!(document["format_version"], 1);
    let runs = document["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(
        runs[0]["rolled_back_by"],
        json!([rollback.run_id().as_str()])
    );
    assert_eq!(runs[1]["undoes"], interrupted.as_str());
    assert_eq!(runs[1]["kind"], "rollback");

    // Status of the latest run (the failed apply) says what to do next.
    let status = omsup(&["status", "-f", plan.to_str().unwrap()]);
    assert!(
        status
            .stdout
            .contains("hint: `omsup resume` continues this run"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("      error: `rm.oms_normal_config` has no `ha.config` row\n"),
        "a failed step shows its error: {}",
        status.stdout
    );
}

#[tokio::test]
async fn a_state_dir_with_no_journal_or_several_says_which_to_choose() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(".omsup");
    let empty = omsup(&["status", "--state-dir", state_dir.to_str().unwrap()]);
    assert_eq!(empty.code, 1);
    assert!(
        empty.stderr.starts_with("error: no journal in `"),
        "{}",
        empty.stderr
    );
    assert!(
        empty
            .stderr
            .contains("hint: pass the plan file with `-f FILE`"),
        "{}",
        empty.stderr
    );

    for deployment in ["oms-a", "oms-b"] {
        Journal::open(&state_dir, deployment).await.unwrap();
    }
    let several = omsup(&["history", "--state-dir", state_dir.to_str().unwrap()]);
    assert_eq!(several.code, 1);
    assert!(
        several
            .stderr
            .contains("holds the journals of 2 deployments: `oms-a`, `oms-b`"),
        "{}",
        several.stderr
    );

    let (plan_dir, plan) = plan_in_temp_dir();
    let missing = omsup(&["status", "-f", plan.to_str().unwrap()]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .starts_with("error: no journal for deployment `oms-hz` at `"),
        "{}",
        missing.stderr
    );
    assert!(
        missing
            .stderr
            .contains("hint: a journal is created by the first `omsup apply`")
    );
    drop(plan_dir);
}

/// A run journaled by an omsup before typed step outputs (apply document format version 1):
/// `resume` and `rollback` refuse it, naming the version, before touching anything.
#[tokio::test]
async fn a_run_journaled_in_an_older_document_format_is_refused_by_its_version() {
    let (dir, plan) = plan_in_temp_dir();
    let plan = plan.to_str().unwrap();
    let journal = Journal::open(&dir.path().join(".omsup"), "oms-hz")
        .await
        .unwrap();
    let (lock, run) = begin_with_document(
        &journal,
        json!({
            "format_version": 1,
            "plan_file_path": plan,
            "plan_file_text": std::fs::read_to_string(plan).unwrap(),
            "plan": {},
        }),
    )
    .await;
    run.intent("ha.off", "ha-off", json!({"step": {}, "captured": null}))
        .await
        .unwrap();
    run.succeeded(
        "ha.off",
        json!({"previous": {"enable": true}, "changed": true, "at": 1}),
    )
    .await
    .unwrap();
    let run_id = run.run_id().clone();
    lock.release().await.unwrap();

    let expected = format!(
        "error: run `{run_id}` was journaled with apply document format version 1; this omsup reads version 3\n"
    );
    let resumed = omsup(&["resume", "-f", plan, "--yes"]);
    assert_eq!(resumed.code, 3, "{}", resumed.stderr);
    assert!(resumed.stderr.starts_with(&expected), "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("hint: finish the run (`omsup resume` or `omsup rollback`) with the omsup release that began it"),
        "{}",
        resumed.stderr
    );
    // Nothing was written: the run is still the interrupted apply it was.
    let status = json_of(&omsup(&["status", "-f", plan, "--format", "json"]).stdout);
    assert_eq!(status["run"]["result"], "interrupted", "{status:#}");
    assert_eq!(status["run"]["steps_done"], 1, "{status:#}");

    let rolled_back = omsup(&["rollback", "-f", plan, "--yes"]);
    assert_eq!(rolled_back.code, 3, "{}", rolled_back.stderr);
    assert!(
        rolled_back.stderr.starts_with(&expected),
        "{}",
        rolled_back.stderr
    );
    let history = json_of(&omsup(&["history", "-f", plan, "--format", "json"]).stdout);
    assert_eq!(history["runs"].as_array().unwrap().len(), 1, "{history:#}");
}

async fn begin_with_document(journal: &Journal, document: Value) -> (DeploymentLock, RunWriter) {
    let mut new_run = new_run(RunKind::Apply, None);
    new_run.document = document;
    begin_new_run(journal, new_run).await
}
