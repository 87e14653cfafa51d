//! The event model: legal sequences replay to the expected states; illegal ones are refused on
//! write and on replay; a journal truncated after an intent replays to `InFlight` and resumes.
//! The tests of the model run on both backends (the SQLite file and the test MariaDB); those of
//! rows crafted by hand in the SQLite file, on the local one.

use omsup_journal::{
    EventKind, Journal, JournalError, LockPurpose, NewRun, RunId, RunKind, RunOutcome, StepState,
};
use serde::Deserialize;
use serde_json::json;

use crate::support::{
    self, Store, begin_apply, lock_request, on_both_backends, open_journal, raw_connection,
};

#[derive(Debug, Deserialize, PartialEq)]
struct BackupOutput {
    path: String,
    size: u64,
    sha256: String,
    row_counts: std::collections::BTreeMap<String, u64>,
}

#[tokio::test]
async fn a_legal_sequence_replays_to_the_expected_states_and_outputs() {
    on_both_backends(async |store: &Store| {
        let journal = store.open().await;
        let (lock, run) = begin_apply(&journal).await;

        let intent = run.intent("ha.off", "ha-off", json!({})).await.unwrap();
        assert_eq!((intent.seq, intent.attempt), (1, 1));
        run.succeeded(
            "ha.off",
            json!({ "previous_ha_config": "{\"enable\":true}" }),
        )
        .await
        .unwrap();

        run.intent(
            "db[rm_428].backup",
            "backup",
            json!({ "database": "rm_428" }),
        )
        .await
        .unwrap();
        run.failed(
            "db[rm_428].backup",
            "mysqldump exited with status 2",
            json!({ "stderr_tail": "..." }),
        )
        .await
        .unwrap();
        let retry = run
            .intent(
                "db[rm_428].backup",
                "backup",
                json!({ "database": "rm_428" }),
            )
            .await
            .unwrap();
        assert_eq!(retry.attempt, 2, "a retry after `failed` is attempt 2");
        run.succeeded(
            "db[rm_428].backup",
            json!({ "path": "backups/rm_428.sql", "size": 1234, "sha256": "cd".repeat(32),
                "row_counts": { "oms_normal_config": 12 } }),
        )
        .await
        .unwrap();

        run.intent(
            "node[10.0.0.2].stop-old",
            "stop-old",
            json!({ "container": "oms_428" }),
        )
        .await
        .unwrap();

        let state = journal.run(run.run_id()).await.unwrap();
        assert_eq!(state.last_seq, 7);
        assert_eq!(state.state_of("ha.off"), Some(StepState::Succeeded));
        assert_eq!(
            state.state_of("db[rm_428].backup"),
            Some(StepState::Succeeded)
        );
        assert_eq!(
            state.state_of("node[10.0.0.2].stop-old"),
            Some(StepState::InFlight)
        );
        assert_eq!(state.state_of("node[10.0.0.2].start-new"), None);
        let backup = state.step("db[rm_428].backup").unwrap();
        assert_eq!(backup.attempts, 2);
        assert_eq!(
            backup.error.as_deref(),
            Some("mysqldump exited with status 2")
        );
        assert_eq!(
            state.output_of("ha.off"),
            Some(&json!({ "previous_ha_config": "{\"enable\":true}" }))
        );
        let typed: BackupOutput = state.output_of_as("db[rm_428].backup").unwrap().unwrap();
        assert_eq!(typed.size, 1234);
        assert_eq!(typed.row_counts["oms_normal_config"], 12);
        assert!(
            state.output_of("node[10.0.0.2].stop-old").is_none(),
            "in flight: no outputs"
        );
        let in_flight: Vec<_> = state
            .in_flight()
            .map(|step| step.step_id.as_str())
            .collect();
        assert_eq!(in_flight, ["node[10.0.0.2].stop-old"]);

        assert_eq!(state.info.kind, RunKind::Apply);
        assert_eq!(state.info.outcome, RunOutcome::Running);
        assert_eq!(state.info.planned_steps.len(), 4);
        assert_eq!(state.info.started_pid, std::process::id());
        assert!(!state.info.started_on_host.is_empty());

        run.failed("node[10.0.0.2].stop-old", "daemon unreachable", json!(null))
            .await
            .unwrap();
        run.finish(RunOutcome::Failed).await.unwrap();
        let unfinished = journal
            .unfinished_run()
            .await
            .unwrap()
            .expect("a failed run is resumable");
        assert_eq!(&unfinished.info.run_id, run.run_id());
        assert!(unfinished.info.finished_at.is_some());
        lock.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn illegal_transitions_are_refused_on_write_and_nothing_is_appended() {
    on_both_backends(async |store: &Store| {
        let journal = store.open().await;
        let (_lock, run) = begin_apply(&journal).await;

        let error = run.succeeded("ha.off", json!({})).await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, JournalError::IllegalTransition { seq: 1, .. }),
            "{message}"
        );
        assert!(
            message.contains(run.run_id().as_str()),
            "names the run: {message}"
        );
        assert!(message.contains("`ha.off`"), "names the step: {message}");
        assert!(
            message.contains("from `(none)` by `succeeded`"),
            "names the transition: {message}"
        );

        run.intent("ha.off", "ha-off", json!({})).await.unwrap();
        let twice = run.intent("ha.off", "ha-off", json!({})).await.unwrap_err();
        assert!(
            twice.to_string().contains("from `in_flight` by `intent`"),
            "{twice}"
        );
        let kind_changed = run
            .append("ha.off", Some("stop-old"), EventKind::Succeeded, json!({}))
            .await
            .unwrap_err();
        assert!(
            kind_changed.to_string().contains("kind changed"),
            "{kind_changed}"
        );
        run.succeeded("ha.off", json!({})).await.unwrap();
        let again = run.intent("ha.off", "ha-off", json!({})).await.unwrap_err();
        assert!(
            again.to_string().contains("from `succeeded` by `intent`"),
            "{again}"
        );
        let failed_after_success = run
            .failed("ha.off", "too late", json!(null))
            .await
            .unwrap_err();
        assert!(
            failed_after_success
                .to_string()
                .contains("from `succeeded` by `failed`"),
            "{failed_after_success}"
        );
        run.intent("db[rm_428].backup", "backup", json!({}))
            .await
            .unwrap();
        run.failed("db[rm_428].backup", "mysqldump exited", json!(null))
            .await
            .unwrap();
        let success_without_retry = run
            .succeeded("db[rm_428].backup", json!({}))
            .await
            .unwrap_err();
        assert!(
            success_without_retry
                .to_string()
                .contains("a retry begins with an intent"),
            "{success_without_retry}"
        );

        let state = journal.run(run.run_id()).await.unwrap();
        assert_eq!(state.last_seq, 4, "refused events were not appended");
    })
    .await;
}

#[tokio::test]
async fn an_illegal_sequence_written_by_hand_is_rejected_on_replay() {
    let (_dir, journal) = open_journal().await;
    let (_lock, run) = begin_apply(&journal).await;
    run.intent("ha.off", "ha-off", json!({})).await.unwrap();
    run.succeeded("ha.off", json!({ "previous_ha_config": "{}" }))
        .await
        .unwrap();

    // A second intent after success, crafted as an editor or a buggy writer would.
    let mut connection = raw_connection(&journal).await;
    sqlx::query(
        "INSERT INTO events (run_id, seq, step_id, step_kind, event, attempt, at, payload)
         VALUES (?1, 3, 'ha.off', 'ha-off', 'intent', 2, '2026-11-25T06:45:12.000Z', '{}')",
    )
    .bind(run.run_id().as_str())
    .execute(&mut connection)
    .await
    .unwrap();

    let error = journal.run(run.run_id()).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, JournalError::IllegalTransition { seq: 3, step_id, from, event: EventKind::Intent, .. }
            if step_id.as_str() == "ha.off" && from == "succeeded"),
        "{message}"
    );
    assert!(
        message.contains(&format!("run `{}` at seq 3", run.run_id())),
        "{message}"
    );
    // Writers replay the step too, so they refuse to build on the damaged log.
    let write = run
        .failed("ha.off", "after the damage", json!(null))
        .await
        .unwrap_err();
    assert!(
        matches!(write, JournalError::IllegalTransition { seq: 3, .. }),
        "{write}"
    );

    // A hole in the sequence is corruption, not a crash (a crash loses only the tail).
    sqlx::query("DELETE FROM events WHERE seq = 2")
        .execute(&mut connection)
        .await
        .unwrap();
    let gap = journal.run(run.run_id()).await.unwrap_err();
    assert!(gap.to_string().contains("seq 3 follows seq 1"), "{gap}");

    // A wrong attempt number is refused too.
    let (_dir2, other) = open_journal().await;
    let (_lock2, run2) = begin_apply(&other).await;
    let mut connection2 = raw_connection(&other).await;
    sqlx::query(
        "INSERT INTO events (run_id, seq, step_id, step_kind, event, attempt, at, payload)
         VALUES (?1, 1, 'ha.off', 'ha-off', 'intent', 3, '2026-11-25T06:45:12.000Z', '{}')",
    )
    .bind(run2.run_id().as_str())
    .execute(&mut connection2)
    .await
    .unwrap();
    let attempt = other.run(run2.run_id()).await.unwrap_err();
    assert!(
        attempt
            .to_string()
            .contains("attempt 3 where 1 was expected"),
        "{attempt}"
    );
}

#[tokio::test]
async fn a_journal_truncated_after_an_intent_replays_to_in_flight_and_resumes() {
    on_both_backends(async |store: &Store| {
        let journal = store.open().await;
        let (lock, run) = begin_apply(&journal).await;
        run.intent("ha.off", "ha-off", json!({})).await.unwrap();
        run.succeeded(
            "ha.off",
            json!({ "previous_ha_config": "{\"enable\":true}" }),
        )
        .await
        .unwrap();
        let stop_intent = run
            .intent("node[10.0.0.2].stop-old", "stop-old", json!({}))
            .await
            .unwrap();
        run.succeeded(
            "node[10.0.0.2].stop-old",
            json!({ "t1": "2026-11-25T06:45:12.000Z" }),
        )
        .await
        .unwrap();
        run.intent("db[rm_428].backup", "backup", json!({}))
            .await
            .unwrap();
        let run_id = run.run_id().clone();
        lock.release().await.unwrap();
        drop(journal);

        // The process died right after the stop's intent: everything later is lost.
        let reopened = store.open().await;
        store
            .truncate_events(&reopened, &run_id, stop_intent.seq)
            .await;

        let unfinished = reopened
            .unfinished_run()
            .await
            .unwrap()
            .expect("the run is unfinished");
        assert_eq!(unfinished.info.run_id, run_id);
        assert_eq!(unfinished.state_of("ha.off"), Some(StepState::Succeeded));
        assert_eq!(
            unfinished.state_of("node[10.0.0.2].stop-old"),
            Some(StepState::InFlight)
        );
        assert_eq!(unfinished.state_of("db[rm_428].backup"), None);

        // Resume: observing the world says the stop did not happen; close it and redo it.
        let lock = reopened
            .acquire_lock(omsup_journal::LockRequest {
                run_id: run_id.clone(),
                purpose: LockPurpose::Resume,
                force_unlock: None,
            })
            .await
            .unwrap();
        let resumed = reopened.resume_run(&lock, &run_id).await.unwrap();
        resumed
            .interrupted(
                "node[10.0.0.2].stop-old",
                "container `oms_428` is still running",
            )
            .await
            .unwrap();
        let redo = resumed
            .intent("node[10.0.0.2].stop-old", "stop-old", json!({}))
            .await
            .unwrap();
        assert_eq!(redo.attempt, 2);
        resumed
            .succeeded(
                "node[10.0.0.2].stop-old",
                json!({ "t1": "2026-11-25T06:50:00.000Z" }),
            )
            .await
            .unwrap();
        let state = resumed.state().await.unwrap();
        assert_eq!(state.info.resume_count, 1);
        assert_eq!(state.step("node[10.0.0.2].stop-old").unwrap().attempts, 2);
        assert!(
            state
                .step("node[10.0.0.2].stop-old")
                .unwrap()
                .error
                .as_deref()
                .unwrap()
                .starts_with("interrupted: container `oms_428` is still running")
        );
        lock.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_rollback_run_is_a_run_of_its_own_that_names_the_run_it_undoes() {
    on_both_backends(async |store: &Store| {
        let journal = store.open().await;
        let (lock, run) = begin_apply(&journal).await;
        run.intent("ha.off", "ha-off", json!({})).await.unwrap();
        run.succeeded("ha.off", json!({ "previous_ha_config": "{}" }))
            .await
            .unwrap();
        run.finish(RunOutcome::Succeeded).await.unwrap();
        let apply_id = run.run_id().clone();
        lock.release().await.unwrap();
        assert!(journal.unfinished_run().await.unwrap().is_none());

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
                    planned_steps: vec![omsup_journal::PlannedStep::new(
                        "undo.ha.off",
                        "ha-restore",
                    )],
                    document: serde_json::Value::Null,
                    ..support::new_apply_run()
                },
            )
            .await
            .unwrap();
        rollback
            .intent("undo.ha.off", "ha-restore", json!({}))
            .await
            .unwrap();
        // Interrupted here: the rollback is what resume continues.
        let unfinished = journal.unfinished_run().await.unwrap().unwrap();
        assert_eq!(&unfinished.info.run_id, rollback.run_id());
        assert_eq!(unfinished.info.undoes.as_ref(), Some(&apply_id));

        rollback
            .succeeded("undo.ha.off", json!({ "restored": "{}" }))
            .await
            .unwrap();
        rollback.finish(RunOutcome::Succeeded).await.unwrap();

        let forward_state = journal.run(&apply_id).await.unwrap();
        assert_eq!(
            forward_state.state_of("ha.off"),
            Some(StepState::Succeeded),
            "the rollback journals its own steps; the forward run's log is not touched"
        );
        assert_eq!(
            forward_state.output_of("ha.off"),
            Some(&json!({ "previous_ha_config": "{}" })),
            "outputs stay readable for the rollback planner"
        );
        let rollbacks = journal.rollbacks_of(&apply_id).await.unwrap();
        assert_eq!(rollbacks.len(), 1);
        assert_eq!(&rollbacks[0].run_id, rollback.run_id());
        assert!(journal.unfinished_run().await.unwrap().is_none());
        assert_eq!(
            journal.last_apply_run().await.unwrap().unwrap().info.run_id,
            apply_id
        );
        assert_eq!(journal.runs().await.unwrap().len(), 2);
        assert!(matches!(
            journal.run(&RunId::new("20000101T000000Z-0000")).await,
            Err(JournalError::RunNotFound { .. })
        ));
        lock.release().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_journal_with_a_retired_event_row_is_refused_naming_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = support::state_dir(&dir);
    std::fs::create_dir_all(&state_dir).unwrap();
    // The first releases of schema version 1 created the event table with a wider CHECK
    // (`started` and steno's undo events); no release wrote them, the journal's tests did.
    let path = omsup_journal::journal_path(&state_dir, support::DEPLOYMENT);
    {
        use sqlx::ConnectOptions;
        let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE events (
                run_id    TEXT NOT NULL REFERENCES runs (run_id),
                seq       INTEGER NOT NULL CHECK (seq >= 1),
                step_id   TEXT NOT NULL,
                step_kind TEXT NOT NULL,
                event     TEXT NOT NULL CHECK (event IN ('intent', 'started', 'succeeded', 'failed',
                                                         'undo_started', 'undo_finished', 'undo_failed')),
                attempt   INTEGER NOT NULL CHECK (attempt >= 1),
                at        TEXT NOT NULL,
                payload   TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
            )",
        )
        .execute(&mut connection)
        .await
        .unwrap();
    }
    let journal = Journal::open(&state_dir, support::DEPLOYMENT)
        .await
        .unwrap();
    let (lock, run) = begin_apply(&journal).await;
    run.intent("ha.off", "ha-off", json!({})).await.unwrap();
    run.succeeded("ha.off", json!({})).await.unwrap();
    let mut connection = raw_connection(&journal).await;
    sqlx::query(
        "INSERT INTO events (run_id, seq, step_id, step_kind, event, attempt, at, payload)
         VALUES (?1, 3, 'ha.off', 'ha-off', 'undo_started', 1, '2026-11-25T06:45:12.000Z', '{}')",
    )
    .bind(run.run_id().as_str())
    .execute(&mut connection)
    .await
    .unwrap();

    let error = journal.run(run.run_id()).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, JournalError::RetiredEvent { seq: 3, event, schema_version: 1, .. } if event == "undo_started"),
        "{message}"
    );
    assert!(
        message.contains("journal schema version 1") && message.contains("`undo_started`"),
        "{message}"
    );
    assert!(error.hint().unwrap().contains("fresh state directory"));
    lock.release().await.unwrap();
}

#[tokio::test]
async fn a_new_journal_refuses_retired_event_names_in_its_table() {
    let (_dir, journal) = open_journal().await;
    let (lock, run) = begin_apply(&journal).await;
    run.intent("ha.off", "ha-off", json!({})).await.unwrap();
    let mut connection = raw_connection(&journal).await;
    for retired in omsup_journal::event::RETIRED_EVENT_NAMES {
        let insert = sqlx::query(
            "INSERT INTO events (run_id, seq, step_id, step_kind, event, attempt, at, payload)
             VALUES (?1, 2, 'ha.off', 'ha-off', ?2, 1, '2026-11-25T06:45:12.000Z', '{}')",
        )
        .bind(run.run_id().as_str())
        .bind(retired)
        .execute(&mut connection)
        .await;
        assert!(insert.is_err(), "`{retired}` was accepted by the table");
    }
    lock.release().await.unwrap();
}
