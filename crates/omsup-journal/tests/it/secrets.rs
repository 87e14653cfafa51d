//! Secrets never reach the journal: a payload or error containing a registered secret is
//! refused, and nothing of it lands in the database file or the state database.

use omsup_journal::JournalError;
use serde_json::json;

use sqlx::AssertSqlSafe;

use crate::support::{Store, begin_apply, on_both_backends};

const PASSWORD: &str = "s3cr3t-Meta-Pa55";

#[tokio::test]
async fn a_payload_or_error_with_a_registered_secret_is_refused() {
    on_both_backends(async |store: &Store| {
    let journal = store.open().await;
    journal.register_secret(PASSWORD);
    let (lock, run) = begin_apply(&journal).await;

    let refused = run
        .intent(
            "db[rm_428].backup",
            "backup",
            json!({ "command": ["mysqldump", format!("--password={PASSWORD}")] }),
        )
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        matches!(&refused, JournalError::SecretInPayload { location, .. } if location == "$.command[1]"),
        "{message}"
    );
    assert!(
        !message.contains(PASSWORD),
        "the error does not repeat the secret"
    );

    run.intent(
        "db[rm_428].backup",
        "backup",
        json!({ "database": "rm_428" }),
    )
    .await
    .unwrap();
    let failed = run
        .failed(
            "db[rm_428].backup",
            &format!("access denied for password {PASSWORD}"),
            json!(null),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(failed, JournalError::SecretInPayload { .. }),
        "{failed}"
    );
    let in_key = run
        .succeeded("db[rm_428].backup", json!({ PASSWORD: 1 }))
        .await
        .unwrap_err();
    assert!(
        matches!(in_key, JournalError::SecretInPayload { .. }),
        "{in_key}"
    );

    run.succeeded("db[rm_428].backup", json!({ "path": "rm_428.sql" }))
        .await
        .unwrap();
    assert_eq!(journal.run(run.run_id()).await.unwrap().last_seq, 2);
    lock.release().await.unwrap();
    match &store.shared {
        None => {
            let bytes = std::fs::read(journal.file().unwrap()).unwrap();
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|window| window == PASSWORD.as_bytes()),
                "the secret is nowhere in the database file"
            );
        }
        Some(shared) => {
            let found: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT (SELECT COUNT(*) FROM `{0}`.`events` WHERE payload LIKE ?)
                      + (SELECT COUNT(*) FROM `{0}`.`runs` WHERE document LIKE ?)",
                shared.database
            )))
            .bind(format!("%{PASSWORD}%"))
            .bind(format!("%{PASSWORD}%"))
            .fetch_one(&shared.server.admin)
            .await
            .unwrap();
            assert_eq!(found, 0, "the secret is nowhere in the state database");
        }
    }
    })
    .await;
}
