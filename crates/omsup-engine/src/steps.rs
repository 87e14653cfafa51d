//! The step DAG, derived from the diff (never written by the user), and the plan around it.
//!
//! Dependencies are exactly what safety needs, so independent work runs in parallel:
//!
//! - `node[ip].load-image` only needs `preflight`: images load on every node in parallel, and
//!   before anything else changes, so a failed or slow load never holds up a running window.
//! - `ha.off` needs every load (HA is off for as short a time as possible).
//! - `region[r].prune-heartbeats` needs `ha.off` (or `preflight` and the loads, when HA is
//!   already off): it deletes all but the newest `heatbeat_sequence` rows while OMS still runs,
//!   in short batches, so the window no longer holds the delete; the few rows written between
//!   the prune and the stop stay and are dumped with the rest.
//! - `node[ip].stop-old` needs `ha.off` (or `preflight` and the loads) and every region's
//!   prune, so the window opens once, after the slowest prune, and the stops run together
//!   (T1 is the first stop; the downtime window opens).
//! - `db[rm].backup` and `db[cm].backup` need every stop; `db[cm_hb].backup` needs its
//!   region's stops. The backups run in parallel.
//! - `node[ip].start-new` needs its stop, its image, and the backups of the databases its new
//!   container writes to: rm, cm and its own region's cm_hb (a new container writes to them,
//!   so it must not start before they are dumped; another region's heartbeat backup does not
//!   hold it up). It renames the
//!   old container to `<name>-omsup-<old version>` and runs the new one under the old name in
//!   one step: a rename alone changes nothing a user or rollback cares about, and keeping the
//!   two together means a resumed run never finds the name half-taken (the executor observes
//!   which of the two already happened).
//! - `node[ip].wait-ready` polls the new container; `region[r].init` (all nodes of the region
//!   share `cm_nodes`) or `node[ip].init` (they differ) needs the region's nodes ready; inits
//!   run one after another, in region order, since each migrates the shared rm and cm schemas.
//!   The `oms_version` remedy is part of the init executor (it only runs when init asks for
//!   it, so it is not a step of its own).
//! - `online.verify` needs every init; `ha.restore` needs it, and closes the plan.
//!
//! The downtime window runs from the first `stop-old` to `online.verify`; `preflight`,
//! `load-image`, `ha.off`, `prune-heartbeats` and `ha.restore` are outside it.
//!
//! A partially upgraded deployment plans only what is left:
//! - a node whose container already runs the target image gets no steps (no stop, no load);
//!   a node whose image is loaded but whose container is old gets no `load-image`;
//! - when some nodes are already upgraded, the meta schema still has to be migrated: the
//!   remaining nodes' steps and the init run as usual (init is idempotent);
//! - when every container is new but `oms_version` is still old, only the init, the online
//!   check and the HA steps are planned;
//! - HA already off: no `ha.off`. Whether `ha.restore` is planned follows the `[ha] after`
//!   policy applied to what is observed now: `restore` keeps it off (nothing to restore; the
//!   value HA had before an interrupted run is the journal's business: `omsup resume` uses
//!   the journaled value, not a new observation), `on` plans `ha.restore` with the
//!   `refetchStoreIntervalMin` rule, `off` plans none;
//! - every container and `oms_version` on the target version: no steps ("No changes"); HA is
//!   left as it is then, whatever the policy says (`plan` changes nothing outside an upgrade).

use std::collections::BTreeMap;

use omsup_model::StepId;
use omsup_model::step_id::names;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::container::ContainerSpec;
use crate::diff::{DatabaseRole, Diff, NodeState};
use crate::observed::ObservedWorld;
use crate::outputs::StepOutput;
pub use crate::step::Step;
use crate::step::{Builder, Kind};

/// What a step does, with the data its executor needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    Preflight,
    LoadImage {
        node: String,
    },
    HaOff,
    StopOld {
        node: String,
    },
    PruneHeartbeats {
        region: String,
        database: String,
    },
    Backup {
        database: String,
    },
    /// Keeps the old container under its kept name and creates and starts `container`,
    /// exactly (computed by [`crate::container::upgrade_spec`] when planning).
    StartNew {
        node: String,
        container: Box<ContainerSpec>,
    },
    WaitReady {
        node: String,
    },
    /// `docker_init.sh` in `run_on`'s new container, once for `scope`.
    Init {
        scope: InitScope,
        run_on: String,
    },
    VerifyOnline,
    HaRestore,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "name", rename_all = "snake_case")]
pub enum InitScope {
    Region(String),
    Node(String),
}

impl StepKind {
    /// How rollback undoes this step (issue 6); the step's `compensation` text says it in words.
    pub fn compensation(&self) -> Compensation {
        match self {
            Self::Preflight
            | Self::LoadImage { .. }
            | Self::Backup { .. }
            | Self::WaitReady { .. }
            | Self::VerifyOnline => Compensation::Nothing,
            Self::HaOff => Compensation::RestoreHaConfig,
            Self::StopOld { node } => Compensation::StartOldContainer { node: node.clone() },
            Self::PruneHeartbeats { database, .. } => Compensation::RestoreDatabases {
                databases: vec![database.clone()],
            },
            Self::StartNew { node, .. } => Compensation::ReplaceNewWithOld { node: node.clone() },
            Self::Init { .. } => Compensation::RestoreMetaDatabases,
            Self::HaRestore => Compensation::TurnHaOff,
        }
    }

    /// How rollback undoes this step, in words.
    pub fn compensation_text(&self) -> &'static str {
        match self {
            Self::Preflight | Self::WaitReady { .. } | Self::VerifyOnline => "none: reads only",
            Self::LoadImage { .. } => "none: the image stays loaded (harmless)",
            Self::HaOff => "restore ha.config to the journaled value",
            Self::StopOld { .. } => "start the old container again",
            Self::PruneHeartbeats { .. } => "restore the database from its backup",
            Self::Backup { .. } => "none: the backup is what rollback restores from",
            Self::StartNew { .. } => {
                "remove the new container; rename the old one back and start it"
            }
            Self::Init { .. } => "restore rm, cm and cm_hb from their backups",
            Self::HaRestore => "turn HA off again",
        }
    }
}

impl Kind for StepKind {
    type Output = StepOutput;

    fn name(&self) -> &'static str {
        match self {
            Self::Preflight => names::PREFLIGHT,
            Self::LoadImage { .. } => names::LOAD_IMAGE,
            Self::HaOff => names::HA_OFF,
            Self::StopOld { .. } => names::STOP_OLD,
            Self::PruneHeartbeats { .. } => names::PRUNE_HEARTBEATS,
            Self::Backup { .. } => names::BACKUP,
            Self::StartNew { .. } => names::START_NEW,
            Self::WaitReady { .. } => names::WAIT_READY,
            Self::Init { .. } => names::INIT,
            Self::VerifyOnline => names::ONLINE_VERIFY,
            Self::HaRestore => names::HA_RESTORE,
        }
    }

    fn id(&self) -> StepId {
        match self {
            Self::Preflight => StepId::preflight(),
            Self::LoadImage { node } => StepId::load_image(node),
            Self::HaOff => StepId::ha_off(),
            Self::StopOld { node } => StepId::stop_old(node),
            Self::PruneHeartbeats { region, .. } => StepId::prune_heartbeats(region),
            Self::Backup { database } => StepId::backup(database),
            Self::StartNew { node, .. } => StepId::start_new(node),
            Self::WaitReady { node } => StepId::wait_ready(node),
            Self::Init {
                scope: InitScope::Region(region),
                ..
            } => StepId::region_init(region),
            Self::Init {
                scope: InitScope::Node(node),
                ..
            } => StepId::node_init(node),
            Self::VerifyOnline => StepId::online_verify(),
            Self::HaRestore => StepId::ha_restore(),
        }
    }

    /// From the first stop to the last node ONLINE; `preflight`, `load-image`, the heartbeat
    /// prune and the HA steps are outside.
    fn in_downtime(&self) -> bool {
        !matches!(
            self,
            Self::Preflight
                | Self::LoadImage { .. }
                | Self::PruneHeartbeats { .. }
                | Self::HaOff
                | Self::HaRestore
        )
    }

    fn node(&self) -> Option<&str> {
        match self {
            Self::LoadImage { node }
            | Self::StopOld { node }
            | Self::StartNew { node, .. }
            | Self::WaitReady { node } => Some(node),
            Self::Init { run_on, .. } => Some(run_on),
            _ => None,
        }
    }

    fn summary(output: &StepOutput) -> Option<String> {
        output.summary()
    }
}

/// What rollback does to undo a step, as data for the rollback planner (issue 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Compensation {
    /// Reads only, or leaves something harmless behind (a loaded image, a backup file).
    Nothing,
    /// Write back the `ha.config` value journaled before `ha.off`.
    RestoreHaConfig,
    /// Turn HA off again (rollback then restores the journaled value at its end).
    TurnHaOff,
    /// Start the old container again (it was only stopped).
    StartOldContainer { node: String },
    /// Stop and remove the new container, rename the kept old one back, start it.
    ReplaceNewWithOld { node: String },
    /// Drop, re-create and restore these databases from their checked backups.
    RestoreDatabases { databases: Vec<String> },
    /// Restore rm, cm and every cm_hb from their backups (init migrated all of them).
    RestoreMetaDatabases,
}

/// Everything `plan` shows and `apply` executes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradePlan {
    pub deployment: String,
    /// sha256 of the plan file's bytes.
    pub plan_file_sha256: String,
    pub diff: Diff,
    /// In topological order.
    pub steps: Vec<Step>,
    /// Every observed fact the plan depends on.
    pub facts: BTreeMap<String, String>,
    /// sha256 over `facts`.
    pub fingerprint: String,
}

impl UpgradePlan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn downtime_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.downtime).count()
    }

    pub fn has_blocking_findings(&self) -> bool {
        self.blocking_findings().next().is_some()
    }

    /// The preflight findings that refuse apply (`Severity::Error`).
    pub fn blocking_findings(&self) -> impl Iterator<Item = &crate::diff::PreflightFinding> {
        self.diff
            .findings
            .iter()
            .filter(|f| f.severity == omsup_model::Severity::Error)
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        crate::step::find(&self.steps, id)
    }

    /// How many nodes get steps.
    pub fn nodes_touched(&self) -> usize {
        self.diff
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::NeedsUpgrade)
            .count()
    }

    /// The container `node[ip].start-new` creates, exactly.
    pub fn new_container(&self, ip: &str) -> Option<&ContainerSpec> {
        self.steps.iter().find_map(|step| match &step.kind {
            StepKind::StartNew { node, container } if node == ip => Some(container.as_ref()),
            _ => None,
        })
    }

    /// The steps grouped by lane, in order.
    pub fn lanes(&self) -> Vec<Vec<&Step>> {
        crate::step::lanes(&self.steps)
    }
}

/// sha256 of the facts, in name order.
pub fn fingerprint(facts: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in facts {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// Derives the steps from the diff; returns them in topological order with lanes set.
pub fn derive_steps(diff: &Diff, plan: &omsup_model::PlanFile) -> Vec<Step> {
    let upgrading: Vec<_> = diff
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::NeedsUpgrade)
        .collect();
    let ha = diff.ha.as_ref();
    if upgrading.is_empty()
        && !diff.init_needed
        && !ha.is_some_and(|h| h.restore && h.enable_before != h.enable_after)
    {
        return Vec::new();
    }
    let mut b: Builder<StepKind> = Builder::default();
    let preflight = b.add(
        StepKind::Preflight,
        vec![],
        "checks every observed fact again",
    );
    let mut loads = BTreeMap::new();
    for node in upgrading.iter().filter(|n| n.load_image) {
        let id = b.add(
            StepKind::LoadImage {
                node: node.ip.clone(),
            },
            vec![preflight.clone()],
            format!(
                "docker load {} -> {}{}",
                plan.image.package.display(),
                node.image_after,
                match plan.image.package_on {
                    omsup_model::plan::PackageLocation::Operator => "",
                    omsup_model::plan::PackageLocation::Nodes => " (on the node, over ssh)",
                }
            ),
        );
        loads.insert(node.ip.clone(), id);
    }
    let all_loads: Vec<StepId> = loads.values().cloned().collect();
    let ha_off = ha.filter(|h| h.turn_off).map(|_| {
        b.add(
            StepKind::HaOff,
            [vec![preflight.clone()], all_loads.clone()].concat(),
            "ha.config: enable true -> false (the old value is journaled)",
        )
    });
    let before_stop = match &ha_off {
        Some(id) => vec![id.clone()],
        None => [vec![preflight.clone()], all_loads].concat(),
    };

    // Heartbeats are pruned before the window opens: a region's stops wait for its prune.
    let mut prunes: BTreeMap<&str, StepId> = BTreeMap::new();
    if !upgrading.is_empty() {
        for db in &diff.databases {
            if let DatabaseRole::CmHb { region } = &db.role {
                let prune = b.add(
                    StepKind::PruneHeartbeats {
                        region: region.clone(),
                        database: db.name.clone(),
                    },
                    before_stop.clone(),
                    format!(
                        "delete from {}.heatbeat_sequence below max(id){}, in batches, while OMS runs",
                        db.name,
                        db.heartbeat_rows
                            .map_or(String::new(), |n| format!(" (~{n} rows)"))
                    ),
                );
                prunes.insert(region.as_str(), prune);
            }
        }
    }
    let mut stops = BTreeMap::new();
    // Every stop waits for every region's prune: the window opens once, after the slowest
    // prune, and the stops run together. (A stop waiting only for its own region's prune
    // opened the window early and held it open while other regions were still pruning.)
    let all_prunes: Vec<StepId> = prunes.values().cloned().collect();
    for node in &upgrading {
        let mut deps = before_stop.clone();
        deps.extend(all_prunes.iter().cloned());
        let id = b.add(
            StepKind::StopOld {
                node: node.ip.clone(),
            },
            deps,
            format!("docker stop {} (records T1)", node.container),
        );
        stops.insert(node.ip.clone(), id);
    }

    let mut backups: Vec<(Option<String>, StepId)> = Vec::new();
    let mut last_init: Option<StepId> = None;
    if !upgrading.is_empty() {
        let all_stops: Vec<StepId> = stops.values().cloned().collect();
        for db in &diff.databases {
            let (region, deps) = match &db.role {
                DatabaseRole::CmHb { region } => {
                    let region_stops: Vec<StepId> = upgrading
                        .iter()
                        .filter(|n| &n.region == region)
                        .map(|n| stops[&n.ip].clone())
                        .collect();
                    let deps = if region_stops.is_empty() {
                        prunes.get(region.as_str()).cloned().into_iter().collect()
                    } else {
                        region_stops
                    };
                    (Some(region.clone()), deps)
                }
                DatabaseRole::Rm | DatabaseRole::Cm => (None, all_stops.clone()),
            };
            backups.push((
                region,
                b.add(
                    StepKind::Backup {
                        database: db.name.clone(),
                    },
                    deps,
                    format!(
                        "dump {} ({}) to the backup directory, checksummed",
                        db.name,
                        crate::diff::human_bytes(db.size_bytes)
                    ),
                ),
            ));
        }
    }
    let mut ready: BTreeMap<String, StepId> = BTreeMap::new();
    for node in &upgrading {
        let mut deps = vec![stops[&node.ip].clone()];
        deps.extend(loads.get(&node.ip).cloned());
        // The databases this node's new container writes to: rm, cm and its region's cm_hb.
        deps.extend(
            backups
                .iter()
                .filter(|(region, _)| region.as_ref().is_none_or(|r| r == &node.region))
                .map(|(_, id)| id.clone()),
        );
        let (Some(old), Some(declared)) = (
            &node.container_before,
            plan.nodes().find(|(_, n)| n.ip == node.ip).map(|(_, n)| n),
        ) else {
            continue; // never: a node to upgrade has an observed container and a plan entry
        };
        let container =
            crate::container::upgrade_spec(old, plan, declared, &StepId::start_new(&node.ip));
        let start = b.add(
            StepKind::StartNew {
                node: node.ip.clone(),
                container: Box::new(container),
            },
            deps,
            format!(
                "rename {} -> {}; docker run {} with the old container's own settings and IS_UPGRADE=true",
                node.container,
                node.kept_as.as_deref().unwrap_or("?"),
                node.image_after
            ),
        );
        let wait = b.add(
            StepKind::WaitReady {
                node: node.ip.clone(),
            },
            vec![start],
            format!(
                "poll the log for `OMS service start successfully` (timeout {})",
                plan.timeouts.readiness
            ),
        );
        ready.insert(node.ip.clone(), wait);
    }

    if diff.init_needed {
        for region in &plan.regions {
            let nodes: Vec<_> = diff
                .nodes
                .iter()
                .filter(|n| n.region == region.name)
                .collect();
            let shared = nodes.windows(2).all(|pair| {
                let mut a = pair[0].cm_nodes.clone();
                let mut c = pair[1].cm_nodes.clone();
                a.sort();
                c.sort();
                !a.is_empty() && a == c
            });
            let targets: Vec<(InitScope, &str)> = if shared {
                let run_on = nodes
                    .iter()
                    .find(|n| ready.contains_key(&n.ip))
                    .or(nodes.first())
                    .map(|n| n.ip.as_str())
                    .unwrap_or_default();
                vec![(InitScope::Region(region.name.clone()), run_on)]
            } else {
                nodes
                    .iter()
                    .map(|n| (InitScope::Node(n.ip.clone()), n.ip.as_str()))
                    .collect()
            };
            for (scope, run_on) in targets {
                let mut deps: Vec<StepId> = match &scope {
                    InitScope::Region(_) => nodes
                        .iter()
                        .filter_map(|n| ready.get(&n.ip).cloned())
                        .collect(),
                    InitScope::Node(ip) => ready.get(ip).cloned().into_iter().collect(),
                };
                deps.extend(last_init.clone());
                if deps.is_empty() {
                    // Every container is already new: init still waits for HA to be off.
                    deps.extend(before_stop.iter().cloned());
                }
                let changes = format!(
                    "bash /root/docker_init.sh in {run_on}'s new container: meta schema {} -> {}",
                    diff.from
                        .or_else(|| diff.databases.first().and_then(|d| d.schema_before))
                        .map_or_else(|| "?".into(), |v| v.to_string()),
                    diff.to
                );
                last_init = Some(b.add(
                    StepKind::Init {
                        scope,
                        run_on: run_on.to_owned(),
                    },
                    deps,
                    changes,
                ));
            }
        }
        let verify = b.add(
            StepKind::VerifyOnline,
            last_init.clone().into_iter().collect(),
            format!(
                "every server ONLINE in cm.host and healthy (timeout {})",
                plan.timeouts.online
            ),
        );
        last_init = Some(verify);
    }
    if let Some(ha) = ha.filter(|h| h.restore) {
        let mut deps: Vec<StepId> = last_init.into_iter().collect();
        if deps.is_empty() {
            deps.push(preflight);
        }
        b.add(
            StepKind::HaRestore,
            deps,
            format!("ha.config: enable false -> {} (refetchStoreIntervalMin above T2 - T1 unless perceiveStoreClientCheckpoint)", ha.enable_after),
        );
    }
    b.finish()
}

/// Plans the upgrade: diff, steps, facts.
pub fn plan(
    plan_file: &omsup_model::PlanFile,
    plan_file_bytes: &[u8],
    observed: &ObservedWorld,
) -> UpgradePlan {
    let diff = crate::diff::diff(plan_file, observed);
    let steps = if diff
        .findings
        .iter()
        .any(|f| f.severity == omsup_model::Severity::Error && f.code == "docker-unreachable")
    {
        Vec::new()
    } else {
        derive_steps(&diff, plan_file)
    };
    let facts = observed.facts();
    UpgradePlan {
        deployment: plan_file.deployment.name.clone(),
        plan_file_sha256: hex::encode(Sha256::digest(plan_file_bytes)),
        diff,
        steps,
        fingerprint: fingerprint(&facts),
        facts,
    }
}

/// A plan saved by `plan --out`, bound to what was observed. Version 2 (`start-new` carries
/// the new container's spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub plan_file: String,
    pub plan: UpgradePlan,
}

/// One observed fact that changed since a plan was saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactChange {
    pub name: String,
    pub saved: Option<String>,
    pub now: Option<String>,
}

impl SavedPlan {
    /// The version this omsup writes and reads.
    pub const FORMAT_VERSION: u32 = 2;

    pub fn new(plan_file: String, plan: UpgradePlan) -> Self {
        Self {
            format_version: Self::FORMAT_VERSION,
            plan_file,
            plan,
        }
    }

    /// Every fact whose value differs from `now` (added, removed or changed).
    pub fn changed_facts(&self, now: &BTreeMap<String, String>) -> Vec<FactChange> {
        let mut names: Vec<&String> = self.plan.facts.keys().chain(now.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|name| self.plan.facts.get(*name) != now.get(*name))
            .map(|name| FactChange {
                name: name.clone(),
                saved: self.plan.facts.get(name).cloned(),
                now: now.get(name).cloned(),
            })
            .collect()
    }
}
