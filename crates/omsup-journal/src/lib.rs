//! omsup-journal: the durable state store of omsup. A journal per deployment holds the runs
//! (apply, rollback), their append-only event log and the deployment lock, in a local SQLite
//! file or in the deployment's meta database server ([`Backend`]).
//!
//! - [`event`]: the state machine (`Intent`, `Succeeded`, `Failed`), legal transitions and
//!   replay into [`RunState`];
//! - [`journal`]: [`Journal`] (open either backend, what the parts share); [`schema`]: the
//!   tables and their version; [`migrate`]: a deployment's history moved between backends; [`queries`]: replayed runs; [`writer`]: [`RunWriter`] (durable appends);
//! - [`lock`]: [`DeploymentLock`], one apply/resume/rollback per deployment at a time;
//!   [`shared`]: omsup's database in the deployment's meta database server: the lock across
//!   machines, and the tables of the shared journal;
//! - [`run`], [`ids`], [`time`]: the records and identifiers.
//!
//! The journal speaks in step ids and step kinds (strings) and JSON payloads; it does not
//! depend on the engine or the executors. It never stores a registered secret
//! ([`Journal::register_secret`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), omsup_journal::JournalError> {
//! use omsup_journal::*;
//! let journal = Journal::open(std::path::Path::new(".omsup"), "oms-prod").await?;
//! journal.register_secret("the meta db password");
//! let lock = journal
//!     .acquire_lock(LockRequest { run_id: RunId::generate(), purpose: LockPurpose::Apply, force_unlock: None })
//!     .await?;
//! let run = journal
//!     .begin_run(&lock, NewRun {
//!         kind: RunKind::Apply,
//!         undoes: None,
//!         plan_fingerprint: "sha256:...".into(),
//!         plan_file_path: "oms-prod.toml".into(),
//!         plan_file_sha256: "...".into(),
//!         planned_steps: vec![PlannedStep::new("ha.off", "ha-off")],
//!         document: serde_json::json!({ "steps": ["ha.off"] }),
//!     })
//!     .await?;
//! run.intent("ha.off", "ha-off", serde_json::json!({})).await?; // durable before acting
//! // ... turn HA off ...
//! run.succeeded("ha.off", serde_json::json!({ "previous_ha_config": "{...}" })).await?;
//! run.finish(RunOutcome::Succeeded).await?;
//! lock.release().await?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod event;
pub mod host;
pub mod ids;
pub mod journal;
pub mod lock;
pub mod migrate;
pub mod queries;
pub mod rehearsals;
pub mod run;
pub mod schema;
pub mod shared;
pub mod time;
pub mod writer;

pub use error::JournalError;
pub use event::{EventColumns, EventKind, JournalEvent, RunState, StepRecord, StepState};
pub use ids::{LockId, RunId, StepId};
pub use journal::{Backend, Journal, journal_path, journals_in};
pub use lock::{DeploymentLock, LockHolder, LockPurpose, LockRequest, LockTiming, Staleness};
pub use rehearsals::RehearsalRecord;
pub use run::{NewRun, PlannedStep, RunInfo, RunKind, RunOutcome};
pub use schema::SCHEMA_VERSION;
pub use time::Timestamp;
pub use writer::{Appended, RunWriter};
