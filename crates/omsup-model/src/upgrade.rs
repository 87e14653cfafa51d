//! Upgrade path rules as data (`upgrade_paths.toml`, checked in with a source per rule): which
//! version may be upgraded to which. Used by `lint` (when the plan names `current_version`)
//! and by `plan` (with the observed version).

use std::sync::LazyLock;

use serde::Deserialize;

use crate::OmsVersion;

/// The parsed rules table.
#[derive(Debug, Clone, Deserialize)]
pub struct UpgradeRules {
    minimum_source: OmsVersion,
    #[serde(rename = "rule")]
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
struct Rule {
    target: OmsVersion,
    #[serde(default)]
    from: Vec<OmsVersion>,
    #[serde(default)]
    from_range: Option<(OmsVersion, OmsVersion)>,
    #[serde(default)]
    note: Option<String>,
    source: String,
}

/// What the rules say about one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeVerdict {
    Allowed {
        source: String,
    },
    Refused {
        allowed_from: Vec<String>,
        reason: String,
        source: String,
    },
    /// No documented rule for the target: not refused, but nothing vouches for it.
    Undocumented {
        reason: String,
    },
}

static RULES: LazyLock<UpgradeRules> = LazyLock::new(|| {
    toml::from_str(include_str!("upgrade_paths.toml"))
        .expect("upgrade_paths.toml is valid (tested)")
});

/// The checked-in rules, parsed once.
pub fn rules() -> &'static UpgradeRules {
    &RULES
}

impl Rule {
    fn allows(&self, from: OmsVersion) -> bool {
        self.from.contains(&from)
            || self
                .from_range
                .is_some_and(|(low, high)| low <= from && from <= high)
    }

    fn allowed_sources(&self, minimum: OmsVersion) -> Vec<String> {
        let mut sources: Vec<String> = self
            .from
            .iter()
            .filter(|v| **v >= minimum)
            .map(ToString::to_string)
            .collect();
        if let Some((low, high)) = self.from_range {
            sources.push(format!("{} to {}", low.max(minimum), high));
        }
        sources
    }
}

impl UpgradeRules {
    pub fn is_known_target(&self, to: OmsVersion) -> bool {
        self.rules.iter().any(|rule| rule.target == to)
    }

    /// The versions with a documented rule, oldest first.
    pub fn known_targets(&self) -> Vec<OmsVersion> {
        let mut targets: Vec<_> = self.rules.iter().map(|rule| rule.target).collect();
        targets.sort();
        targets
    }

    pub fn check(&self, from: OmsVersion, to: OmsVersion) -> UpgradeVerdict {
        let rule = self.rules.iter().find(|rule| rule.target == to);
        let allowed_from = rule
            .map(|r| r.allowed_sources(self.minimum_source))
            .unwrap_or_default();
        let source = rule.map(|r| r.source.clone()).unwrap_or_default();
        if from == to {
            return UpgradeVerdict::Refused {
                allowed_from,
                reason: format!(
                    "{from} is already the target version: there is nothing to upgrade"
                ),
                source,
            };
        }
        if from > to {
            return UpgradeVerdict::Refused {
                allowed_from,
                reason: format!("{from} is newer than {to}: omsup upgrades, it does not downgrade"),
                source,
            };
        }
        if from < self.minimum_source {
            return UpgradeVerdict::Refused {
                allowed_from,
                reason: format!("no OMS version below {} may be upgraded", self.minimum_source),
                source: "oceanbase/obdeploy plugins/oms and docker_init.sh (\"Version before 4.1.1 is not allowed to upgrade\")".into(),
            };
        }
        match rule {
            None => UpgradeVerdict::Undocumented {
                reason: format!(
                    "no documented upgrade rule for {to}; omsup cannot vouch for {from} -> {to}"
                ),
            },
            Some(rule) if rule.allows(from) => UpgradeVerdict::Allowed {
                source: rule.source.clone(),
            },
            Some(rule) => {
                let mut reason = if allowed_from.is_empty() {
                    format!("{to} cannot be reached by an upgrade")
                } else {
                    format!(
                        "{to} may only be upgraded from {}",
                        allowed_from.join(" or ")
                    )
                };
                if let Some(note) = &rule.note {
                    reason.push_str(&format!(" ({note})"));
                }
                UpgradeVerdict::Refused {
                    allowed_from,
                    reason,
                    source: rule.source.clone(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> OmsVersion {
        text.parse().unwrap()
    }

    #[test]
    fn the_table_parses_and_every_rule_has_a_source() {
        let rules = rules();
        assert!(rules.rules.iter().all(|r| !r.source.is_empty()));
        assert!(rules.is_known_target(v("4.2.9")));
        assert!(!rules.is_known_target(v("4.2.7")));
    }

    #[test]
    fn documented_routes_are_allowed() {
        for (from, to) in [
            ("4.2.0", "4.2.9"),
            ("4.2.8", "4.2.9"),
            ("4.2.5", "4.2.9"),
            ("4.1.1", "4.2.0"),
            ("4.2.2", "4.2.3"),
            ("4.2.4", "4.2.6"),
            ("4.2.5", "4.2.6"),
        ] {
            assert!(
                matches!(
                    rules().check(v(from), v(to)),
                    UpgradeVerdict::Allowed { .. }
                ),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn refusals_name_the_allowed_sources() {
        match rules().check(v("4.1.0"), v("4.2.9")) {
            UpgradeVerdict::Refused {
                allowed_from,
                reason,
                ..
            } => {
                assert_eq!(allowed_from, ["4.2.0-CE to 4.2.8-CE"]);
                assert!(reason.contains("below 4.1.1"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match rules().check(v("4.1.1"), v("4.2.9")) {
            UpgradeVerdict::Refused { reason, .. } => assert_eq!(
                reason,
                "4.2.9-CE may only be upgraded from 4.2.0-CE to 4.2.8-CE"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rules().check(v("4.2.9"), v("4.2.9")),
            UpgradeVerdict::Refused { .. }
        ));
        assert!(matches!(
            rules().check(v("4.2.9"), v("4.2.8")),
            UpgradeVerdict::Refused { .. }
        ));
        assert!(matches!(
            rules().check(v("4.2.2"), v("4.1.1")),
            UpgradeVerdict::Refused { .. }
        ));
    }

    #[test]
    fn a_target_without_a_rule_is_undocumented_not_allowed() {
        assert!(matches!(
            rules().check(v("4.2.6"), v("4.2.7")),
            UpgradeVerdict::Undocumented { .. }
        ));
    }
}
