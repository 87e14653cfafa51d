//! Desired (the plan file) versus observed (the world), as data: what changes on each node,
//! in each database and in HA, and the preflight findings that decide whether apply may run.
//!
//! A node whose container already runs the target image needs nothing; a partially upgraded
//! deployment therefore plans only what is left. Versions are read off image tags and
//! cross-checked with `rm.oms_version`.

use std::collections::BTreeMap;

use omsup_model::plan::{Mounts, PlanFile};
use omsup_model::upgrade::{UpgradeVerdict, rules};
use omsup_model::{OmsVersion, Severity};
use serde::{Deserialize, Serialize};

use crate::container::ContainerSpec;
use crate::observed::{DockerReach, MetaDbReach, ObservedContainer, ObservedWorld};

/// The fixed paths inside the OMS container, and the plan's name for each.
pub const FIXED_MOUNTS: [(&str, &str); 4] = [
    ("config", "/home/admin/conf/config.yaml"),
    ("logs", "/home/admin/logs"),
    ("store", "/home/ds/store"),
    ("run", "/home/ds/run"),
];

/// How many times the database size the backup directory should have free.
pub const BACKUP_SPACE_FACTOR: u64 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightFinding {
    pub severity: Severity,
    /// Stable, e.g. `mount-mismatch`.
    pub code: String,
    /// What it is about: `node[10.0.0.2]`, `db[rm_428]`, `meta_db`, `image`.
    pub subject: String,
    pub message: String,
    pub hint: Option<String>,
}

impl PreflightFinding {
    fn new(
        severity: Severity,
        code: &str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code: code.into(),
            subject: subject.into(),
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What happens to one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeState {
    /// Runs an older version: stop, keep, start new, init.
    NeedsUpgrade,
    /// Already runs the target image.
    Upgraded,
    /// Cannot be planned (unreachable daemon, no container): see the findings.
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChange {
    pub ip: String,
    pub region: String,
    pub container: String,
    pub state: NodeState,
    pub image_before: Option<String>,
    pub image_after: String,
    pub version_before: Option<OmsVersion>,
    /// The name the old container is kept under, for rollback.
    pub kept_as: Option<String>,
    /// Whether the target image must be loaded on this node's daemon.
    pub load_image: bool,
    /// The old container's own settings (without what its image brings, no secret values):
    /// what the new container's spec (`start-new`'s) is computed from, and diffed against.
    pub container_before: Option<ContainerSpec>,
    /// `cm_nodes` from the node's config.yaml.
    pub cm_nodes: Vec<String>,
    /// Where `/oms/health` answers: config.yaml's `nginx_server_port` (8089 by default).
    #[serde(default = "default_health_port")]
    pub health_port: u16,
}

/// OMS's nginx port unless config.yaml sets `nginx_server_port`.
pub const DEFAULT_HEALTH_PORT: u16 = 8089;

fn default_health_port() -> u16 {
    DEFAULT_HEALTH_PORT
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseRole {
    Rm,
    Cm,
    CmHb { region: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseChange {
    pub name: String,
    pub role: DatabaseRole,
    pub size_bytes: u64,
    pub heartbeat_rows: Option<u64>,
    pub backup: bool,
    pub schema_before: Option<OmsVersion>,
    pub schema_after: OmsVersion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaChange {
    pub enable_before: bool,
    pub enable_after: bool,
    /// Whether HA must be turned off for the upgrade (it is on now).
    pub turn_off: bool,
    /// Whether `ha.config` must be written after the upgrade.
    pub restore: bool,
}

/// The whole diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub from: Option<OmsVersion>,
    pub to: OmsVersion,
    pub nodes: Vec<NodeChange>,
    pub databases: Vec<DatabaseChange>,
    pub ha: Option<HaChange>,
    /// The meta schema still has to be migrated (init), even if every container is new.
    pub init_needed: bool,
    pub findings: Vec<PreflightFinding>,
}

impl Diff {
    pub fn nodes_to_upgrade(&self) -> impl Iterator<Item = &NodeChange> {
        self.nodes
            .iter()
            .filter(|n| n.state == NodeState::NeedsUpgrade)
    }

    pub fn has_changes(&self) -> bool {
        self.nodes_to_upgrade().next().is_some()
            || self.init_needed
            || self.ha.as_ref().is_some_and(|h| h.restore)
    }
}

/// What the plan shows instead of a secret-looking value (see [`is_secret_key`]).
pub const REDACTED: &str = "<redacted>";

/// Whether a variable's name looks like it holds a secret (`*PASSWORD*`, `*PASSWD*`,
/// `*SECRET*`, `*TOKEN*`, `*CREDENTIAL*`, `*_KEY`). The plan is shown, saved and journaled, so
/// such a value never enters it: apply copies it from the old container when it creates the
/// new one ([`crate::container::EnvValue::FromOldContainer`]).
pub fn is_secret_key(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL"]
        .iter()
        .any(|word| upper.contains(word))
        || upper.ends_with("_KEY")
        || upper == "KEY"
}

/// The name an old container is kept under: `<name>-omsup-<version>`.
pub fn kept_name(container: &str, version: Option<OmsVersion>) -> String {
    match version {
        Some(version) => format!("{container}-omsup-{}", version.numeric()),
        None => format!("{container}-omsup-old"),
    }
}

/// Diffs `plan` against `observed` (nodes in plan-file order).
pub fn diff(plan: &PlanFile, observed: &ObservedWorld) -> Diff {
    let mut findings = Vec::new();
    let to = plan
        .deployment
        .target_version
        .parse::<OmsVersion>()
        .unwrap_or(OmsVersion::new(0, 0, 0));
    let observed_nodes: BTreeMap<&str, &crate::observed::ObservedNode> =
        observed.nodes.iter().map(|n| (n.ip.as_str(), n)).collect();

    let mut nodes = Vec::new();
    for (region, node) in plan.nodes() {
        let subject = format!("node[{}]", node.ip);
        let mut change = NodeChange {
            ip: node.ip.clone(),
            region: region.name.clone(),
            container: node.container.clone(),
            state: NodeState::Blocked,
            image_before: None,
            image_after: plan.image.tag.clone(),
            version_before: None,
            kept_as: None,
            load_image: false,
            container_before: None,
            cm_nodes: Vec::new(),
            health_port: DEFAULT_HEALTH_PORT,
        };
        let docker = match observed_nodes.get(node.ip.as_str()).map(|n| &n.docker) {
            Some(DockerReach::Reachable(docker)) => docker,
            Some(DockerReach::Unreachable { error }) => {
                findings.push(
                    PreflightFinding::new(Severity::Error, "docker-unreachable", &subject, format!("cannot reach Docker at `{}`: {error}", node.docker))
                        .hint("check the node's `docker` endpoint, that the daemon runs, and (for ssh://) that `ssh` works non-interactively"),
                );
                nodes.push(change);
                continue;
            }
            None => {
                findings.push(PreflightFinding::new(
                    Severity::Error,
                    "not-observed",
                    &subject,
                    "the node was not observed",
                ));
                nodes.push(change);
                continue;
            }
        };
        change.load_image = docker.target_image_id.is_none();
        let Some(container) = &docker.container else {
            findings.push(
                PreflightFinding::new(Severity::Error, "container-missing", &subject, format!("no container named `{}` on this node", node.container))
                    .hint("check `container` in the plan: it names the running OMS container (`docker ps`)"),
            );
            nodes.push(change);
            continue;
        };
        change.image_before = Some(container.image.clone());
        change.version_before = container.version;
        change.container_before = Some(crate::container::own_spec(container));
        change.cm_nodes = container
            .config
            .as_ref()
            .map(|c| c.cm_nodes.clone())
            .unwrap_or_default();
        change.health_port = container
            .config
            .as_ref()
            .and_then(|c| c.nginx_server_port)
            .unwrap_or(DEFAULT_HEALTH_PORT);
        let runs_target = docker
            .target_image_id
            .as_deref()
            .is_some_and(|id| id == container.image_id)
            || container.image == plan.image.tag;
        if runs_target {
            change.state = NodeState::Upgraded;
            change.load_image = false;
            nodes.push(change);
            continue;
        }
        change.state = NodeState::NeedsUpgrade;
        change.kept_as = Some(kept_name(&node.container, container.version));
        check_mounts(
            &subject,
            container,
            node.mounts.as_ref().or(plan.mounts.as_ref()),
            &mut findings,
        );
        if !container.running {
            findings.push(PreflightFinding::new(
                Severity::Warning,
                "container-stopped",
                &subject,
                format!(
                    "`{}` is not running ({}); it will be upgraded as it is",
                    node.container, container.status
                ),
            ));
        }
        if container.image_defaults.is_none() {
            findings.push(
                PreflightFinding::new(Severity::Error, "image-defaults-unknown", &subject, format!("cannot inspect image `{}` of `{}`: the environment and labels the operator set cannot be told from the image's", container.image_id, node.container))
                    .hint("check that the old image is still on the node (`docker image inspect`); without it the new container would copy the old image's defaults"),
            );
        }
        if container.config.is_none() {
            findings.push(PreflightFinding::new(
                Severity::Warning,
                "config-unreadable",
                &subject,
                "cannot read /home/admin/conf/config.yaml from the container: init runs once per node",
            ));
        }
        if docker
            .kept_containers
            .iter()
            .any(|k| Some(&k.name) == change.kept_as.as_ref())
        {
            findings.push(
                PreflightFinding::new(Severity::Error, "kept-name-taken", &subject, format!("a container named `{}` already exists", change.kept_as.as_deref().unwrap_or_default()))
                    .hint("an earlier upgrade kept it for rollback: `omsup rollback`, or remove it by hand once it is no longer needed"),
            );
        }
        nodes.push(change);
    }

    // The version we upgrade from: the oldest of the nodes still to upgrade.
    let from = nodes
        .iter()
        .filter(|n| n.state == NodeState::NeedsUpgrade)
        .filter_map(|n| n.version_before)
        .min();
    if let Some(from) = from {
        let others: Vec<&NodeChange> = nodes
            .iter()
            .filter(|n| n.state == NodeState::NeedsUpgrade && n.version_before != Some(from))
            .collect();
        for node in others {
            findings.push(PreflightFinding::new(
                Severity::Error,
                "version-disagreement",
                format!("node[{}]", node.ip),
                format!(
                    "runs {} while other nodes run {from}",
                    node.version_before
                        .map_or_else(|| "an unknown version".to_owned(), |v| v.to_string())
                ),
            ));
        }
        match rules().check(from, to) {
            UpgradeVerdict::Allowed { .. } => {}
            UpgradeVerdict::Refused {
                allowed_from,
                reason,
                source,
            } => findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "upgrade-path",
                    "deployment",
                    format!("cannot upgrade from {from} to {to}: {reason}"),
                )
                .hint(if allowed_from.is_empty() {
                    format!("source: {source}")
                } else {
                    format!(
                        "allowed sources: {} (source: {source})",
                        allowed_from.join(", ")
                    )
                }),
            ),
            UpgradeVerdict::Undocumented { reason } => findings.push(PreflightFinding::new(
                Severity::Warning,
                "undocumented-upgrade-path",
                "deployment",
                reason,
            )),
        }
    }

    let any_upgrade = nodes.iter().any(|n| n.state == NodeState::NeedsUpgrade);
    let mut databases = Vec::new();
    let mut ha = None;
    let mut init_needed = any_upgrade;
    match &observed.meta_db {
        MetaDbReach::Unreachable { error } => findings.push(
            PreflightFinding::new(Severity::Error, "meta-db-unreachable", "meta_db", format!("cannot reach the meta database at {}:{}: {error}", plan.meta_db.host, plan.meta_db.port))
                .hint("check `[meta_db]` host, port and user, the password source, and that this machine may connect"),
        ),
        MetaDbReach::Reachable(db) => {
            let schema_before = db.oms_version;
            if let (Some(recorded), Some(from)) = (schema_before, from)
                && recorded != from
                && recorded != to
            {
                findings.push(
                    PreflightFinding::new(Severity::Error, "version-disagreement", "meta_db", format!("`oms_version` records {recorded} but the containers run {from}"))
                        .hint("find out which is right before upgrading: the schema and the containers must agree"),
                );
            }
            if !any_upgrade {
                init_needed = schema_before.is_some_and(|v| v != to);
            }
            if schema_before.is_none() && any_upgrade {
                findings.push(
                    PreflightFinding::new(Severity::Warning, "oms-version-missing", "meta_db", "`oms_version` has no row: init will refuse until it is recorded")
                        .hint("omsup applies the documented remedy (records the old version in `oms_version`) when init asks for it"),
                );
            }
            let mut roles = vec![(plan.meta_db.rm.clone(), DatabaseRole::Rm), (plan.meta_db.cm.clone(), DatabaseRole::Cm)];
            roles.extend(plan.regions.iter().map(|r| (r.cm_hb.clone(), DatabaseRole::CmHb { region: r.name.clone() })));
            for (name, role) in roles {
                let seen = db.databases.get(&name);
                if !seen.is_some_and(|d| d.exists) {
                    findings.push(PreflightFinding::new(Severity::Error, "database-missing", format!("db[{name}]"), format!("database `{name}` does not exist")));
                }
                databases.push(DatabaseChange {
                    name,
                    role,
                    size_bytes: seen.map_or(0, |d| d.size_bytes),
                    heartbeat_rows: seen.and_then(|d| d.heartbeat_rows),
                    backup: any_upgrade,
                    schema_before,
                    schema_after: to,
                });
            }
            if let Some(value) = &db.ha_config {
                let enable_before = crate::outputs::HaConfig::from_value(value).is_some_and(|config| config.enable());
                let enable_after = match plan.ha.after {
                    omsup_model::plan::HaAfter::Restore => enable_before,
                    omsup_model::plan::HaAfter::On => true,
                    omsup_model::plan::HaAfter::Off => false,
                };
                let upgrading = any_upgrade || init_needed;
                let turn_off = upgrading && enable_before;
                ha = Some(HaChange { enable_before, enable_after, turn_off, restore: upgrading && (enable_before || enable_after) });
            } else {
                findings.push(PreflightFinding::new(Severity::Warning, "ha-config-missing", "meta_db", "`ha.config` is missing from `oms_normal_config`: HA is left alone"));
            }
        }
    }

    let package = &observed.operator.package;
    if nodes.iter().any(|n| n.load_image) {
        if !package.exists {
            findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "package-missing",
                    "image",
                    format!(
                        "the image package `{}` does not exist",
                        plan.image.package.display()
                    ),
                )
                .hint("copy the OMS package to this machine, or fix `[image] package`"),
            );
        } else if !package.readable {
            findings.push(PreflightFinding::new(
                Severity::Error,
                "package-unreadable",
                "image",
                format!("cannot read `{}`", plan.image.package.display()),
            ));
        }
    }
    if any_upgrade {
        let dir = &observed.operator.backup_dir;
        let needed = databases.iter().map(|d| d.size_bytes).sum::<u64>() * BACKUP_SPACE_FACTOR;
        if !dir.exists {
            findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "backup-dir-missing",
                    "backup",
                    format!(
                        "the backup directory `{}` does not exist",
                        plan.backup.dir.display()
                    ),
                )
                .hint(format!(
                    "create it: `mkdir -p {}`",
                    plan.backup.dir.display()
                )),
            );
        } else if !dir.writable {
            findings.push(PreflightFinding::new(
                Severity::Error,
                "backup-dir-unwritable",
                "backup",
                format!("cannot write to `{}`", plan.backup.dir.display()),
            ));
        } else if dir.free_bytes < needed {
            findings.push(PreflightFinding::new(
                Severity::Error,
                "backup-space",
                "backup",
                format!(
                    "`{}` has {} free; the backups need about {}",
                    plan.backup.dir.display(),
                    human_bytes(dir.free_bytes),
                    human_bytes(needed)
                ),
            ));
        }
    }
    Diff {
        from,
        to,
        nodes,
        databases,
        ha,
        init_needed,
        findings,
    }
}

fn check_mounts(
    subject: &str,
    container: &ObservedContainer,
    declared: Option<&Mounts>,
    findings: &mut Vec<PreflightFinding>,
) {
    for (key, inside) in FIXED_MOUNTS {
        let observed = container.binds.iter().find(|b| b.container == inside);
        let Some(observed) = observed else {
            findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "mount-missing",
                    subject,
                    format!(
                        "`{}` does not mount {inside}: the new container would lose it",
                        container.name
                    ),
                )
                .hint("mount it as documented before upgrading; the host paths must never change"),
            );
            continue;
        };
        let Some(declared) = declared else { continue };
        let expected = match key {
            "config" => &declared.config,
            "logs" => &declared.logs,
            "store" => &declared.store,
            _ => &declared.run,
        };
        if std::path::Path::new(&observed.host) != expected.as_path() {
            findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "mount-mismatch",
                    subject,
                    format!("{inside} is mounted from `{}`, the plan says `{}`", observed.host, expected.display()),
                )
                .hint("the host paths must be the same across upgrades: find out which is right, then fix the container or `mounts` in the plan"),
            );
        }
    }
}

/// `1.5 GiB`
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
