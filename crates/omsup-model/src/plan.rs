//! The plan file: what the operator declares about one OMS deployment (serde + JSON Schema).
//!
//! These types mirror the TOML file one to one; defaults that the documentation prescribes are
//! applied by accessor methods (see [`ContainerOptions::resolve`]) so that a saved plan or a
//! rendered schema shows what the operator wrote, not what we filled in. Unknown keys are not
//! rejected by serde here: `lint` reports every one of them (with the nearest valid key) from
//! the JSON Schema, which does declare `additionalProperties: false`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// A whole plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "omsup plan file")]
pub struct PlanFile {
    /// What is upgraded, and to which version.
    pub deployment: Deployment,
    /// The image package loaded on each node and the tag it must yield.
    pub image: Image,
    /// The OMS meta database (rm and cm live here; each region's cm_hb too).
    pub meta_db: MetaDb,
    /// Where the meta database backups go (on the machine running omsup).
    pub backup: Backup,
    /// How long omsup waits for things before giving up.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What happens to OMS high availability (`ha.config`) around the upgrade.
    #[serde(default)]
    pub ha: HaPolicy,
    /// Options of every new OMS container; each node may override them.
    #[serde(default)]
    pub container: ContainerOptions,
    /// How omsup trusts a node's `/oms/health` answer over HTTPS.
    #[serde(default, skip_serializing_if = "HealthCheck::is_default")]
    pub health: HealthCheck,
    /// Host paths the old containers must mount (checked against what is observed); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Mounts>,
    /// Where omsup keeps its state in the meta database server (the deployment lock).
    #[serde(default, skip_serializing_if = "StateSettings::is_default")]
    pub state: StateSettings,
    /// Where `omsup rehearse` runs its throwaway container of the target image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<Rehearsal>,
    /// The regions of the deployment, each with its heartbeat database and nodes.
    #[serde(rename = "region")]
    #[schemars(length(min = 1))]
    pub regions: Vec<Region>,
}

/// `[deployment]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Deployment {
    /// A name for this deployment: it names the journal, the lock and the backups.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"), length(max = 64))]
    pub name: String,
    /// The OMS version to upgrade to, e.g. `4.2.9-CE`.
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+(-[Cc][Ee])?$"))]
    pub target_version: String,
    /// What the operator believes runs now, e.g. `4.2.8-CE`. Lets `lint` check the upgrade path
    /// offline; `plan` always observes the real version and refuses a disagreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+(-[Cc][Ee])?$"))]
    pub current_version: Option<String>,
}

/// `[state]`: where omsup keeps its state. The deployment lock always lives in the meta database
/// server (every operator reaches that server), so that one run per deployment holds across
/// machines; the journal lives there too with `backend = "meta_db"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StateSettings {
    /// Where the journal (the runs and their steps) lives: `local` (default), a SQLite file in
    /// the state directory of the machine running omsup; or `meta_db`, omsup's database in the
    /// meta database server, so that `status`, `history`, `resume` and `rollback` work from any
    /// operator's machine. `omsup state migrate` moves a deployment's history between them.
    #[serde(default)]
    pub backend: StateBackend,
    /// omsup's own database in the meta database server (default `omsup_state`), created on
    /// first use; never one that omsup backs up or restores or that OMS migrates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_]+$"), length(min = 1, max = 64))]
    pub database: Option<String>,
}

impl StateSettings {
    /// Nothing set: the section is left out when a plan file is written.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `[state] backend`: where the journal lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// A SQLite file per deployment in the state directory (`--state-dir`, default `.omsup/`
    /// next to the plan file).
    #[default]
    Local,
    /// omsup's database (`[state] database`) in the meta database server.
    MetaDb,
}

/// `[image]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Image {
    /// Absolute path of the image package (`docker save` tarball): on the machine running
    /// omsup, or on every node (see `package_on`).
    pub package: PathBuf,
    /// Where `package` is: `operator` (the default: streamed from this machine to each node's
    /// Docker daemon) or `nodes` (already copied to every node at that path, as the runbook
    /// has it: loaded there with `docker load` over the node's `ssh://` endpoint, so the
    /// package never crosses the network again).
    #[serde(default, skip_serializing_if = "PackageLocation::is_default")]
    pub package_on: PackageLocation,
    /// The tag loading the package must yield, e.g. `oms:feature_4.2.9-ce`.
    #[schemars(length(min = 1))]
    pub tag: String,
}

/// Where `[image] package` is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PackageLocation {
    /// On the machine running omsup; streamed to every node.
    #[default]
    Operator,
    /// On every node, at the same path; loaded there.
    Nodes,
}

impl PackageLocation {
    fn is_default(&self) -> bool {
        *self == Self::Operator
    }
}

/// `[meta_db]`: where the OMS meta databases live. The password is never written here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MetaDb {
    /// Host name or IP address of the meta database.
    #[schemars(length(min = 1))]
    pub host: String,
    /// TCP port (OceanBase proxies commonly use 2883, MySQL 3306).
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// User name (`oms_meta_user` in config.yaml).
    #[schemars(length(min = 1))]
    pub user: String,
    /// Name of an environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Absolute path of a file holding the password (first line; should be mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// A literal password. Always refused by `lint` and `plan`: it would end up in version
    /// control. Present in the model only so that the refusal can point at it.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub password: Option<String>,
    /// The rm database (`drc_rm_db`).
    #[schemars(length(min = 1))]
    pub rm: String,
    /// The cm database (`drc_cm_db`).
    #[schemars(length(min = 1))]
    pub cm: String,
}

/// `[backup]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Backup {
    /// Absolute directory for backups; each run writes into a subdirectory of its own.
    pub dir: PathBuf,
    /// The dump client to run (`mariadb-dump` or `mysqldump`); found on PATH when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_command: Option<PathBuf>,
}

/// `[timeouts]`: every wait is a poll bounded by one of these, never a blind sleep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Timeouts {
    /// A new container must be ready (start log line, `/oms/health`) within this.
    #[serde(default = "Timeouts::default_readiness")]
    pub readiness: HumanDuration,
    /// `docker_init.sh` must finish within this.
    #[serde(default = "Timeouts::default_init")]
    pub init: HumanDuration,
    /// An old container must stop within this (then it is killed).
    #[serde(default = "Timeouts::default_stop")]
    pub stop: HumanDuration,
    /// Every server must be ONLINE and healthy within this after init.
    #[serde(default = "Timeouts::default_online")]
    pub online: HumanDuration,
}

impl Timeouts {
    fn default_readiness() -> HumanDuration {
        HumanDuration::from_secs(900)
    }
    fn default_init() -> HumanDuration {
        HumanDuration::from_secs(600)
    }
    fn default_stop() -> HumanDuration {
        HumanDuration::from_secs(120)
    }
    fn default_online() -> HumanDuration {
        HumanDuration::from_secs(600)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            readiness: Self::default_readiness(),
            init: Self::default_init(),
            stop: Self::default_stop(),
            online: Self::default_online(),
        }
    }
}

/// `[ha]`: OMS high availability is always turned off for the upgrade; this says what it
/// becomes afterwards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HaPolicy {
    /// `restore` (the value observed before the upgrade), `on` or `off`.
    #[serde(default)]
    pub after: HaAfter,
    /// Set `perceiveStoreClientCheckpoint` to this after the upgrade. When it ends up false,
    /// `refetchStoreIntervalMin` is raised above the HA-off window (T2 − T1), as documented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceive_store_client_checkpoint: Option<bool>,
}

/// What `ha.config`'s `enable` becomes after the upgrade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HaAfter {
    /// The value observed before the upgrade.
    #[default]
    Restore,
    /// HA on, whatever it was.
    On,
    /// HA off, whatever it was.
    Off,
}

/// `[health]`: how omsup trusts a node's HTTPS health answer. A node answers `/oms/health`
/// over HTTPS when its container mounts a certificate at `/etc/pki/nginx/oms_server.crt` (OMS's
/// nginx then serves HTTPS only), else over plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HealthCheck {
    /// `deployment_cert` (default): the node must present the very certificate its container
    /// mounts (read through Docker), whoever signed it; `ca`: a certificate chain to `ca_file`
    /// that names the node's IP; `off`: not verified at all (`lint` warns).
    #[serde(default)]
    pub tls_verify: TlsVerify,
    /// PEM file (on the machine running omsup) of the CA that signed the nodes' HTTPS
    /// certificates; only with `tls_verify = "ca"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl HealthCheck {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// How a node's HTTPS certificate is verified, see [`HealthCheck::tls_verify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsVerify {
    /// The certificate the node's container mounts, and nothing else.
    #[default]
    DeploymentCert,
    /// A chain to `ca_file`, naming the node's IP.
    Ca,
    /// Not verified.
    Off,
}

/// `[container]` (and a node's `[region.node.container_overrides]`): options of the new
/// container that win over the old container's. The new container is created with every
/// setting of the old one (environment, labels, mounts, restart policy, log options, ulimits,
/// limits, ...); an unset field here keeps the old container's value.
/// [`ContainerOptions::resolve`] gives the documented values, for `omsup init` and checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ContainerOptions {
    /// Docker network mode; OMS documents `host`. Unset: the old container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `--privileged`; documented `true`. Unset: the old container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// `--pids-limit`; documented `-1` (unlimited). Unset: the old container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `--ulimit nproc=N:N`; documented 65535. Unset: the old container's ulimits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ulimit_nproc: Option<u64>,
    /// Host path of the HTTPS certificate, mounted at `/etc/pki/nginx/oms_server.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_cert: Option<PathBuf>,
    /// Host path of the HTTPS key, mounted at `/etc/pki/nginx/oms_server.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_key: Option<PathBuf>,
    /// Environment variables set on the new container over the old container's own.
    /// `IS_UPGRADE` and `OMS_HOST_IP` are set by omsup and may not appear here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// Container options with every default applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedContainerOptions {
    pub network: String,
    pub privileged: bool,
    pub pids_limit: i64,
    pub ulimit_nproc: u64,
    pub https_cert: Option<PathBuf>,
    pub https_key: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
}

impl ContainerOptions {
    /// The documented defaults (OMS-FACTS: `--net host --privileged=true --pids-limit -1
    /// --ulimit nproc=65535:65535`).
    pub const DEFAULT_NETWORK: &'static str = "host";
    pub const DEFAULT_PRIVILEGED: bool = true;
    pub const DEFAULT_PIDS_LIMIT: i64 = -1;
    pub const DEFAULT_ULIMIT_NPROC: u64 = 65535;

    /// Layers `overrides` (a node's) over `self` (the plan's `[container]`), then the defaults.
    pub fn resolve(&self, overrides: Option<&ContainerOptions>) -> ResolvedContainerOptions {
        fn pick<T: Clone>(
            overrides: Option<&ContainerOptions>,
            base: &ContainerOptions,
            field: fn(&ContainerOptions) -> &Option<T>,
        ) -> Option<T> {
            overrides
                .and_then(|o| field(o).clone())
                .or_else(|| field(base).clone())
        }
        let mut env = self.env.clone();
        if let Some(o) = overrides {
            env.extend(o.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        ResolvedContainerOptions {
            network: pick(overrides, self, |o| &o.network)
                .unwrap_or_else(|| Self::DEFAULT_NETWORK.into()),
            privileged: pick(overrides, self, |o| &o.privileged)
                .unwrap_or(Self::DEFAULT_PRIVILEGED),
            pids_limit: pick(overrides, self, |o| &o.pids_limit)
                .unwrap_or(Self::DEFAULT_PIDS_LIMIT),
            ulimit_nproc: pick(overrides, self, |o| &o.ulimit_nproc)
                .unwrap_or(Self::DEFAULT_ULIMIT_NPROC),
            https_cert: pick(overrides, self, |o| &o.https_cert),
            https_key: pick(overrides, self, |o| &o.https_key),
            env,
        }
    }
}

/// `[mounts]`: the host paths of the fixed container paths. When declared, `plan` checks that
/// every old container mounts exactly these; the new containers always reuse what is observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Mounts {
    /// Host path mounted at `/home/admin/conf/config.yaml`.
    pub config: PathBuf,
    /// Host path mounted at `/home/admin/logs`.
    pub logs: PathBuf,
    /// Host path mounted at `/home/ds/store`.
    pub store: PathBuf,
    /// Host path mounted at `/home/ds/run`.
    pub run: PathBuf,
}

/// `[[region]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Region {
    /// The region's name (`cm_region`).
    #[schemars(length(min = 1))]
    pub name: String,
    /// The region's heartbeat database (`drc_cm_heartbeat_db`).
    #[schemars(length(min = 1))]
    pub cm_hb: String,
    /// The region's nodes.
    #[serde(rename = "node")]
    #[schemars(length(min = 1))]
    pub nodes: Vec<Node>,
}

/// `[[region.node]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Node {
    /// The node's IP address (`OMS_HOST_IP`, one of `cm_nodes`).
    pub ip: String,
    /// How to reach the node's Docker daemon: `unix:///var/run/docker.sock`,
    /// `tcp://host:2376` (with `tls`), or `ssh://user@host`.
    pub docker: String,
    /// TLS client files for a `tcp://` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// SSH client files for an `ssh://` endpoint (without them, ssh's own configuration
    /// decides: `~/.ssh/config`, the agent, `~/.ssh/known_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshFiles>,
    /// The OMS container's name on this node (the old one; the new one takes it over).
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))]
    pub container: String,
    /// This node's own container options, layered over `[container]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_overrides: Option<ContainerOptions>,
    /// This node's own expected mounts, layered over `[mounts]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Mounts>,
}

/// `[rehearsal]`: where `omsup rehearse` runs the throwaway container of the target image that
/// runs init against copies of the meta databases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Rehearsal {
    /// The Docker daemon to run it on, as a node's `docker` (default: the first node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<String>,
    /// TLS client files for a `tcp://` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// SSH client files for an `ssh://` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshFiles>,
    /// Its network mode: `bridge` (the default: a network of its own, so the fixed ports of an
    /// OMS running on the same host are not in the way), another network's name, or `host`
    /// (only on a daemon that runs no OMS of this deployment; refused on a node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Its `OMS_HOST_IP` (default: the first node's IP; with `network = "host"`, the
    /// rehearsal host's own address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// TLS client files for a Docker daemon reached over TCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA certificate that signed the daemon's certificate.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
}

/// SSH client files for a Docker daemon reached over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SshFiles {
    /// The private key to log in with (only this key is offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// The known-hosts file holding the node's host key (checked strictly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
}

impl PlanFile {
    /// Every node with its region, in file order.
    pub fn nodes(&self) -> impl Iterator<Item = (&Region, &Node)> {
        self.regions
            .iter()
            .flat_map(|region| region.nodes.iter().map(move |node| (region, node)))
    }

    /// The JSON Schema of plan files, as written to `schemas/plan.schema.json`.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(PlanFile))
            .expect("a JSON Schema always serializes")
    }
}
