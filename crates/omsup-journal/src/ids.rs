//! Identifiers the journal hands out or keys on: run ids, lock ids and step ids.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A step's stable id as the engine names it, e.g. `node[10.0.0.2].stop-old`,
/// `db[rm_428].backup`, `ha.off`. The journal treats it as an opaque string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl Borrow<str> for StepId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for StepId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<String> for StepId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

/// Random bits without a dependency: std's per-process random hash keys, mixed with the clock,
/// the pid and a counter. Good enough for ids that only need to differ, not to be secret.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_i64(Timestamp::now().unix_millis());
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u32(elapsed.subsec_nanos());
    }
    hasher.finish()
}
