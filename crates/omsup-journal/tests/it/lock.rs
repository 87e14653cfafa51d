//! The deployment lock: exactly one holder among threads and processes, the loser sees the
//! holder's details, heartbeats advance, stale locks need their id, and a taken-over holder
//! can no longer write (on both backends; across threads and processes, in the SQLite file).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use omsup_journal::{Journal, JournalError, LockPurpose, LockRequest, LockTiming, Staleness};

use crate::support::{self, Store, begin_apply, lock_request, on_both_backends, probe};

#[tokio::test]
async fn a_second_acquirer_is_refused_with_the_holders_details() {
    on_both_backends(async |store: &Store| {
        let journal = store.open().await;
        let (lock, _run) = begin_apply(&journal).await;
        let refused = journal
            .acquire_lock(lock_request(LockPurpose::Apply))
            .await
            .unwrap_err();
        let JournalError::LockHeld { holder, .. } = &refused else {
            panic!("expected LockHeld, got {refused}");
        };
        assert_eq!(&holder.run_id, lock.run_id());
        assert_eq!(&holder.lock_id, lock.lock_id());
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.staleness, Staleness::Live);
        let message = refused.to_string();
        for expected in [
            lock.run_id().as_str(),
            lock.lock_id().as_str(),
            &format!("pid {}", std::process::id()),
            "since ",
            "last heartbeat ",
            &format!("host `{}`", omsup_journal::host::current_host()),
        ] {
            assert!(
                message.contains(expected),
                "`{expected}` missing from: {message}"
            );
        }
        assert!(refused.hint().unwrap().contains("wait for run"));

        // A live lock is not taken over, even with its id.
        let forced = journal
            .acquire_lock(LockRequest {
                force_unlock: Some(lock.lock_id().clone()),
                ..lock_request(LockPurpose::Apply)
            })
            .await
            .unwrap_err();
        assert!(
            matches!(forced, JournalError::LockNotStale { .. }),
            "{forced}"
        );

        lock.release().await.unwrap();
        assert!(journal.lock_holder().await.unwrap().is_none());
        let again = journal
            .acquire_lock(lock_request(LockPurpose::Apply))
            .await
            .unwrap();
        drop(again);
        assert!(
            journal.lock_holder().await.unwrap().is_none(),
            "dropping the lock releases it"
        );
    })
    .await;
}

#[test]
fn among_racing_threads_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = support::state_dir(&dir);
    let threads = 4;
    let start = Arc::new(Barrier::new(threads));
    let tried = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (state_dir, start, tried) = (state_dir.clone(), start.clone(), tried.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let journal = Journal::open(&state_dir, support::DEPLOYMENT)
                        .await
                        .unwrap();
                    start.wait();
                    let outcome = journal.acquire_lock(lock_request(LockPurpose::Apply)).await;
                    tried.wait();
                    match outcome {
                        Ok(lock) => {
                            lock.release().await.unwrap();
                            true
                        }
                        Err(JournalError::LockHeld { .. }) => false,
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                })
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);
}

#[test]
fn between_two_processes_exactly_one_wins_and_the_loser_sees_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = support::state_dir(&dir);
    std::fs::create_dir_all(&state_dir).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            probe()
                .arg("try-lock")
                .arg(&state_dir)
                .arg(support::DEPLOYMENT)
                .arg("5000")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
            String::from_utf8(output.stdout).unwrap()
        })
        .collect();
    let won: Vec<_> = outputs
        .iter()
        .filter(|out| out.starts_with("won "))
        .collect();
    let refused: Vec<_> = outputs
        .iter()
        .filter(|out| out.starts_with("refused: "))
        .collect();
    assert_eq!((won.len(), refused.len()), (1, 1), "{outputs:?}");
    let lock_id = won[0].trim().strip_prefix("won ").unwrap();
    assert!(
        refused[0].contains(&format!("lock `{lock_id}`")) && refused[0].contains("pid "),
        "the loser names the holder: {}",
        refused[0]
    );
}

#[tokio::test]
async fn heartbeats_advance_while_the_lock_is_held() {
    on_both_backends(async |store: &Store| {
        let journal = store.open().await;
        journal.set_lock_timing(LockTiming {
            heartbeat_every: Duration::from_millis(100),
            stale_after: Duration::from_secs(60),
        });
        let lock = journal
            .acquire_lock(lock_request(LockPurpose::Apply))
            .await
            .unwrap();
        let first = journal.lock_holder().await.unwrap().unwrap().heartbeat_at;
        let started = std::time::Instant::now();
        let later = loop {
            let holder = journal.lock_holder().await.unwrap().unwrap();
            if holder.heartbeat_at > first || started.elapsed() > Duration::from_secs(10) {
                break holder;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            later.heartbeat_at > first,
            "{} then {}",
            first,
            later.heartbeat_at
        );
        assert_eq!(later.acquired_at, first);
        lock.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_silent_lock_is_taken_over_only_with_its_id_and_its_holder_can_no_longer_write() {
    on_both_backends(async |store: &Store| {
        let journal = store.open().await;
        journal.set_lock_timing(LockTiming {
            heartbeat_every: Duration::from_secs(3600),
            stale_after: Duration::from_millis(200),
        });
        let (old_lock, old_run) = begin_apply(&journal).await;

        let other = store.open().await;
        other.set_lock_timing(LockTiming {
            heartbeat_every: Duration::from_secs(3600),
            stale_after: Duration::from_millis(200),
        });
        // Poll until the silent holder is seen as stale (200 ms without a heartbeat).
        let started = std::time::Instant::now();
        let holder = loop {
            let holder = other.lock_holder().await.unwrap().unwrap();
            if matches!(holder.staleness, Staleness::Silent { .. })
                || started.elapsed() > Duration::from_secs(10)
            {
                break holder;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            matches!(holder.staleness, Staleness::Silent { .. }),
            "{holder}"
        );
        let refused = other
            .acquire_lock(lock_request(LockPurpose::Resume))
            .await
            .unwrap_err();
        assert!(
            refused
                .hint()
                .unwrap()
                .contains(&format!("--force-unlock {}", old_lock.lock_id()))
        );

        let new_lock = other
            .acquire_lock(LockRequest {
                force_unlock: Some(old_lock.lock_id().clone()),
                ..lock_request(LockPurpose::Resume)
            })
            .await
            .unwrap();
        let fenced = old_run
            .intent("ha.off", "ha-off", serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(fenced, JournalError::LockLost { .. }), "{fenced}");
        assert!(old_lock.is_lost());
        // Releasing the old lock does not release the new holder's.
        old_lock.release().await.unwrap();
        assert_eq!(
            other.lock_holder().await.unwrap().unwrap().lock_id,
            *new_lock.lock_id()
        );
        new_lock.release().await.unwrap();
    })
    .await;
}
