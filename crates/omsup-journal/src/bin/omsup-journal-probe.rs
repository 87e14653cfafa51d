//! Test helper for omsup-journal's integration tests: drives a journal from a separate process,
//! so tests can kill it (durability) or race it (the lock across processes).
//!
//! ```text
//! omsup-journal-probe intent-then-wait STATE_DIR DEPLOYMENT   # prints `intent-durable RUN LOCK`, then waits to be killed
//! omsup-journal-probe try-lock STATE_DIR DEPLOYMENT HOLD_MS   # prints `won LOCK` (holds, releases) or `refused: ...`
//! ```
//!
//! With `OMSUP_PROBE_META=host:port:user:database:key` (and the password in
//! `OMSUP_PROBE_META_PASSWORD`), the journal is the one in that meta database server instead.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use omsup_journal::shared::{SharedState, SharedStateConfig};
use omsup_journal::{Journal, LockPurpose, LockRequest, NewRun, PlannedStep, RunId, RunKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match run(&arguments).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(arguments: &[String]) -> Result<(), String> {
    let [command, state_dir, deployment, rest @ ..] = arguments else {
        return Err("usage: omsup-journal-probe COMMAND STATE_DIR DEPLOYMENT [ARGS]".to_owned());
    };
    let journal = match std::env::var("OMSUP_PROBE_META") {
        Ok(meta) => {
            let [host, port, user, database, key] = meta.split(':').collect::<Vec<_>>()[..] else {
                return Err("OMSUP_PROBE_META is host:port:user:database:key".to_owned());
            };
            let password = std::env::var("OMSUP_PROBE_META_PASSWORD").unwrap_or_default();
            let port = port.parse().map_err(|_| format!("bad port `{port}`"))?;
            let config = SharedStateConfig::new(host, port, user, &password, database);
            let state = SharedState::open(config)
                .await
                .map_err(|error| error.to_string())?;
            Journal::open_shared(&state, key, deployment).await
        }
        Err(_) => Journal::open(&PathBuf::from(state_dir), deployment).await,
    }
    .map_err(|error| error.to_string())?;
    let request = LockRequest {
        run_id: RunId::generate(),
        purpose: LockPurpose::Apply,
        force_unlock: None,
    };
    match command.as_str() {
        "intent-then-wait" => {
            let lock = journal
                .acquire_lock(request)
                .await
                .map_err(|error| error.to_string())?;
            let run = journal
                .begin_run(
                    &lock,
                    NewRun {
                        kind: RunKind::Apply,
                        undoes: None,
                        plan_fingerprint: "fingerprint-of-probe".to_owned(),
                        plan_file_path: PathBuf::from("probe.toml"),
                        plan_file_sha256: "0".repeat(64),
                        planned_steps: vec![PlannedStep::new(
                            "node[10.0.0.2].stop-old",
                            "stop-old",
                        )],
                        document: serde_json::Value::Null,
                    },
                )
                .await
                .map_err(|error| error.to_string())?;
            run.intent(
                "node[10.0.0.2].stop-old",
                "stop-old",
                serde_json::json!({ "container": "oms_428" }),
            )
            .await
            .map_err(|error| error.to_string())?;
            println!("intent-durable {} {}", run.run_id(), lock.lock_id());
            std::io::stdout()
                .flush()
                .map_err(|error| error.to_string())?;
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(())
        }
        "try-lock" => {
            let hold_ms: u64 = rest
                .first()
                .and_then(|text| text.parse().ok())
                .ok_or("try-lock needs HOLD_MS")?;
            match journal.acquire_lock(request).await {
                Ok(lock) => {
                    println!("won {}", lock.lock_id());
                    std::io::stdout()
                        .flush()
                        .map_err(|error| error.to_string())?;
                    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                    lock.release().await.map_err(|error| error.to_string())
                }
                Err(error) => {
                    println!("refused: {error}");
                    Ok(())
                }
            }
        }
        other => Err(format!("unknown command `{other}`")),
    }
}
