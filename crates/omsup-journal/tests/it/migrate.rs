//! Moving a deployment's history between backends: every run, its document and every event
//! arrive verbatim (local -> meta_db -> local replays identically), and a destination that
//! already holds runs is refused.

use omsup_journal::{
    Journal, JournalError, LockPurpose, NewRun, PlannedStep, RunKind, RunOutcome, RunState,
};
use serde_json::json;

use crate::support::{Backend, Store, begin_apply, lock_request, new_apply_run};

/// Everything a history holds, read back: the runs replayed, their documents and raw events.
async fn history(journal: &Journal) -> Vec<(RunState, serde_json::Value, usize)> {
    let mut history = Vec::new();
    for run in journal.runs().await.unwrap() {
        let document = journal.run_document(&run.info.run_id).await.unwrap();
        let events = journal.events(&run.info.run_id).await.unwrap().len();
        history.push((run, document, events));
    }
    history
}

async fn copy(
    from: &Journal,
    to: &Journal,
) -> Result<omsup_journal::migrate::Copied, JournalError> {
    let lock = to
        .acquire_lock(lock_request(LockPurpose::Apply))
        .await
        .unwrap();
    let copied = from.copy_history_to(to, &lock).await;
    lock.release().await.unwrap();
    copied
}

#[tokio::test]
async fn a_history_moves_to_the_meta_database_and_back_without_losing_anything() {
    let local = Store::new(Backend::Local).await;
    let journal = local.open().await;
    // An apply that failed once, was resumed and succeeded; then a rollback of it, interrupted.
    let (lock, run) = begin_apply(&journal).await;
    run.intent("ha.off", "ha-off", json!({ "ha": "on" }))
        .await
        .unwrap();
    run.failed("ha.off", "timed out", json!({ "after_s": 30 }))
        .await
        .unwrap();
    run.finish(RunOutcome::Failed).await.unwrap();
    let apply_id = run.run_id().clone();
    lock.release().await.unwrap();
    let lock = journal
        .acquire_lock(omsup_journal::LockRequest {
            run_id: apply_id.clone(),
            ..lock_request(LockPurpose::Resume)
        })
        .await
        .unwrap();
    let resumed = journal.resume_run(&lock, &apply_id).await.unwrap();
    resumed
        .intent("ha.off", "ha-off", json!({ "ha": "on", "é": "ünïcödé" }))
        .await
        .unwrap();
    resumed
        .succeeded(
            "ha.off",
            json!({ "previous_ha_config": "{\"enable\":true}" }),
        )
        .await
        .unwrap();
    resumed.finish(RunOutcome::Succeeded).await.unwrap();
    lock.release().await.unwrap();
    let lock = journal
        .acquire_lock(lock_request(LockPurpose::Rollback))
        .await
        .unwrap();
    let rollback = journal
        .begin_run(
            &lock,
            NewRun {
                kind: RunKind::Rollback,
                undoes: Some(apply_id.clone()),
                planned_steps: vec![PlannedStep::new("undo.ha.off", "ha-restore")],
                document: json!({ "format_version": 1, "big": "x".repeat(100_000) }),
                ..new_apply_run()
            },
        )
        .await
        .unwrap();
    rollback
        .intent("undo.ha.off", "ha-restore", json!({}))
        .await
        .unwrap();
    lock.release().await.unwrap();
    let before = history(&journal).await;
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].2, 4, "four events of the apply");

    let shared = Store::new(Backend::MetaDb).await;
    let there = shared.open().await;
    let copied = copy(&journal, &there).await.unwrap();
    assert_eq!((copied.runs, copied.events), (2, 5));
    assert_eq!(
        history(&there).await,
        before,
        "identical in the meta database"
    );
    assert_eq!(
        there.unfinished_run().await.unwrap().unwrap().info.run_id,
        *rollback.run_id(),
        "the interrupted rollback is what resume continues there"
    );

    let back = Store::new(Backend::Local).await;
    let here = back.open().await;
    copy(&there, &here).await.unwrap();
    assert_eq!(
        history(&here).await,
        before,
        "identical back in a local file"
    );

    let refused = copy(&journal, &there).await.unwrap_err();
    assert!(
        matches!(refused, JournalError::HistoryExists { runs: 2, .. }),
        "{refused}"
    );
    assert_eq!(history(&there).await, before, "nothing was merged");
    shared.remove().await;
}
