//! Wall-clock timestamps as the journal stores them: RFC 3339 in UTC with milliseconds
//! (`2026-11-25T06:45:12.345Z`), plus the compact form used in run ids (`20261125T064512Z`).
//!
//! Hand-written (no date crate in the workspace): only UTC, only this one format, so the
//! civil-date arithmetic below (Howard Hinnant's algorithms) is all that is needed.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A moment, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_millis: i64,
}

impl Timestamp {
    /// Now, from the system clock.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self {
            unix_millis: i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
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

    /// `2026-11-25T06:45:12.345Z`
    pub fn to_rfc3339(self) -> String {
        let (date, seconds_of_day, millis) = self.split();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            date.0,
            date.1,
            date.2,
            seconds_of_day / 3600,
            seconds_of_day / 60 % 60,
            seconds_of_day % 60,
            millis
        )
    }

    /// `20261125T064512Z` (sortable, used in run ids)
    pub fn to_compact(self) -> String {
        let (date, seconds_of_day, _) = self.split();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            date.0,
            date.1,
            date.2,
            seconds_of_day / 3600,
            seconds_of_day / 60 % 60,
            seconds_of_day % 60
        )
    }

    /// Parses what [`Timestamp::to_rfc3339`] writes (`Z` only; fraction optional, 0 to 9 digits).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() < 20 || !text.ends_with('Z') {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = text.get(range)?;
            if !part.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        if bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
            return None;
        }
        if bytes[13] != b':' || bytes[16] != b':' {
            return None;
        }
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
            return None;
        }
        if second > 60 {
            return None;
        }
        let rest = &text[19..text.len() - 1];
        let millis = if rest.is_empty() {
            0
        } else {
            let fraction = rest.strip_prefix('.')?;
            if fraction.is_empty()
                || fraction.len() > 9
                || !fraction.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let padded = format!("{fraction:0<3}");
            padded[..3].parse::<i64>().ok()?
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
        Some(Self {
            unix_millis: seconds * 1000 + millis,
        })
    }

    fn split(self) -> ((i64, i64, i64), i64, i64) {
        let millis = self.unix_millis.rem_euclid(1000);
        let seconds = self.unix_millis.div_euclid(1000);
        let days = seconds.div_euclid(86_400);
        let seconds_of_day = seconds.rem_euclid(86_400);
        (civil_from_days(days), seconds_of_day, millis)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_rfc3339())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
