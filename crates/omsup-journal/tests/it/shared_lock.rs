//! The deployment lock in the meta database server (the real test MariaDB): one holder across
//! journals in different state directories, refusal naming the holder, staleness by the
//! server's clock, take-over only with the lock id, fencing of every write, release, and a
//! clear error for a meta user without the privilege.

use std::time::Duration;

use omsup_journal::shared::SharedState;
use omsup_journal::{JournalError, LockPurpose, LockTiming, Staleness};
use serde_json::json;
use sqlx::AssertSqlSafe;

use crate::support::{begin_apply, lock_request, server, unique};

fn fast() -> LockTiming {
    LockTiming {
        heartbeat_every: Duration::from_millis(200),
        stale_after: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn two_state_directories_share_one_lock_in_the_meta_database() {
    let server = server().await;
    let database = unique("omsup_state_t");
    let key = unique("rm");
    let state = SharedState::open(server.config(&database)).await.unwrap();

    let (_dir_a, journal_a) = crate::support::open_journal().await;
    let (_dir_b, journal_b) = crate::support::open_journal().await;
    let (lock_a, run_a) = begin_apply(&journal_a).await;
    lock_a
        .share(&state, &key, LockPurpose::Apply, None)
        .await
        .expect("the first operator takes the shared lock");

    // The second operator has a journal of its own: its local lock is free, the shared one not.
    let lock_b = journal_b
        .acquire_lock(lock_request(LockPurpose::Apply))
        .await
        .unwrap();
    let refused = lock_b
        .share(&state, &key, LockPurpose::Apply, None)
        .await
        .unwrap_err();
    let JournalError::LockHeld { holder, .. } = &refused else {
        panic!("{refused}")
    };
    assert_eq!(
        &holder.lock_id,
        lock_a.lock_id(),
        "the same id as the local lock"
    );
    assert_eq!(&holder.run_id, run_a.run_id());
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(holder.staleness, Staleness::Live);
    let message = refused.to_string();
    for part in ["is locked by run", "last heartbeat", "pid"] {
        assert!(message.contains(part), "{message}");
    }

    // Writes of the holder are fenced by the shared row: taken away, the next write fails.
    run_a.intent("ha.off", "ha-off", json!({})).await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE `{database}`.`deployment_locks` SET lock_id = 'someoneelse' WHERE lock_key = ?"
    )))
    .bind(&key)
    .execute(&server.admin)
    .await
    .unwrap();
    let fenced = run_a.succeeded("ha.off", json!({})).await.unwrap_err();
    assert!(matches!(fenced, JournalError::LockLost { .. }), "{fenced}");
    assert!(lock_a.is_lost());
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM `{database}`.`deployment_locks` WHERE lock_key = ?"
    )))
    .bind(&key)
    .execute(&server.admin)
    .await
    .unwrap();

    // Once free, the second operator gets it; releasing frees the row.
    lock_b
        .share(&state, &key, LockPurpose::Apply, None)
        .await
        .unwrap();
    assert_eq!(
        state
            .lock_holder(&key, fast())
            .await
            .unwrap()
            .unwrap()
            .lock_id,
        *lock_b.lock_id()
    );
    lock_b.release().await.unwrap();
    assert!(state.lock_holder(&key, fast()).await.unwrap().is_none());
    drop(lock_a);
    server.drop_database(&database).await;
}

#[tokio::test]
async fn a_silent_holder_turns_stale_by_the_servers_clock_and_is_taken_over_only_by_its_id() {
    let server = server().await;
    let database = unique("omsup_state_t");
    let key = unique("rm");
    let state = SharedState::open(server.config(&database)).await.unwrap();
    // A holder on another machine that stopped beating 10 s ago (by the server's clock).
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO `{database}`.`deployment_locks` (lock_key, deployment, lock_id, run_id,
             purpose, holder_user, holder_host, holder_pid, acquired_unix_ms, heartbeat_unix_ms)
         VALUES (?, 'oms-test', 'deadbeef0001', '20261125T064512Z-1a2b', 'apply', 'alice',
                 'elsewhere', 4242,
                 CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - 60000,
                 CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - 10000)"
    )))
    .bind(&key)
    .execute(&server.admin)
    .await
    .unwrap();
    let (_dir, journal) = crate::support::open_journal().await;
    journal.set_lock_timing(fast());
    let holder = state.lock_holder(&key, fast()).await.unwrap().unwrap();
    assert!(
        matches!(holder.staleness, Staleness::Silent { silent_for_ms } if silent_for_ms >= 9_000),
        "{holder}"
    );
    assert_eq!(holder.host, "elsewhere");

    let lock = journal
        .acquire_lock(lock_request(LockPurpose::Resume))
        .await
        .unwrap();
    let without_id = lock
        .share(&state, &key, LockPurpose::Resume, None)
        .await
        .unwrap_err();
    assert!(
        matches!(without_id, JournalError::LockHeld { .. }),
        "{without_id}"
    );
    assert!(
        without_id
            .hint()
            .unwrap()
            .contains("--force-unlock deadbeef0001")
    );
    let wrong_id = lock
        .share(
            &state,
            &key,
            LockPurpose::Resume,
            Some(omsup_journal::LockId::new("0000")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_id, JournalError::ForceUnlockMismatch { .. }),
        "{wrong_id}"
    );
    lock.share(
        &state,
        &key,
        LockPurpose::Resume,
        Some(omsup_journal::LockId::new("deadbeef0001")),
    )
    .await
    .expect("a stale lock is taken over with its id");
    let takeovers: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM `{database}`.`lock_takeovers`
         WHERE lock_key = ? AND old_lock_id = 'deadbeef0001' AND old_host = 'elsewhere'"
    )))
    .bind(&key)
    .fetch_one(&server.admin)
    .await
    .unwrap();
    assert_eq!(takeovers, 1, "the take-over is recorded");

    // A live holder is never taken over, even with its id; the heartbeat keeps it live.
    let (_dir2, other) = crate::support::open_journal().await;
    let other_lock = other
        .acquire_lock(lock_request(LockPurpose::Apply))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let live = other_lock
        .share(
            &state,
            &key,
            LockPurpose::Apply,
            Some(lock.lock_id().clone()),
        )
        .await
        .unwrap_err();
    assert!(matches!(live, JournalError::LockNotStale { .. }), "{live}");
    lock.release().await.unwrap();
    drop(other_lock);
    server.drop_database(&database).await;
}

#[tokio::test]
async fn a_meta_user_without_the_privilege_gets_a_clear_error_naming_the_grant() {
    let server = server().await;
    let database = unique("omsup_state_t");
    let user = unique("omsup_np");
    let user = &user[..user.len().min(32)];
    let password = "np-password-7f3a";
    sqlx::query(AssertSqlSafe(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    )))
    .execute(&server.admin)
    .await
    .unwrap();
    let error = SharedState::open(server.config_as(&database, user, password))
        .await
        .unwrap_err();
    sqlx::query(AssertSqlSafe(format!("DROP USER '{user}'@'%'")))
        .execute(&server.admin)
        .await
        .unwrap();
    assert!(
        matches!(error, JournalError::SharedStatePrivilege { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("`{user}`")) && message.contains(&format!("`{database}`")),
        "{message}"
    );
    let hint = error.hint().unwrap();
    assert!(
        hint.contains("SELECT, INSERT, UPDATE, DELETE, CREATE")
            && hint.contains("[state] database"),
        "{hint}"
    );
    assert!(!message.contains(password) && !hint.contains(password));
    assert!(!server.has_database(&database).await, "nothing was created");
}

#[tokio::test]
async fn the_state_database_is_created_on_first_use_and_reused() {
    let server = server().await;
    let database = unique("omsup_state_t");
    let never_used = SharedState::open_existing(server.config(&database))
        .await
        .unwrap();
    assert!(never_used.is_none(), "nothing kept there yet");
    assert!(
        !server.has_database(&database).await,
        "a reader creates nothing"
    );
    let first = SharedState::open(server.config(&database)).await.unwrap();
    assert!(
        SharedState::open_existing(server.config(&database))
            .await
            .unwrap()
            .is_some()
    );
    let second = SharedState::open(server.config(&database)).await.unwrap();
    assert_eq!(first.database(), second.database());
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
    )
    .bind(&database)
    .fetch_all(&server.admin)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "deployment_locks",
            "events",
            "journal_meta",
            "lock_takeovers",
            "rehearsals",
            "runs"
        ]
    );
    let bad = SharedState::open(server.config("rm; DROP"))
        .await
        .unwrap_err();
    assert!(
        matches!(bad, JournalError::InvalidStateDatabase { .. }),
        "{bad}"
    );
    server.drop_database(&database).await;
}
