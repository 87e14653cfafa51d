//! Durability: an intent returned to the caller survives the process being killed (SIGKILL);
//! the dead holder's lock is stale and needs its lock id to be taken over. On both backends.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use omsup_journal::{
    JournalError, LockId, LockPurpose, LockRequest, RunId, RunOutcome, Staleness, StepState,
};

use crate::support::{self, Store, on_both_backends, probe};

#[tokio::test]
async fn an_intent_survives_sigkill_and_the_dead_holders_lock_needs_its_id() {
    on_both_backends(async |store: &Store| {
        let state_dir = support::state_dir(&store.dir);
        let mut command = probe();
        command
            .args(["intent-then-wait"])
            .arg(&state_dir)
            .arg(support::DEPLOYMENT)
            .stdout(Stdio::piped());
        if let Some(shared) = &store.shared {
            let services = &shared.server.services;
            command
                .env(
                    "OMSUP_PROBE_META",
                    format!(
                        "{}:{}:{}:{}:{}",
                        services.meta_host,
                        services.meta_port,
                        services.meta_user,
                        shared.database,
                        shared.key
                    ),
                )
                .env(
                    "OMSUP_PROBE_META_PASSWORD",
                    services.meta_password().unwrap(),
                );
        }
        let mut child = command.spawn().expect("the probe starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words.first(),
            Some(&"intent-durable"),
            "probe said: {line:?}"
        );
        let (run_id, lock_id) = (RunId::new(words[1]), LockId::new(words[2]));
        child.kill().expect("SIGKILL the probe");
        child.wait().unwrap();

        let journal = store.open().await;
        let run = journal
            .unfinished_run()
            .await
            .unwrap()
            .expect("the run is there");
        assert_eq!(run.info.run_id, run_id);
        assert_eq!(run.info.outcome, RunOutcome::Running);
        assert_eq!(
            run.state_of("node[10.0.0.2].stop-old"),
            Some(StepState::InFlight),
            "the intent was durable before the kill"
        );

        let holder = journal
            .lock_holder()
            .await
            .unwrap()
            .expect("the dead holder's lock remains");
        assert_eq!(holder.lock_id, lock_id);
        assert_eq!(holder.staleness, Staleness::ProcessGone);

        let resume = |force_unlock: Option<LockId>| LockRequest {
            run_id: run_id.clone(),
            purpose: LockPurpose::Resume,
            force_unlock,
        };
        let refused = journal.acquire_lock(resume(None)).await.unwrap_err();
        let message = refused.to_string();
        assert!(
            matches!(refused, JournalError::LockHeld { .. }),
            "{message}"
        );
        assert!(
            message.contains(lock_id.as_str()) && message.contains("stale"),
            "{message}"
        );
        let hint = refused.hint().unwrap();
        assert!(
            hint.contains(&format!("`--force-unlock {lock_id}`")),
            "{hint}"
        );

        let wrong = journal
            .acquire_lock(resume(Some(LockId::new("000000000000"))))
            .await
            .unwrap_err();
        assert!(
            matches!(wrong, JournalError::ForceUnlockMismatch { .. }),
            "{wrong}"
        );

        let lock = journal.acquire_lock(resume(Some(lock_id))).await.unwrap();
        let writer = journal.resume_run(&lock, &run_id).await.unwrap();
        writer
            .succeeded(
                "node[10.0.0.2].stop-old",
                serde_json::json!({ "observed": "stopped" }),
            )
            .await
            .unwrap();
        assert_eq!(
            writer
                .state()
                .await
                .unwrap()
                .state_of("node[10.0.0.2].stop-old"),
            Some(StepState::Succeeded)
        );
        lock.release().await.unwrap();
    })
    .await;
}
