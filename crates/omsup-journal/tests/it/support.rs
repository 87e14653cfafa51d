//! Shared helpers: a journal in a temporary state directory and a run with a known plan.

use std::path::PathBuf;

use omsup_journal::{
    DeploymentLock, Journal, LockPurpose, LockRequest, NewRun, PlannedStep, RunId, RunKind,
    RunWriter,
};

pub const DEPLOYMENT: &str = "oms-test";

pub async fn open_journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = Journal::open(&dir.path().join(".omsup"), DEPLOYMENT)
        .await
        .expect("the journal opens");
    (dir, journal)
}

pub fn state_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(".omsup")
}

pub fn lock_request(purpose: LockPurpose) -> LockRequest {
    LockRequest {
        run_id: RunId::generate(),
        purpose,
        force_unlock: None,
    }
}

pub fn new_apply_run() -> NewRun {
    NewRun {
        kind: RunKind::Apply,
        undoes: None,
        plan_fingerprint: "sha256:f1f2".to_owned(),
        plan_file_path: PathBuf::from("two-nodes-ha.toml"),
        plan_file_sha256: "ab".repeat(32),
        planned_steps: vec![
            PlannedStep::new("ha.off", "ha-off"),
            PlannedStep::new("node[10.0.0.2].stop-old", "stop-old"),
            PlannedStep::new("db[rm_428].backup", "backup"),
            PlannedStep::new("node[10.0.0.2].start-new", "start-new"),
        ],
        document: serde_json::json!({ "steps": 4 }),
    }
}

pub async fn begin_apply(journal: &Journal) -> (DeploymentLock, RunWriter) {
    let lock = journal
        .acquire_lock(lock_request(LockPurpose::Apply))
        .await
        .expect("the lock is free");
    let run = journal
        .begin_run(&lock, new_apply_run())
        .await
        .expect("the run begins");
    (lock, run)
}

/// A direct connection to the journal file, to craft or delete rows as a crash or an editor
/// would.
pub async fn raw_connection(journal: &Journal) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(journal.path())
        .connect()
        .await
        .expect("a raw connection to the journal")
}

pub fn probe() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_omsup-journal-probe"))
}
