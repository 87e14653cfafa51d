//! OMS versions (`4.2.9-CE`): parsed, compared numerically (4.2.10 > 4.2.9), printed the way
//! OMS writes them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An OMS Community Edition version. The `-CE` suffix is optional on input and always printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OmsVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid OMS version `{input}`: expected `MAJOR.MINOR.PATCH` with an optional `-CE`, like `4.2.9-CE`"
)]
pub struct VersionParseError {
    pub input: String,
}

impl OmsVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The oldest version OMS lets anyone upgrade from (`Version before 4.1.1 is not allowed`).
    pub const MINIMUM_UPGRADABLE: OmsVersion = OmsVersion::new(4, 1, 1);

    /// `4.2.9`, without the edition suffix (as in image tags).
    pub fn numeric(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for OmsVersion {
    type Err = VersionParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || VersionParseError {
            input: input.to_owned(),
        };
        let trimmed = input.trim();
        let numeric = trimmed
            .strip_suffix("-CE")
            .or_else(|| trimmed.strip_suffix("-ce"))
            .unwrap_or(trimmed);
        let mut parts = numeric.split('.').map(|part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                Err(error())
            } else {
                part.parse::<u32>().map_err(|_| error())
            }
        });
        let version = OmsVersion {
            major: parts.next().ok_or_else(error)??,
            minor: parts.next().ok_or_else(error)??,
            patch: parts.next().ok_or_else(error)??,
        };
        if parts.next().is_some() {
            return Err(error());
        }
        Ok(version)
    }
}

impl fmt::Display for OmsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}-CE", self.major, self.minor, self.patch)
    }
}

impl Serialize for OmsVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OmsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_suffix_and_compares_numerically() {
        let v429: OmsVersion = "4.2.9-CE".parse().unwrap();
        assert_eq!(v429, "4.2.9".parse().unwrap());
        assert_eq!(v429, "4.2.9-ce".parse().unwrap());
        assert!("4.2.10-CE".parse::<OmsVersion>().unwrap() > v429);
        assert_eq!(v429.to_string(), "4.2.9-CE");
        assert_eq!(v429.numeric(), "4.2.9");
    }

    #[test]
    fn refuses_malformed_versions() {
        for text in ["", "4.2", "4.2.9.1", "4.2.x", "v4.2.9", "4.2.9-EE", "4..9"] {
            assert!(
                text.parse::<OmsVersion>().is_err(),
                "{text} must be refused"
            );
        }
    }
}
