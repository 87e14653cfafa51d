//! What the observers saw: the real state of a deployment, as plain data.
//!
//! `omsup-exec` fills these in (Docker through bollard, the meta database through sqlx, the
//! operator's own machine); the engine diffs them against the plan file. Nothing here holds a
//! secret: config.yaml is reduced to the keys the engine needs, never its password.
//!
//! [`ObservedWorld::facts`] flattens everything a plan depends on into named facts; a saved plan
//! keeps them, and `apply` refuses a saved plan whose facts changed, naming each one.

use std::collections::BTreeMap;

use omsup_model::OmsVersion;
use serde::{Deserialize, Serialize};

pub use crate::container::{ContainerSettings, ImageDefaults};

/// Everything observed about one deployment at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedWorld {
    /// One entry per node of the plan file, in file order.
    pub nodes: Vec<ObservedNode>,
    pub meta_db: MetaDbReach,
    pub operator: ObservedOperatorSide,
}

/// One node, as seen through its Docker daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedNode {
    /// The node's IP as the plan names it (the key everything else uses).
    pub ip: String,
    pub docker: DockerReach,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DockerReach {
    Reachable(Box<ObservedDocker>),
    /// The daemon did not answer; `error` says why (already rendered, no secrets).
    Unreachable {
        error: String,
    },
}

/// A reachable node's Docker daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedDocker {
    /// The API version negotiated with the daemon (e.g. `1.41`).
    pub api_version: String,
    /// The container with the plan's name, if any (old before the upgrade, new after it).
    pub container: Option<ObservedContainer>,
    /// Containers omsup kept for rollback: the old container renamed to
    /// `<container>-omsup-<old version>` (Docker cannot relabel an existing container, so the
    /// name is the mark; the journal records the id).
    pub kept_containers: Vec<ObservedContainer>,
    /// The target image tag, when it is already loaded on this daemon.
    pub target_image_id: Option<String>,
    /// The image package on this node, when `[image] package_on = "nodes"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<ObservedPackage>,
    /// Free bytes where the daemon keeps images (`df` of the running OMS container's root,
    /// which lives on the daemon's data root); `None` when it cannot be seen (no running
    /// container, no `df`).
    #[serde(default)]
    pub data_root_free_bytes: Option<u64>,
}

/// One container, from `docker inspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    /// The image as the container was created with it (a tag like `oms:feature_4.2.8-ce`).
    pub image: String,
    pub image_id: String,
    /// The OMS version read off the image tag, when the tag names one.
    pub version: Option<OmsVersion>,
    pub running: bool,
    /// Docker's state word: `running`, `exited`, `created`, ...
    pub status: String,
    /// Host mounts (`HostConfig.Binds` and `Mounts` of type bind).
    pub binds: Vec<Bind>,
    /// Environment variables, `KEY` → `value`.
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The node's config.yaml, read from the container (Docker's archive API).
    pub config: Option<ObservedOmsConfig>,
    /// The rest of its create settings (restart policy, log options, ulimits, limits, ...).
    #[serde(default)]
    pub settings: ContainerSettings,
    /// What its image brings (`Env`, `Labels`), to tell the operator's settings from the
    /// image's; `None` when the image could not be inspected.
    #[serde(default)]
    pub image_defaults: Option<ImageDefaults>,
}

/// A bind mount: a host path at a container path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bind {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

/// The keys of config.yaml the engine needs. Never the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedOmsConfig {
    pub cm_nodes: Vec<String>,
    pub cm_region: Option<String>,
    pub drc_rm_db: Option<String>,
    pub drc_cm_db: Option<String>,
    pub drc_cm_heartbeat_db: Option<String>,
    /// Where this node's OMS finds the meta database (`oms_meta_host`, `oms_meta_port`) and as
    /// whom (`oms_meta_user`); never the password.
    #[serde(default)]
    pub oms_meta_host: Option<String>,
    #[serde(default)]
    pub oms_meta_port: Option<u16>,
    #[serde(default)]
    pub oms_meta_user: Option<String>,
    pub nginx_server_port: Option<u16>,
    /// sha256 of the whole file, so a changed file is a changed fact without keeping its text.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MetaDbReach {
    Reachable(Box<ObservedMetaDb>),
    Unreachable { error: String },
}

/// The meta database as seen through sqlx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedMetaDb {
    /// `rm.oms_version`; `None` when the table or its row is missing.
    pub oms_version: Option<OmsVersion>,
    /// `ha.config`'s value (a JSON object), when the row exists.
    pub ha_config: Option<serde_json::Value>,
    /// `cm.host`: each host's status, by IP.
    pub hosts: BTreeMap<String, String>,
    /// Every database the plan names (rm, cm, each cm_hb) and what was seen of it.
    pub databases: BTreeMap<String, ObservedDatabase>,
    /// Whether the server has `information_schema.COLUMN_STATISTICS` (MySQL 8; not MariaDB or
    /// OceanBase), which a MySQL 8 `mysqldump` asks for unless told not to.
    #[serde(default)]
    pub column_statistics: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedDatabase {
    pub exists: bool,
    /// Data + index bytes (information_schema), for backup estimates.
    pub size_bytes: u64,
    /// Rows in `heatbeat_sequence`, for cm_hb databases.
    pub heartbeat_rows: Option<u64>,
}

/// The machine running omsup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedOperatorSide {
    pub package: ObservedPackage,
    pub backup_dir: ObservedBackupDir,
    /// The dump and restore clients, each tried against the meta database.
    #[serde(default)]
    pub clients: ObservedClients,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedClients {
    pub dump: ClientCheck,
    pub restore: ClientCheck,
}

/// One client, tried: the dump client dumps the rm schema (no rows), the restore client runs
/// `SELECT 1`, both through the option-file pipe a backup uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClientCheck {
    /// Not tried (the meta database could not be reached).
    #[default]
    NotChecked,
    /// No such program; `error` says what was looked for.
    Missing { error: String },
    /// It runs but could not do its work against this server.
    Fails { client: String, error: String },
    /// It works, with these options added for this server (`--column-statistics=0`).
    Works {
        client: String,
        version: Option<String>,
        adaptations: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedPackage {
    pub exists: bool,
    pub readable: bool,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedBackupDir {
    pub exists: bool,
    pub writable: bool,
    pub free_bytes: u64,
}

impl ObservedWorld {
    /// Every observed fact a plan depends on, by a stable name (`node[10.0.0.2].container.id`,
    /// `meta_db.oms_version`, ...). Volatile readings (sizes, free space, row counts) are left
    /// out: they change all the time without changing what the plan does.
    pub fn facts(&self) -> BTreeMap<String, String> {
        let mut facts = BTreeMap::new();
        for node in &self.nodes {
            let prefix = format!("node[{}]", node.ip);
            match &node.docker {
                DockerReach::Unreachable { .. } => {
                    facts.insert(format!("{prefix}.docker"), "unreachable".into());
                }
                DockerReach::Reachable(docker) => {
                    facts.insert(format!("{prefix}.docker"), "reachable".into());
                    facts.insert(
                        format!("{prefix}.target_image"),
                        docker
                            .target_image_id
                            .clone()
                            .unwrap_or_else(|| "absent".into()),
                    );
                    if let Some(package) = &docker.package {
                        facts.insert(
                            format!("{prefix}.package.exists"),
                            package.exists.to_string(),
                        );
                        facts.insert(
                            format!("{prefix}.package.size"),
                            package.size_bytes.to_string(),
                        );
                    }
                    match &docker.container {
                        None => {
                            facts.insert(format!("{prefix}.container"), "absent".into());
                        }
                        Some(container) => {
                            container_facts(&mut facts, &prefix, "container", container)
                        }
                    }
                    for kept in &docker.kept_containers {
                        container_facts(&mut facts, &prefix, &format!("kept[{}]", kept.name), kept);
                    }
                }
            }
        }
        match &self.meta_db {
            MetaDbReach::Unreachable { .. } => {
                facts.insert("meta_db".into(), "unreachable".into());
            }
            MetaDbReach::Reachable(db) => {
                facts.insert("meta_db".into(), "reachable".into());
                facts.insert(
                    "meta_db.oms_version".into(),
                    db.oms_version
                        .map_or_else(|| "absent".into(), |v| v.to_string()),
                );
                facts.insert(
                    "meta_db.ha_config".into(),
                    db.ha_config
                        .as_ref()
                        .map_or_else(|| "absent".into(), |v| v.to_string()),
                );
                for (ip, status) in &db.hosts {
                    facts.insert(format!("meta_db.host[{ip}].status"), status.clone());
                }
                for (name, database) in &db.databases {
                    facts.insert(format!("db[{name}].exists"), database.exists.to_string());
                }
            }
        }
        facts.insert(
            "operator.package.exists".into(),
            self.operator.package.exists.to_string(),
        );
        facts.insert(
            "operator.package.size".into(),
            self.operator.package.size_bytes.to_string(),
        );
        facts.insert(
            "operator.backup_dir.exists".into(),
            self.operator.backup_dir.exists.to_string(),
        );
        facts
    }
}

fn container_facts(
    facts: &mut BTreeMap<String, String>,
    prefix: &str,
    what: &str,
    container: &ObservedContainer,
) {
    let key = |field: &str| format!("{prefix}.{what}.{field}");
    facts.insert(key("id"), container.id.clone());
    facts.insert(key("image"), container.image_id.clone());
    facts.insert(key("running"), container.running.to_string());
    let binds: Vec<String> = container
        .binds
        .iter()
        .map(|b| {
            format!(
                "{}:{}{}",
                b.host,
                b.container,
                if b.read_only { ":ro" } else { "" }
            )
        })
        .collect();
    facts.insert(key("binds"), binds.join(","));
    if let Some(config) = &container.config {
        facts.insert(key("config_yaml"), config.sha256.clone());
    }
    if what != "container" {
        return;
    }
    // The operator's own settings: the new container is created from them, so a changed one
    // is a changed fact (secret-looking values redacted).
    facts.insert(
        key("image_defaults"),
        if container.image_defaults.is_some() {
            "read"
        } else {
            "unknown"
        }
        .into(),
    );
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in crate::container::own_spec(container).lines() {
        settings.entry(line.key).or_default().push(line.value);
    }
    for (name, values) in settings {
        facts.insert(key(&format!("own[{name}]")), values.join(","));
    }
}
