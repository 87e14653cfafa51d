//! Seconds since the Unix epoch: the unit of T1, T2 and T3 in step outputs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in whole seconds since the epoch.
pub fn unix_now() -> u64 {
    unix_seconds(SystemTime::now())
}

/// `time` in whole seconds since the epoch (0 before it).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
