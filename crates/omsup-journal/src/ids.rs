//! Identifiers the journal hands out or keys on: run ids, lock ids and step ids.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A run's id: `20261125T064512Z-1a2b` (UTC start second, then 4 random hex digits), so ids
/// sort by time and two runs started in the same second still differ.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// A fresh id for a run starting now.
    pub fn generate() -> Self {
        Self(format!(
            "{}-{:04x}",
            Timestamp::now().to_compact(),
            random_u64() & 0xffff
        ))
    }

    /// An id read back from the journal or typed by a user (`omsup rollback --run ID`).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The id of one holding of the deployment lock (12 hex digits). Taking over a stale lock
/// needs this id, so that an operator cannot break a lock they have not looked at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LockId(String);

impl LockId {
    pub fn generate() -> Self {
        Self(format!("{:012x}", random_u64() & 0xffff_ffff_ffff))
    }

    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A step's stable id: the one type the engine, the executors and the runner use, defined in
/// `omsup-model`. The journal treats it as an opaque string.
pub use omsup_model::StepId;

/// Random bits from the operating system (getrandom). Ids only need to differ, not to be
/// secret; should the system source fail (it does not on Linux), the clock's nanoseconds and
/// the pid still make two ids of one second differ.
fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
    })
}
