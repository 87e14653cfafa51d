//! Shared helpers: a journal in a temporary state directory or in the test MariaDB (each
//! backend, [`on_both_backends`]), and a run with a known plan.

use std::path::PathBuf;

use omsup_journal::shared::{SharedState, SharedStateConfig};
use omsup_journal::{
    DeploymentLock, Journal, LockPurpose, LockRequest, NewRun, PlannedStep, RunId, RunKind,
    RunWriter,
};
use sqlx::AssertSqlSafe;

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
        .filename(journal.file().expect("a local journal"))
        .connect()
        .await
        .expect("a raw connection to the journal")
}

pub fn probe() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_omsup-journal-probe"))
}

/// The test MariaDB of `cargo xtask services`, with an administrator connection.
pub struct Server {
    pub services: omsup_testworld::services::Services,
    pub admin: sqlx::MySqlPool,
}

pub async fn server() -> Server {
    let services = tokio::task::spawn_blocking(|| omsup_testworld::services::ensure(1))
        .await
        .unwrap()
        .expect("the test MariaDB (`cargo xtask services`)");
    let admin = omsup_testworld::world::meta_pool(&services)
        .await
        .expect("the test administrator connects");
    Server { services, admin }
}

impl Server {
    /// omsup's state in a database of this test's own, so that parallel tests do not meet.
    pub fn config(&self, database: &str) -> SharedStateConfig {
        self.config_as(
            database,
            &self.services.meta_user,
            &self.services.meta_password().unwrap(),
        )
    }

    pub fn config_as(&self, database: &str, user: &str, password: &str) -> SharedStateConfig {
        SharedStateConfig::new(
            &self.services.meta_host,
            self.services.meta_port,
            user,
            password,
            database,
        )
    }

    pub async fn has_database(&self, database: &str) -> bool {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(database)
        .fetch_optional(&self.admin)
        .await
        .unwrap();
        found.is_some()
    }

    pub async fn drop_database(&self, database: &str) {
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{database}`"
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

/// `prefix_<unique>`, a name no parallel test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        RunId::generate().as_str().replace('-', "_").to_lowercase()
    )
}

/// Where a test's journal lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    MetaDb,
}

/// A deployment's journal store on one backend: a temporary state directory, or a state
/// database of the test's own in the test MariaDB (dropped by [`Store::remove`]).
pub struct Store {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub shared: Option<Shared>,
}

pub struct Shared {
    pub server: Server,
    pub database: String,
    pub key: String,
    pub state: SharedState,
}

impl Store {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let shared = match backend {
            Backend::Local => None,
            Backend::MetaDb => {
                let server = server().await;
                let database = unique("omsup_state_t");
                let state = SharedState::open(server.config(&database))
                    .await
                    .expect("omsup's state database is created");
                Some(Shared {
                    server,
                    database,
                    key: unique("rm"),
                    state,
                })
            }
        };
        Self {
            backend,
            dir,
            shared,
        }
    }

    /// A journal on the store: each call is another handle, as another process or operator
    /// (or the same one after a crash) would open it.
    pub async fn open(&self) -> Journal {
        match &self.shared {
            None => Journal::open(&state_dir(&self.dir), DEPLOYMENT).await,
            Some(shared) => Journal::open_shared(&shared.state, &shared.key, DEPLOYMENT).await,
        }
        .expect("the journal opens")
    }

    /// Deletes a run's events after `seq`, as a crash before their commit would have left it.
    pub async fn truncate_events(&self, journal: &Journal, run_id: &RunId, after_seq: u64) {
        let after_seq = i64::try_from(after_seq).unwrap();
        match &self.shared {
            None => {
                let mut connection = raw_connection(journal).await;
                sqlx::query("DELETE FROM events WHERE run_id = ? AND seq > ?")
                    .bind(run_id.as_str())
                    .bind(after_seq)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
            Some(shared) => {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM `{}`.`events` WHERE run_id = ? AND seq > ?",
                    shared.database
                )))
                .bind(run_id.as_str())
                .bind(after_seq)
                .execute(&shared.server.admin)
                .await
                .unwrap();
            }
        }
    }

    /// Drops the test's state database (nothing to do for a temporary directory).
    pub async fn remove(self) {
        if let Some(shared) = self.shared {
            shared.server.drop_database(&shared.database).await;
        }
    }
}

/// Runs `test` on a fresh store of each backend, local then meta_db, and checks both ran.
pub async fn on_both_backends(test: impl AsyncFn(&Store)) {
    let mut ran = Vec::new();
    for backend in [Backend::Local, Backend::MetaDb] {
        let store = Store::new(backend).await;
        test(&store).await;
        ran.push(store.backend);
        store.remove().await;
    }
    assert_eq!(ran, [Backend::Local, Backend::MetaDb], "both backends ran");
}
