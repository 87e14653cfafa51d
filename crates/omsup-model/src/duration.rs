//! Durations written the way people write them in config files: `90s`, `15m`, `2h`, `500ms`,
//! `1m30s`. jiff's friendly-format parser does the parsing; omsup admits only its compact
//! designators (`ms`, `s`, `m`, `h`), whole numbers and no sign or spaces, so a plan file reads
//! the same everywhere (`15 minutes` and `-3s` are refused).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads as one or more `<number><unit>` with unit `ms`, `s`, `m` or `h`
/// (largest unit first, e.g. `1h30m`), and writes as one `<number><unit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{input}`: expected whole numbers each followed by `ms`, `s`, `m` or `h`, largest first, like `90s`, `15m` or `1m30s`"
)]
pub struct DurationParseError {
    pub input: String,
}

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = DurationParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || DurationParseError {
            input: input.to_owned(),
        };
        // Only digits and the letters of `ms`, `s`, `m`, `h`: no sign, fraction, space or
        // long unit name, which jiff's friendly format would also accept.
        if !input
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'm' | b's' | b'h'))
        {
            return Err(error());
        }
        let parsed = jiff::fmt::friendly::SpanParser::new()
            .parse_duration(input)
            .map_err(|_| error())?;
        Duration::try_from(parsed).map(Self).map_err(|_| error())
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        match millis {
            m if m % 3_600_000 == 0 && m > 0 => write!(f, "{}h", m / 3_600_000),
            m if m % 60_000 == 0 && m > 0 => write!(f, "{}m", m / 60_000),
            m if m % 1_000 == 0 => write!(f, "{}s", m / 1_000),
            m => write!(f, "{m}ms"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h))+$",
            "description": "A duration: whole numbers each followed by `ms`, `s`, `m` or `h`, largest unit first, like `90s`, `15m` or `1m30s`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_each_unit() {
        for (text, millis) in [
            ("500ms", 500),
            ("90s", 90_000),
            ("15m", 900_000),
            ("2h", 7_200_000),
        ] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.0.as_millis(), millis, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn compound_durations_parse_to_their_sum_and_print_in_one_unit() {
        let cases = [
            ("6s", 6_000, "6s"),
            ("1m30s", 90_000, "90s"),
            ("2h", 7_200_000, "2h"),
            ("1h30m", 5_400_000, "90m"),
            ("1s500ms", 1_500, "1500ms"),
            ("0s", 0, "0s"),
        ];
        for (text, millis, printed) in cases {
            let parsed: HumanDuration = text.parse().unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(parsed.0.as_millis(), millis, "{text}");
            assert_eq!(parsed.to_string(), printed, "{text}");
            assert_eq!(
                printed.parse::<HumanDuration>().unwrap(),
                parsed,
                "{printed}"
            );
        }
        assert_eq!(cases.len(), 6);
    }

    #[test]
    fn refuses_missing_or_unknown_units_with_a_clear_error() {
        let refused = [
            "",
            "15",
            "m",
            "15 m",
            "1.5m",
            "15d",
            "-3s",
            "+3s",
            "15 minutes",
            "3S",
            "1h 30m",
            "PT5M",
            "s15",
            "99999999999999999999h",
        ];
        for text in refused {
            let error = text
                .parse::<HumanDuration>()
                .expect_err(&format!("`{text}` must be refused"));
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid duration `{text}`: expected whole numbers each followed by `ms`, `s`, `m` or `h`, largest first, like `90s`, `15m` or `1m30s`"
                )
            );
        }
        assert_eq!(refused.len(), 14);
    }
}
