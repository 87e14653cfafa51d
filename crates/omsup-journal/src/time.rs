//! Wall-clock timestamps as the journal stores them: RFC 3339 in UTC with milliseconds
//! (`2026-11-25T06:45:12.345Z`), plus the compact form used in run ids (`20261125T064512Z`).
//! Calendar arithmetic and parsing are `jiff`'s; this type fixes the precision and formats.

use std::fmt;
use std::time::Duration;

/// A moment, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_millis: i64,
}

impl Timestamp {
    /// Now, from the system clock.
    pub fn now() -> Self {
        Self {
            unix_millis: jiff::Timestamp::now().as_millisecond(),
        }
    }

    pub fn from_unix_millis(unix_millis: i64) -> Self {
        Self { unix_millis }
    }

    pub fn unix_millis(self) -> i64 {
        self.unix_millis
    }

    /// `self - earlier`, zero when `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let millis = self.unix_millis.saturating_sub(earlier.unix_millis).max(0);
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    fn jiff(self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.unix_millis).unwrap_or(jiff::Timestamp::MAX)
    }

    /// `2026-11-25T06:45:12.345Z`
    pub fn to_rfc3339(self) -> String {
        self.jiff().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    /// `20261125T064512Z` (sortable, used in run ids)
    pub fn to_compact(self) -> String {
        self.jiff().strftime("%Y%m%dT%H%M%SZ").to_string()
    }

    /// Parses an RFC 3339 UTC timestamp (`Z`; fraction optional, kept to the millisecond).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        if !text.ends_with('Z') {
            return None;
        }
        let moment: jiff::Timestamp = text.parse().ok()?;
        Some(Self {
            unix_millis: moment.as_millisecond(),
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_rfc3339())
    }
}

/// `1h 02m 03s`, `2m 05s`, `4.2s`, `350ms`: how status and history show durations.
pub fn human_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs();
    if seconds < 60 {
        return format!("{}.{}s", seconds, (millis % 1000) / 100);
    }
    if seconds < 3600 {
        return format!("{}m {:02}s", seconds / 60, seconds % 60);
    }
    format!(
        "{}h {:02}m {:02}s",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let moment = Timestamp::parse_rfc3339("2026-11-25T06:45:12.345Z").unwrap();
        assert_eq!(moment.to_rfc3339(), "2026-11-25T06:45:12.345Z");
        assert_eq!(moment.to_compact(), "20261125T064512Z");
        assert_eq!(
            Timestamp::from_unix_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        let leap = Timestamp::parse_rfc3339("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(leap.to_rfc3339(), "2024-02-29T23:59:59.000Z");
        assert_eq!(leap.unix_millis(), 1_709_251_199_000);
        assert!(Timestamp::parse_rfc3339("2024-13-01T00:00:00Z").is_none());
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(human_duration(Duration::from_millis(350)), "350ms");
        assert_eq!(human_duration(Duration::from_millis(4_250)), "4.2s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m 05s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1h 02m 03s");
    }
}
