//! Desired (the plan file) versus observed (the world), as data: what changes on each node,
//! in each database and in HA, and the preflight findings that decide whether apply may run.
//!
//! A node whose container already runs the target image needs nothing; a partially upgraded
//! deployment therefore plans only what is left. Versions are read off image tags and
//! cross-checked with `rm.oms_version`.

use std::collections::BTreeMap;

use omsup_model::plan::{Mounts, PackageLocation, PlanFile};
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

/// A node that must load the image but has no readable package at `[image] package`.
fn node_package_finding(
    plan: &PlanFile,
    node: &omsup_model::plan::Node,
    subject: &str,
    package: Option<&crate::observed::ObservedPackage>,
) -> Option<PreflightFinding> {
    let path = plan.image.package.display();
    let (code, message) = match package {
        Some(p) if p.exists && p.readable => return None,
        Some(p) if p.exists => (
            "package-unreadable",
            format!(
                "cannot read the image package `{path}` on this node ({})",
                node.docker
            ),
        ),
        _ => (
            "package-missing",
            format!(
                "the image package `{path}` is not on this node ({})",
                node.docker
            ),
        ),
    };
    Some(
        PreflightFinding::new(Severity::Error, code, subject, message).hint(
            "copy the package to this path on the node (`scp`), or set `[image] package_on = \"operator\"` to stream it from this machine",
        ),
    )
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

    let recorded_version = match &observed.meta_db {
        MetaDbReach::Reachable(db) => db.oms_version.filter(|version| *version < to),
        MetaDbReach::Unreachable { .. } => None,
    };
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
        if change.load_image && plan.image.package_on == PackageLocation::Nodes {
            findings.extend(node_package_finding(
                plan,
                node,
                &subject,
                docker.package.as_ref(),
            ));
        }
        let Some(container) = &docker.container else {
            findings.push(
                PreflightFinding::new(Severity::Error, "container-missing", &subject, format!("no container named `{}` on this node", node.container))
                    .hint("check `container` in the plan: it names the running OMS container (`docker ps`)"),
            );
            nodes.push(change);
            continue;
        };
        change.image_before = Some(container.image.clone());
        // An OMS started by image id has no tag to read; the image's labels or environment
        // (read by the observer) come first, then what the meta database records.
        change.version_before = container.version.or(recorded_version);
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
        if let Some(config) = &container.config {
            check_config_records(plan, region, &subject, container, config, &mut findings);
        }
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
        change.kept_as = Some(kept_name(&node.container, change.version_before));
        check_host_ip(&subject, &node.ip, container, &mut findings);
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

    check_region_images(&nodes, observed, &mut findings);
    check_undeclared_hosts(plan, observed, &mut findings);

    // The version we upgrade from: the oldest of the nodes still to upgrade.
    let declared = plan
        .deployment
        .current_version
        .as_deref()
        .and_then(|text| text.parse::<OmsVersion>().ok());
    for node in nodes
        .iter_mut()
        .filter(|n| n.state == NodeState::NeedsUpgrade && n.version_before.is_none())
    {
        node.version_before = declared;
        node.kept_as = Some(kept_name(&node.container, declared));
    }
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
                match from {
                    Some(from) => findings.push(
                        PreflightFinding::new(Severity::Warning, "oms-version-missing", "meta_db", "`oms_version` has no row: init will refuse until it is recorded")
                            .hint(format!("omsup applies the documented remedy (records {from} in `oms_version`) when init asks for it")),
                    ),
                    _ => findings.push(
                        PreflightFinding::new(Severity::Error, "old-version-unknown", "meta_db", format!("`{}.oms_version` has no usable row and the running version cannot be read off the containers: init will refuse, and the documented remedy needs the old version", plan.meta_db.rm))
                            .hint("name it in the plan: `[deployment] current_version = \"4.2.8-CE\"` (the version the containers run; at least 4.1.1)"),
                    ),
                }
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
    if plan.image.package_on == PackageLocation::Operator && nodes.iter().any(|n| n.load_image) {
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
            findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "backup-space",
                    "backup",
                    format!(
                        "`{}` has {} free; the backups need about {} ({BACKUP_SPACE_FACTOR} times the databases' data and index size)",
                        plan.backup.dir.display(),
                        human_bytes(dir.free_bytes),
                        human_bytes(needed)
                    ),
                )
                .hint("free space there, or point `[backup] dir` at a file system with room"),
            );
        }
    }
    if any_upgrade {
        check_clients(&observed.operator.clients, &plan.meta_db.rm, &mut findings);
        check_node_space(&nodes, observed, package.size_bytes, &mut findings);
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

/// How many times the package's size a node should have free to load the image (the layers
/// are unpacked next to the package's stream).
pub const IMAGE_SPACE_FACTOR: u64 = 2;

/// The dump and restore clients must work against this server before the first stop: a
/// backup or restore that fails inside the downtime window leaves OMS down.
fn check_clients(
    clients: &crate::observed::ObservedClients,
    rm: &str,
    findings: &mut Vec<PreflightFinding>,
) {
    use crate::observed::ClientCheck;
    for (check, role, code) in [
        (&clients.dump, "dump", "dump-client"),
        (&clients.restore, "restore", "restore-client"),
    ] {
        match check {
            ClientCheck::NotChecked | ClientCheck::Works { .. } => {}
            ClientCheck::Missing { error } => findings.push(
                PreflightFinding::new(Severity::Error, &format!("{code}-missing"), "backup", error.clone())
                    .hint(if role == "dump" {
                        "install a MySQL-compatible client (`mariadb-dump` or `mysqldump`; for OceanBase the one it ships), or name it in `[backup] dump_command`"
                    } else {
                        "install a MySQL-compatible client (`mariadb` or `mysql`): rollback restores the backups with it"
                    }),
            ),
            ClientCheck::Fails { client, error } => findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    &format!("{code}-fails"),
                    "backup",
                    if role == "dump" {
                        format!("the dump client `{client}` cannot dump `{rm}` from the meta database: {error}")
                    } else {
                        format!("the restore client `{client}` cannot talk to the meta database: {error}")
                    },
                )
                .hint("run it by hand against `[meta_db]`; a client much newer or older than the server may need another build (for OceanBase, the client it ships)"),
            ),
        }
    }
}

/// Each node that loads the image needs room for it on its daemon's data root.
fn check_node_space(
    nodes: &[NodeChange],
    observed: &ObservedWorld,
    package_bytes: u64,
    findings: &mut Vec<PreflightFinding>,
) {
    let needed = package_bytes.saturating_mul(IMAGE_SPACE_FACTOR);
    for node in nodes.iter().filter(|n| n.load_image) {
        let Some(DockerReach::Reachable(docker)) = observed
            .nodes
            .iter()
            .find(|n| n.ip == node.ip)
            .map(|n| &n.docker)
        else {
            continue;
        };
        let subject = format!("node[{}]", node.ip);
        match docker.data_root_free_bytes {
            Some(free) if free < needed => findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "node-space",
                    &subject,
                    format!(
                        "the Docker data root has {} free; loading the image needs about {}",
                        human_bytes(free),
                        human_bytes(needed)
                    ),
                )
                .hint("free space on the node (`docker system df`, `docker image prune`) before upgrading"),
            ),
            Some(_) => {}
            None => findings.push(
                PreflightFinding::new(
                    Severity::Warning,
                    "node-space-unknown",
                    &subject,
                    format!(
                        "cannot see the free space of the Docker data root (no running OMS container to ask); loading the image needs about {}",
                        human_bytes(needed)
                    ),
                )
                .hint("check it by hand on the node: `df -h $(docker info -f '{{.DockerRootDir}}')`"),
            ),
        }
    }
}

/// Where config.yaml of `container` lives on its host, for messages.
fn config_file(container: &ObservedContainer) -> String {
    let inside = FIXED_MOUNTS[0].1;
    match container.binds.iter().find(|b| b.container == inside) {
        Some(bind) => format!("config.yaml (`{}`)", bind.host),
        None => format!("config.yaml (`{inside}` in `{}`)", container.name),
    }
}

/// The node's config.yaml against the plan: the databases, the region and the meta database's
/// address must be the ones the plan names, or omsup would back up, prune and migrate other
/// databases than the ones this OMS uses.
fn check_config_records(
    plan: &PlanFile,
    region: &omsup_model::plan::Region,
    subject: &str,
    container: &ObservedContainer,
    config: &crate::observed::ObservedOmsConfig,
    findings: &mut Vec<PreflightFinding>,
) {
    let port = plan.meta_db.port.to_string();
    let expected: [(&str, Option<String>, &str, &str); 6] = [
        (
            "drc_rm_db",
            config.drc_rm_db.clone(),
            "[meta_db] rm",
            &plan.meta_db.rm,
        ),
        (
            "drc_cm_db",
            config.drc_cm_db.clone(),
            "[meta_db] cm",
            &plan.meta_db.cm,
        ),
        (
            "drc_cm_heartbeat_db",
            config.drc_cm_heartbeat_db.clone(),
            "the region's cm_hb",
            &region.cm_hb,
        ),
        (
            "cm_region",
            config.cm_region.clone(),
            "the region's name",
            &region.name,
        ),
        (
            "oms_meta_host",
            config.oms_meta_host.clone(),
            "[meta_db] host",
            &plan.meta_db.host,
        ),
        (
            "oms_meta_port",
            config.oms_meta_port.map(|p| p.to_string()),
            "[meta_db] port",
            &port,
        ),
    ];
    for (key, seen, plan_key, wanted) in expected {
        let Some(seen) = seen else { continue };
        if seen != wanted {
            findings.push(
                PreflightFinding::new(
                    Severity::Error,
                    "config-mismatch",
                    subject,
                    format!(
                        "{} sets `{key}: {seen}`, the plan's {plan_key} is `{wanted}`",
                        config_file(container)
                    ),
                )
                .hint(format!(
                    "the plan must name what this OMS uses: set {plan_key} to `{seen}`, or fix `{key}` in the file if the file is wrong"
                )),
            );
        }
    }
}

/// The old container's `OMS_HOST_IP` must be its node's own address: the new container gets
/// the node's `ip`, so a different value is a plan naming the wrong node (or a deployment that
/// was already broken).
fn check_host_ip(
    subject: &str,
    ip: &str,
    container: &ObservedContainer,
    findings: &mut Vec<PreflightFinding>,
) {
    match container.env.get("OMS_HOST_IP") {
        Some(seen) if seen == ip => {}
        Some(seen) => findings.push(
            PreflightFinding::new(
                Severity::Error,
                "host-ip-mismatch",
                subject,
                format!("`{}` runs with `OMS_HOST_IP={seen}`, but the plan names this node `{ip}`", container.name),
            )
            .hint("each node's `ip` in the plan is the `OMS_HOST_IP` its container runs with: fix the node's `ip` or `docker` in the plan"),
        ),
        None => findings.push(PreflightFinding::new(
            Severity::Warning,
            "host-ip-missing",
            subject,
            format!("`{}` runs without `OMS_HOST_IP`; the new container gets `OMS_HOST_IP={ip}`", container.name),
        )),
    }
}

/// The nodes of one region still to upgrade must run one image: two images in a region means
/// two versions, or an image nobody planned for.
fn check_region_images(
    nodes: &[NodeChange],
    observed: &ObservedWorld,
    findings: &mut Vec<PreflightFinding>,
) {
    let image_id = |ip: &str| {
        observed
            .nodes
            .iter()
            .find(|n| n.ip == ip)
            .and_then(|n| match &n.docker {
                DockerReach::Reachable(docker) => {
                    docker.container.as_ref().map(|c| c.image_id.clone())
                }
                DockerReach::Unreachable { .. } => None,
            })
    };
    let mut by_region: BTreeMap<&str, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
    for node in nodes.iter().filter(|n| n.state == NodeState::NeedsUpgrade) {
        if let Some(id) = image_id(&node.ip) {
            by_region
                .entry(&node.region)
                .or_default()
                .entry(id)
                .or_default()
                .push(&node.ip);
        }
    }
    for (region, images) in by_region.into_iter().filter(|(_, images)| images.len() > 1) {
        let listed: Vec<String> = images
            .iter()
            .map(|(id, ips)| format!("{} on {}", short_id(id), ips.join(", ")))
            .collect();
        findings.push(
            PreflightFinding::new(
                Severity::Error,
                "region-image-disagreement",
                format!("region[{region}]"),
                format!("the nodes of region `{region}` run different images: {}", listed.join("; ")),
            )
            .hint("a region's nodes run one image; find out which node is off before upgrading (`docker inspect` on each)"),
        );
    }
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Every host the deployment's own records name (cm `host`, any node's `cm_nodes`) must be a
/// node of the plan: a forgotten node keeps running and writing during the backup and the
/// migration.
fn check_undeclared_hosts(
    plan: &PlanFile,
    observed: &ObservedWorld,
    findings: &mut Vec<PreflightFinding>,
) {
    let declared: Vec<&str> = plan.nodes().map(|(_, n)| n.ip.as_str()).collect();
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let MetaDbReach::Reachable(db) = &observed.meta_db {
        for (ip, status) in &db.hosts {
            sources.entry(ip.clone()).or_default().push(format!(
                "registered in `{}.host` ({status})",
                plan.meta_db.cm
            ));
        }
    }
    for node in &observed.nodes {
        let DockerReach::Reachable(docker) = &node.docker else {
            continue;
        };
        let Some(config) = docker.container.as_ref().and_then(|c| c.config.as_ref()) else {
            continue;
        };
        for ip in &config.cm_nodes {
            sources.entry(ip.clone()).or_default().push(format!(
                "listed in `cm_nodes` of node {}'s config.yaml",
                node.ip
            ));
        }
    }
    for (ip, sources) in sources
        .into_iter()
        .filter(|(ip, _)| !declared.contains(&ip.as_str()))
    {
        findings.push(
            PreflightFinding::new(
                Severity::Error,
                "undeclared-host",
                format!("host[{ip}]"),
                format!(
                    "host {ip} is {}, but is not a node of the plan: its OMS would keep writing during the backup and the migration",
                    sources.join(" and ")
                ),
            )
            .hint(format!(
                "add it to its region in the plan (`[[region.node]] ip = \"{ip}\"`, or `omsup init` with a `--node` for it); if the host is gone for good, delete its row from `{}.host` and its `cm_nodes` entries first",
                plan.meta_db.cm
            )),
        );
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
