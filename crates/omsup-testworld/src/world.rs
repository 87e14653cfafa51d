//! A deployed OMS world on demand: N simulator nodes, node k on node host k (its own network
//! namespace, Docker daemon, SSH and TLS endpoints; see [`crate::hosts`]) with an address of its
//! own on that host (every node serves the documented ports on its own address through host
//! networking, as in production; worlds share the hosts, each with its own addresses), a meta
//! database with names unique to the world (so tests run in parallel), seeded with realistic
//! rows, one config.yaml per node, and the plan file that describes it all. The plan reaches
//! the nodes as an operator would: by default some over SSH, some over TCP with TLS
//! ([`Transports::Mixed`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits, RestartPolicy,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ImportImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use omsup_model::plan;
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::hosts::{self, NodeHost};
use crate::services::{self, Services};
use crate::{Error, Result};

/// One region of a world.
#[derive(Debug, Clone)]
pub struct RegionSpec {
    pub name: String,
    pub nodes: usize,
    /// True: every node's config.yaml lists all the region's nodes in `cm_nodes` (init once per
    /// region). False: each node lists only itself (init once per node).
    pub shared_cm_nodes: bool,
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    /// The running version, e.g. `4.2.8`.
    pub version: String,
    /// The version the plan file targets, e.g. `4.2.9`.
    pub target_version: String,
    pub regions: Vec<RegionSpec>,
    pub ha_enabled: bool,
    /// False: delete the `oms_version` rows (an installation that predates them).
    pub with_oms_version_row: bool,
    pub projects: usize,
    pub heartbeat_rows_per_region: usize,
    /// How the plan file reaches the nodes.
    pub transports: Transports,
    /// True: the world's nodes get hosts of their own (started with the world, removed with
    /// it), for tests that cut a node's link or restart its daemon without touching other
    /// worlds. False: the shared hosts of the services.
    pub private_hosts: bool,
    /// True: the world's meta database is a MariaDB server of its own (started with the world,
    /// removed with it), for tests that restart the meta database. False: the shared server.
    pub private_meta_db: bool,
    /// What the operator set on the old containers beyond the documented options.
    pub operator: OperatorSettings,
    /// How config.yaml is written: as the docs write it (`oms_meta_port: 2883`) or as the
    /// OceanBase deployer does (every scalar a quoted string).
    pub config_style: ConfigStyle,
    /// True: every node's container mounts an HTTPS certificate (generated at world-up time,
    /// signed by a CA of the world's own, the node's IP as its subject alternative name), so
    /// the simulator serves `/oms/health` over HTTPS only.
    pub https: bool,
    /// `Some(first)`: the world's nodes get hosts `first..first + nodes` of their own, started
    /// with the world and removed with it together with their Docker data roots, so that its
    /// images do not outlive it (the scale bench's GiB packages). Takes precedence over
    /// `private_hosts`.
    pub dedicated_hosts: Option<usize>,
    /// The target version's package the plan file names, when not the simulator's own (the
    /// scale bench's, with a filler layer).
    pub target_package: Option<PathBuf>,
}

/// Settings an operator put on an OMS container with `docker run` beyond the documented ones
/// (`-e`, `--restart`, `--log-opt`, `--ulimit`, `--memory`, `--add-host`, `--label`): an
/// upgrade must keep every one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSettings {
    /// `-e KEY=value`
    pub env: Vec<(String, String)>,
    /// `--restart`
    pub restart: Option<String>,
    /// `--log-driver json-file --log-opt key=value`
    pub log_options: Vec<(String, String)>,
    /// `--ulimit name=soft:hard` (besides the documented nproc)
    pub ulimits: Vec<(String, i64, i64)>,
    /// `--memory`, bytes
    pub memory: Option<i64>,
    /// `--add-host name:ip`
    pub extra_hosts: Vec<String>,
    /// `--label key=value`
    pub labels: Vec<(String, String)>,
}

impl Default for OperatorSettings {
    /// Some of each, as a production container may have them (a secret-looking variable
    /// among them, whose value must reach the new container and no plan).
    fn default() -> Self {
        Self {
            env: vec![
                ("TZ".into(), "Asia/Shanghai".into()),
                ("SIM_API_TOKEN".into(), "tok-3f9a-operator-secret".into()),
            ],
            restart: Some("always".into()),
            log_options: vec![
                ("max-size".into(), "10m".into()),
                ("max-file".into(), "3".into()),
            ],
            ulimits: vec![("nofile".into(), 4096, 8192)],
            memory: Some(1 << 30),
            extra_hosts: vec!["oms-meta.internal:10.77.0.1".into()],
            labels: vec![("com.example.team".into(), "dba".into())],
        }
    }
}

/// How a world writes its nodes' config.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigStyle {
    /// Plain scalars, as in the documentation's example.
    #[default]
    Documented,
    /// Every scalar a double-quoted string, as obd writes it.
    Deployer,
}

/// How a world's plan file reaches its nodes' daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transports {
    /// Odd nodes over SSH (node 1 on port 2222, node 3 on 22, ...), even nodes over TCP with
    /// TLS: the remote transports a real deployment uses.
    #[default]
    Mixed,
    /// Every node over SSH.
    Ssh,
    /// Every node over TCP with TLS.
    Tls,
    /// Every node's local unix socket: only for quick unit-level tests.
    Unix,
}

/// The endpoint one node's plan entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeTransport {
    Ssh { port: u16 },
    Tls,
    Unix,
}

impl Transports {
    fn of_node(self, index: usize) -> NodeTransport {
        let ssh = NodeTransport::Ssh {
            port: if index % 4 == 1 {
                hosts::SSH_PORTS[1]
            } else {
                hosts::SSH_PORTS[0]
            },
        };
        match self {
            Self::Mixed if index % 2 == 1 => ssh,
            Self::Mixed | Self::Tls => NodeTransport::Tls,
            Self::Ssh => ssh,
            Self::Unix => NodeTransport::Unix,
        }
    }
}

impl WorldSpec {
    /// Two nodes in one region sharing `cm_nodes`, 4.2.8 with HA on, planned to 4.2.9.
    pub fn two_nodes() -> Self {
        Self {
            version: "4.2.8".into(),
            target_version: "4.2.9".into(),
            regions: vec![RegionSpec {
                name: "hz".into(),
                nodes: 2,
                shared_cm_nodes: true,
            }],
            ha_enabled: true,
            with_oms_version_row: true,
            projects: 50,
            heartbeat_rows_per_region: 5_000,
            transports: Transports::default(),
            private_hosts: false,
            private_meta_db: false,
            operator: OperatorSettings::default(),
            config_style: ConfigStyle::default(),
            https: false,
            dedicated_hosts: None,
            target_package: None,
        }
    }

    fn node_count(&self) -> usize {
        self.regions.iter().map(|r| r.nodes).sum()
    }

    /// The package of the target version the plan file names.
    pub fn target_package(&self) -> PathBuf {
        self.target_package
            .clone()
            .unwrap_or_else(|| image_package(&self.target_version))
    }
}

/// One deployed node.
#[derive(Debug, Clone)]
pub struct WorldNode {
    /// 1-based; node k runs on host k.
    pub index: usize,
    /// The node's own address (on its host).
    pub ip: String,
    pub region: String,
    /// The host the node runs on.
    pub host: NodeHost,
    /// How the plan file reaches the node's daemon.
    pub transport: NodeTransport,
    /// The host daemon's unix socket (the harness's own way in).
    pub docker_socket: PathBuf,
    /// Host directory holding this node's mounts (`conf/config.yaml`, `logs`, `store`, `run`).
    pub dir: PathBuf,
    pub cm_nodes: Vec<String>,
    /// The node's HTTPS certificate, with [`WorldSpec::https`].
    pub certificate: Option<NodeCertificate>,
}

/// A node's HTTPS certificate and key (host paths, mounted where OMS reads them) and the
/// world's CA that signed it.
#[derive(Debug, Clone)]
pub struct NodeCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Where OMS reads its HTTPS certificate and key.
pub const CERT_MOUNT: &str = "/etc/pki/nginx/oms_server.crt";
pub const KEY_MOUNT: &str = "/etc/pki/nginx/oms_server.key";

impl WorldNode {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("conf/config.yaml")
    }
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// `host:container` binds exactly as production mounts them.
    pub fn binds(&self) -> Vec<String> {
        let mut binds = vec![
            format!(
                "{}:/home/admin/conf/config.yaml",
                self.config_path().display()
            ),
            format!("{}:/home/admin/logs", self.logs_dir().display()),
            format!("{}:/home/ds/store", self.store_dir().display()),
            format!("{}:/home/ds/run", self.run_dir().display()),
        ];
        if let Some(certificate) = &self.certificate {
            binds.push(format!("{}:{CERT_MOUNT}", certificate.cert.display()));
            binds.push(format!("{}:{KEY_MOUNT}", certificate.key.display()));
        }
        binds
    }

    /// Where the node answers `/oms/health` (port 8089): over HTTPS when it has a certificate.
    pub fn health_url(&self) -> String {
        let scheme = if self.certificate.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:8089/oms/health", self.ip)
    }

    /// `GET` [`WorldNode::health_url`], verified against the world's CA (see [`http_get`]).
    pub async fn health_answer(&self) -> std::result::Result<HttpAnswer, String> {
        http_get(
            &self.health_url(),
            self.certificate.as_ref().map(|c| c.ca.as_path()),
        )
        .await
    }

    /// Polls [`WorldNode::health_answer`] until it says healthy.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        wait_healthy_at(
            &self.health_url(),
            self.certificate.as_ref().map(|c| c.ca.as_path()),
            timeout,
        )
        .await
    }

    pub fn docker(&self) -> Result<Docker> {
        connect_docker(&self.docker_socket)
    }

    /// The endpoint the plan file names for this node.
    pub fn endpoint(&self) -> String {
        match self.transport {
            NodeTransport::Ssh { port } => self.host.ssh_url(port),
            NodeTransport::Tls => self.host.tls_url(),
            NodeTransport::Unix => self.host.unix_url(),
        }
    }
}

/// A deployed world. Call [`World::down`] when done.
#[derive(Debug, Clone)]
pub struct World {
    pub id: String,
    pub dir: PathBuf,
    pub spec: WorldSpec,
    pub services: Services,
    /// The OMS container's name, the same on every node (as in production).
    pub container: String,
    pub rm: String,
    pub cm: String,
    /// cm_hb database per region name.
    pub cm_hb: BTreeMap<String, String>,
    pub nodes: Vec<WorldNode>,
    pub plan_path: PathBuf,
    pub password_file: PathBuf,
}

pub fn connect_docker(socket: &Path) -> Result<Docker> {
    Docker::connect_with_unix(
        &socket.display().to_string(),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| Error::Docker {
        what: format!("cannot connect to {}", socket.display()),
        source: e,
    })
}

fn docker_error(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let what = what.into();
    move |source| Error::Docker { what, source }
}

fn sql_error(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let what = what.into();
    move |source| Error::Sql { what, source }
}

/// The workspace's target dir (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `oms:feature_4.2.9-ce`
pub fn image_tag(version: &str) -> String {
    format!("oms:feature_{version}-ce")
}

/// The simulator package of a version, as `cargo xtask sim-images` writes it.
pub fn image_package(version: &str) -> PathBuf {
    target_dir()
        .join("oms-sim-images")
        .join(format!("oms-{version}-ce.tar"))
}

/// Allocates a world number unique on this machine (a counter under the services' state dir).
fn allocate_world_number() -> Result<u64> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = Path::new(services::STATE_DIR).join("world-counter");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Error::io("cannot lock the world counter".into(), e))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::io("cannot read the world counter".into(), e))?;
    let number = text.trim().parse::<u64>().unwrap_or(0) + 1;
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{number}"))
        .map_err(|e| Error::io("cannot write the world counter".into(), e))?;
    Ok(number)
}

/// The most nodes a world may have.
pub const MAX_WORLD_NODES: usize = 14;

/// Node `k` (1-based, up to [`MAX_WORLD_NODES`]) of world `number`: an address on the hosts'
/// network above `10.77.16.0` (the hosts themselves are `10.77.0.x`); 3,840 worlds before an
/// address comes back.
fn node_ip(number: u64, k: usize) -> String {
    let slot = number % 3_840;
    format!("10.77.{}.{}", 16 + slot / 16, (slot % 16) * 16 + k as u64)
}

/// The port of the MariaDB server of its own world `id` (`w<number>`) may have had.
pub fn world_private_meta_port(id: &str) -> Option<u16> {
    id.strip_prefix('w')
        .and_then(|n| n.parse::<u64>().ok())
        .map(services::private_meta_port)
}

/// The private hosts world `id` (`w<number>`) may have had.
pub fn world_private_hosts(id: &str) -> Vec<NodeHost> {
    id.strip_prefix('w')
        .and_then(|n| n.parse::<u64>().ok())
        .map(|number| {
            (1..=hosts::PRIVATE_HOSTS_PER_WORLD)
                .map(|k| hosts::private_host(number, k))
                .collect()
        })
        .unwrap_or_default()
}

/// Every address world `id` (`w<number>`) may have put on a host.
pub fn world_addresses(id: &str) -> Vec<String> {
    id.strip_prefix('w')
        .and_then(|n| n.parse::<u64>().ok())
        .map(|number| (1..=MAX_WORLD_NODES).map(|k| node_ip(number, k)).collect())
        .unwrap_or_default()
}

/// Connects to the meta database as the test administrator.
pub async fn meta_pool(services: &Services) -> Result<MySqlPool> {
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .host(&services.meta_host)
        .port(services.meta_port)
        .username(&services.meta_user)
        .password(&services.meta_password()?);
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(sql_error("cannot connect to the test MariaDB"))
}

impl World {
    /// Deploys a world. Fails loudly, with a hint, when the services or images are missing.
    pub async fn up(spec: WorldSpec) -> Result<World> {
        if spec.node_count() > MAX_WORLD_NODES {
            return Err(Error::Seed(format!(
                "a world has at most {MAX_WORLD_NODES} nodes"
            )));
        }
        // A world on hosts of its own needs only the shared services' database and files.
        let shared_hosts = if spec.dedicated_hosts.is_some() {
            1
        } else {
            spec.node_count()
        };
        let services = services::check(shared_hosts)?;
        for package in [image_package(&spec.version), spec.target_package()] {
            if !package.is_file() {
                return Err(Error::ServicesMissing(format!(
                    "the simulator package `{}` is missing",
                    package.display()
                )));
            }
        }
        let number = allocate_world_number()?;
        let id = format!("w{number}");
        let mut services = services;
        if let Some(first) = spec.dedicated_hosts {
            services.hosts = (first..first + spec.node_count())
                .map(NodeHost::new)
                .collect();
            services.node_sockets = services.hosts.iter().map(|h| h.socket.clone()).collect();
            hosts::ensure_private(&services.hosts)?;
        } else if spec.private_hosts {
            if spec.node_count() > hosts::PRIVATE_HOSTS_PER_WORLD {
                return Err(Error::Seed(format!(
                    "a world with private hosts has at most {} nodes",
                    hosts::PRIVATE_HOSTS_PER_WORLD
                )));
            }
            services.hosts = (1..=spec.node_count())
                .map(|k| hosts::private_host(number, k))
                .collect();
            services.node_sockets = services.hosts.iter().map(|h| h.socket.clone()).collect();
            hosts::ensure_private(&services.hosts)?;
        }
        if spec.private_meta_db {
            services.meta_port = services::private_meta_port(number);
            services::start_private_meta(services.meta_port, true)?;
        }
        let base = std::env::temp_dir().join("omsup-worlds");
        let dir = base.join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;

        let container = format!("oms_{id}");
        let rm = format!("{id}_rm");
        let cm = format!("{id}_cm");
        let cm_hb: BTreeMap<String, String> = spec
            .regions
            .iter()
            .map(|r| (r.name.clone(), format!("{id}_cm_hb_{}", r.name)))
            .collect();
        let password_file = dir.join("meta.password");
        write_private(&password_file, &format!("{}\n", services.meta_password()?))?;

        let mut nodes = Vec::new();
        for region in &spec.regions {
            let first = nodes.len() + 1;
            let region_ips: Vec<String> = (first..first + region.nodes)
                .map(|k| node_ip(number, k))
                .collect();
            for (offset, ip) in region_ips.iter().enumerate() {
                let index = first + offset;
                let cm_nodes = if region.shared_cm_nodes {
                    region_ips.clone()
                } else {
                    vec![ip.clone()]
                };
                let host = services.hosts[index - 1].clone();
                nodes.push(WorldNode {
                    index,
                    ip: ip.clone(),
                    region: region.name.clone(),
                    transport: spec.transports.of_node(index),
                    docker_socket: host.socket.clone(),
                    host,
                    dir: dir.join(format!("node{index}")),
                    cm_nodes,
                    certificate: None,
                });
            }
        }
        if spec.https {
            world_certificates(&dir, &id, &mut nodes)?;
        }
        let world = World {
            id,
            dir,
            spec,
            services,
            container,
            rm,
            cm,
            cm_hb,
            nodes,
            plan_path: PathBuf::new(),
            password_file,
        };
        let world = World {
            plan_path: world.dir.join("plan.toml"),
            ..world
        };
        world.deploy().await?;
        Ok(world)
    }

    async fn deploy(&self) -> Result<()> {
        let pool = meta_pool(&self.services).await?;
        for database in self.databases() {
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{database}`"
            )))
            .execute(&pool)
            .await
            .map_err(sql_error("cannot drop a stale world database"))?;
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
                .execute(&pool)
                .await
                .map_err(sql_error("cannot create a world database"))?;
        }
        let password = self.services.meta_password()?;
        for node in &self.nodes {
            hosts::add_address(&node.host, &node.ip)?;
        }
        for (position, node) in self.nodes.iter().enumerate() {
            for sub in ["conf", "logs", "store", "run"] {
                std::fs::create_dir_all(node.dir.join(sub))
                    .map_err(|e| Error::io(format!("cannot create {}", node.dir.display()), e))?;
            }
            let region_position = self
                .spec
                .regions
                .iter()
                .position(|r| r.name == node.region)
                .unwrap_or(0);
            write_private(
                &node.config_path(),
                &self.config_yaml(node, region_position, position == 0, &password),
            )?;
        }
        // Every node's daemon gets the running version's image, in parallel. The target image
        // is left to omsup (its `load-image` steps), as on a real deployment.
        let loads = self.nodes.iter().map(|node| async move {
            let docker = node.docker()?;
            ensure_image(&docker, &self.spec.version).await?;
            load_image(
                &docker,
                &self.spec.target_version,
                &self.spec.target_package(),
                false,
            )
            .await?;
            remove_named(&docker, &self.container).await
        });
        futures_util::future::try_join_all(loads).await?;

        // First node of each region: start it, run init (a fresh install for the first region,
        // the schema of its own heartbeat database for the others).
        for (position, region) in self.spec.regions.iter().enumerate() {
            let node = self
                .nodes
                .iter()
                .find(|n| n.region == region.name)
                .expect("every region has a node");
            let docker = node.docker()?;
            self.start_node(&docker, node, &image_tag(&self.spec.version), &[])
                .await?;
            wait_for_log(
                &docker,
                &self.container,
                "OMS service start successfully",
                Duration::from_secs(60),
            )
            .await?;
            let env = if position == 0 {
                vec![]
            } else {
                vec!["IS_UPGRADE=true".to_owned()]
            };
            let (code, output) = exec_init(&docker, &self.container, env).await?;
            if code != 0 {
                return Err(Error::Init {
                    node: node.ip.clone(),
                    output,
                });
            }
        }
        let others = self.nodes.iter().filter(|n| {
            self.nodes
                .iter()
                .find(|m| m.region == n.region)
                .map(|m| m.index)
                != Some(n.index)
        });
        for node in others {
            self.start_node(&node.docker()?, node, &image_tag(&self.spec.version), &[])
                .await?;
        }
        self.seed(&pool).await?;
        for node in &self.nodes {
            node.wait_healthy(Duration::from_secs(60)).await?;
        }
        self.wait_online(Duration::from_secs(30)).await?;
        self.write_plan()?;
        Ok(())
    }

    /// Creates and starts this world's container on `node` with the production options (minus
    /// `--privileged`, which these machines refuse) and the world's [`OperatorSettings`].
    pub async fn start_node(
        &self,
        docker: &Docker,
        node: &WorldNode,
        image: &str,
        extra_env: &[String],
    ) -> Result<()> {
        self.start_node_labelled(docker, node, image, extra_env, &[])
            .await
    }

    /// [`World::start_node`] with container labels (e.g. the run label an earlier omsup run
    /// puts on the containers it creates).
    pub async fn start_node_labelled(
        &self,
        docker: &Docker,
        node: &WorldNode,
        image: &str,
        extra_env: &[String],
        labels: &[(&str, &str)],
    ) -> Result<()> {
        let operator = &self.spec.operator;
        let mut env = vec![format!("OMS_HOST_IP={}", node.ip)];
        env.extend(operator.env.iter().map(|(k, v)| format!("{k}={v}")));
        env.extend_from_slice(extra_env);
        let mut ulimits = vec![ResourcesUlimits {
            name: Some("nproc".into()),
            soft: Some(65535),
            hard: Some(65535),
        }];
        ulimits.extend(
            operator
                .ulimits
                .iter()
                .map(|(name, soft, hard)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                }),
        );
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            env: Some(env),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .chain(operator.labels.iter().cloned())
                    .collect(),
            ),
            tty: Some(true),
            open_stdin: Some(true),
            host_config: Some(HostConfig {
                binds: Some(node.binds()),
                network_mode: Some("host".into()),
                pids_limit: Some(-1),
                ulimits: Some(ulimits),
                restart_policy: operator.restart.as_ref().map(|name| RestartPolicy {
                    name: name.parse().ok(),
                    maximum_retry_count: None,
                }),
                log_config: (!operator.log_options.is_empty()).then(|| HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(operator.log_options.iter().cloned().collect()),
                }),
                memory: operator.memory,
                extra_hosts: (!operator.extra_hosts.is_empty())
                    .then(|| operator.extra_hosts.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&self.container)
                        .build(),
                ),
                body,
            )
            .await
            .map_err(docker_error(format!(
                "cannot create {} on node {}",
                self.container, node.ip
            )))?;
        docker
            .start_container(&self.container, None)
            .await
            .map_err(docker_error(format!(
                "cannot start {} on node {}",
                self.container, node.ip
            )))
    }

    fn config_yaml(
        &self,
        node: &WorldNode,
        region_position: usize,
        _first: bool,
        password: &str,
    ) -> String {
        let first_ip = &self
            .nodes
            .iter()
            .find(|n| n.region == node.region)
            .expect("region has nodes")
            .ip;
        // The deployer quotes every scalar (its `distribute_config.py`); the docs quote none.
        let q = |value: &dyn std::fmt::Display| match self.spec.config_style {
            ConfigStyle::Documented => value.to_string(),
            ConfigStyle::Deployer => format!("\"{value}\""),
        };
        let cm_nodes: String = node
            .cm_nodes
            .iter()
            .map(|ip| format!("  - {}\n", q(ip)))
            .collect();
        let pairs: [(&str, String); 19] = [
            ("oms_meta_host", q(&self.services.meta_host)),
            ("oms_meta_port", q(&self.services.meta_port)),
            ("oms_meta_user", q(&self.services.meta_user)),
            ("oms_meta_password", q(&password)),
            ("drc_rm_db", q(&self.rm)),
            ("drc_cm_db", q(&self.cm)),
            ("drc_cm_heartbeat_db", q(&self.cm_hb[&node.region])),
            ("cm_url", q(&format!("http://{first_ip}:8088"))),
            ("cm_location", q(&region_position)),
            ("cm_region", q(&node.region)),
            ("cm_region_cn", q(&node.region)),
            ("cm_is_default", q(&(region_position == 0))),
            ("tsdb_enabled", q(&false)),
            ("nginx_server_port", q(&8089)),
            ("ghana_server_port", q(&8090)),
            ("cm_server_port", q(&8088)),
            ("supervisor_server_port", q(&9000)),
            ("sshd_server_port", q(&2023)),
            ("cm_nodes", String::new()),
        ];
        let mut text = String::new();
        for (key, value) in pairs {
            if key == "cm_nodes" {
                text.push_str(&format!("cm_nodes:\n{cm_nodes}"));
            } else {
                text.push_str(&format!("{key}: {value}\n"));
            }
        }
        text
    }

    async fn seed(&self, pool: &MySqlPool) -> Result<()> {
        let rm = &self.rm;
        for n in 0..self.spec.projects {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO `{rm}`.oms_project(name, status) VALUES (?, ?)"
            )))
            .bind(format!("project-{n:03}"))
            .bind(if n % 5 == 0 { "PAUSED" } else { "RUNNING" })
            .execute(pool)
            .await
            .map_err(sql_error("cannot seed projects"))?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO `{rm}`.cluster_info(name, endpoint) VALUES ('ob-main', '10.0.0.10:2881')"
        )))
        .execute(pool)
        .await
        .map_err(sql_error("cannot seed cluster_info"))?;
        for hb in self.cm_hb.values() {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO `{hb}`.heatbeat_sequence(gmt_created, gmt_modified) SELECT NOW(), NOW() FROM `{hb}`.seq_1_to_{}",
                self.spec.heartbeat_rows_per_region.max(1)
            )))
            .execute(pool)
            .await
            .map_err(sql_error("cannot seed heartbeats"))?;
        }
        let mut ha: serde_json::Value = serde_json::from_str(
            &sqlx::query_scalar::<_, String>(AssertSqlSafe(format!("SELECT CAST(cfg_value AS CHAR) FROM `{rm}`.oms_normal_config WHERE cfg_name = 'ha.config'")))
                .fetch_one(pool)
                .await
                .map_err(sql_error("cannot read ha.config"))?,
        )
        .map_err(|e| Error::Seed(format!("ha.config is not JSON: {e}")))?;
        ha["enable"] = serde_json::Value::Bool(self.spec.ha_enabled);
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE `{rm}`.oms_normal_config SET cfg_value = ? WHERE cfg_name = 'ha.config'"
        )))
        .bind(ha.to_string())
        .execute(pool)
        .await
        .map_err(sql_error("cannot write ha.config"))?;
        if !self.spec.with_oms_version_row {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM `{rm}`.oms_version")))
                .execute(pool)
                .await
                .map_err(sql_error("cannot delete oms_version rows"))?;
        }
        Ok(())
    }

    /// The plan file describing this world (through the real model, so it is always valid).
    fn write_plan(&self) -> Result<()> {
        let target = format!("{}-CE", self.spec.target_version);
        let regions = self
            .spec
            .regions
            .iter()
            .map(|region| plan::Region {
                name: region.name.clone(),
                cm_hb: self.cm_hb[&region.name].clone(),
                nodes: self
                    .nodes
                    .iter()
                    .filter(|n| n.region == region.name)
                    .map(|n| plan::Node {
                        ip: n.ip.clone(),
                        docker: n.endpoint(),
                        tls: (n.transport == NodeTransport::Tls).then(|| plan::TlsFiles {
                            ca: self.services.client.tls_ca.clone(),
                            cert: self.services.client.tls_cert.clone(),
                            key: self.services.client.tls_key.clone(),
                        }),
                        ssh: matches!(n.transport, NodeTransport::Ssh { .. }).then(|| {
                            plan::SshFiles {
                                identity: Some(self.services.client.ssh_identity.clone()),
                                known_hosts: Some(self.services.client.ssh_known_hosts.clone()),
                            }
                        }),
                        container: self.container.clone(),
                        container_overrides: None,
                        mounts: None,
                    })
                    .collect(),
            })
            .collect();
        let plan_file = plan::PlanFile {
            deployment: plan::Deployment {
                name: format!("oms-{}", self.id),
                target_version: target,
                current_version: Some(format!("{}-CE", self.spec.version)),
            },
            image: plan::Image {
                package: self.spec.target_package(),
                package_on: plan::PackageLocation::Operator,
                tag: image_tag(&self.spec.target_version),
            },
            meta_db: plan::MetaDb {
                host: self.services.meta_host.clone(),
                port: self.services.meta_port,
                user: self.services.meta_user.clone(),
                password_env: None,
                password_file: Some(self.password_file.clone()),
                password: None,
                rm: self.rm.clone(),
                cm: self.cm.clone(),
            },
            backup: plan::Backup {
                dir: self.dir.join("backups"),
                dump_command: None,
            },
            timeouts: plan::Timeouts {
                readiness: "60s".parse().expect("a valid duration"),
                init: "120s".parse().expect("a valid duration"),
                stop: "30s".parse().expect("a valid duration"),
                online: "60s".parse().expect("a valid duration"),
            },
            ha: plan::HaPolicy::default(),
            container: plan::ContainerOptions {
                privileged: Some(false),
                ..Default::default()
            },
            health: plan::HealthCheck::default(),
            mounts: None,
            state: Default::default(),
            rehearsal: None,
            regions,
        };
        let text = toml::to_string(&plan_file)
            .map_err(|e| Error::Seed(format!("cannot write the plan: {e}")))?;
        let header = format!(
            "#:schema {}\n# A test world written by omsup-testworld.\n\n",
            workspace_root().join("schemas/plan.schema.json").display()
        );
        std::fs::create_dir_all(self.dir.join("backups"))
            .map_err(|e| Error::io("cannot create the backup dir".into(), e))?;
        std::fs::write(&self.plan_path, format!("{header}{text}"))
            .map_err(|e| Error::io(format!("cannot write {}", self.plan_path.display()), e))
    }

    pub fn databases(&self) -> Vec<String> {
        let mut all = vec![self.rm.clone(), self.cm.clone()];
        all.extend(self.cm_hb.values().cloned());
        all
    }

    pub async fn meta_pool(&self) -> Result<MySqlPool> {
        meta_pool(&self.services).await
    }

    /// Runs one statement as the test administrator (data a test seeds for the simulator);
    /// returns the rows it affected.
    pub async fn execute(&self, statement: &str) -> Result<u64> {
        let pool = self.meta_pool().await?;
        sqlx::query(AssertSqlSafe(statement.to_owned()))
            .execute(&pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(sql_error("cannot run a test statement"))
    }

    /// The databases on the server whose names are `LIKE pattern`, sorted.
    pub async fn databases_like(&self, pattern: &str) -> Result<Vec<String>> {
        let pool = self.meta_pool().await?;
        sqlx::query_scalar(
            "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
             WHERE schema_name LIKE ? ORDER BY 1",
        )
        .bind(pattern)
        .fetch_all(&pool)
        .await
        .map_err(sql_error("cannot list databases"))
    }

    /// Per table: rows and `CHECKSUM TABLE`, for "nothing was lost" comparisons.
    pub async fn table_checksums(
        &self,
        database: &str,
    ) -> Result<BTreeMap<String, (u64, Option<i64>)>> {
        let pool = self.meta_pool().await?;
        let tables: Vec<String> = sqlx::query_scalar("SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ? ORDER BY 1")
            .bind(database)
            .fetch_all(&pool)
            .await
            .map_err(sql_error("cannot list tables"))?;
        let mut sums = BTreeMap::new();
        for table in tables {
            let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM `{database}`.`{table}`"
            )))
            .fetch_one(&pool)
            .await
            .map_err(sql_error("cannot count rows"))?;
            let (_, checksum): (String, Option<i64>) = sqlx::query_as(AssertSqlSafe(format!(
                "CHECKSUM TABLE `{database}`.`{table}`"
            )))
            .fetch_one(&pool)
            .await
            .map_err(sql_error("cannot checksum a table"))?;
            sums.insert(table, (rows.max(0) as u64, checksum));
        }
        Ok(sums)
    }

    /// `cm.host`: ip → status.
    pub async fn host_statuses(&self) -> Result<BTreeMap<String, String>> {
        let pool = self.meta_pool().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT CAST(ip AS CHAR), CAST(host_status AS CHAR) FROM `{}`.host",
            self.cm
        )))
        .fetch_all(&pool)
        .await
        .map_err(sql_error("cannot read cm.host"))?;
        Ok(rows.into_iter().collect())
    }

    /// The HA actions the simulator recorded (rm `oms_ha_event`: host ip and action), oldest
    /// first; empty when HA never acted (the table is created by the first action).
    pub async fn ha_events(&self) -> Result<Vec<(String, String)>> {
        let pool = self.meta_pool().await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'oms_ha_event'",
        )
        .bind(&self.rm)
        .fetch_one(&pool)
        .await
        .map_err(sql_error("cannot look for oms_ha_event"))?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT CAST(host_ip AS CHAR), CAST(action AS CHAR) FROM `{}`.oms_ha_event ORDER BY id",
            self.rm
        )))
        .fetch_all(&pool)
        .await
        .map_err(sql_error("cannot read oms_ha_event"))
    }

    /// Polls `cm.host` until every node of the world is `ONLINE`.
    pub async fn wait_online(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let statuses = self.host_statuses().await?;
            let offline: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| statuses.get(&n.ip).map(String::as_str) != Some("ONLINE"))
                .map(|n| n.ip.as_str())
                .collect();
            if offline.is_empty() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::Timeout(format!(
                    "nodes {} were not ONLINE in `{}`.host within {timeout:?}",
                    offline.join(", "),
                    self.cm
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Removes the world's containers on every daemon, drops its databases, deletes its dir.
    pub async fn down(&self) -> Result<()> {
        for node in &self.nodes {
            if self.spec.dedicated_hosts.is_some() || self.spec.private_hosts {
                hosts::remove(&node.host)?;
            } else {
                remove_named(&node.docker()?, &self.container).await?;
                hosts::remove_address(&node.host, &node.ip);
            }
        }
        if self.spec.private_meta_db {
            services::remove_private_meta(self.services.meta_port)?;
            let _ = std::fs::remove_dir_all(&self.dir);
            return Ok(());
        }
        let pool = self.meta_pool().await?;
        for database in self.databases() {
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{database}`"
            )))
            .execute(&pool)
            .await
            .map_err(sql_error("cannot drop a world database"))?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// Removes the container `name` and the old ones kept under `name-...` (not `name1`: world
/// `w4` must not remove the containers of world `w41`).
pub async fn remove_named(docker: &Docker, name: &str) -> Result<()> {
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&std::collections::HashMap::from([("name", vec![name])]))
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(docker_error("cannot list containers"))?;
    for container in containers {
        let matches = container.names.unwrap_or_default().iter().any(|n| {
            let n = n.trim_start_matches('/');
            n == name || n.starts_with(&format!("{name}-"))
        });
        if let (true, Some(id)) = (matches, container.id) {
            docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await
                .map_err(docker_error(format!("cannot remove container {id}")))?;
        }
    }
    Ok(())
}

/// The image id a `docker save` package holds (`sha256:<hex>`), read from its
/// `manifest.json`.
fn package_image_id(package: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
    }
    let output = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(package)
        .arg("manifest.json")
        .output()
        .ok()?;
    let entries: Vec<Entry> = serde_json::from_slice(&output.stdout).ok()?;
    let config = &entries.first()?.config;
    let hex = config
        .trim_start_matches("blobs/sha256/")
        .trim_end_matches(".json");
    Some(format!("sha256:{hex}"))
}

/// Loads the simulator package of `version` into `docker` unless its tag there already names
/// the package's image. A node daemon keeps its images across sessions and CI runs: a tag left
/// by an older build of the simulator is loaded over, never silently tested against.
pub async fn ensure_image(docker: &Docker, version: &str) -> Result<()> {
    load_image(docker, version, &image_package(version), true).await
}

/// Replaces `version`'s tag when it names another build of the simulator; an absent image
/// stays absent (the target image, which omsup's `load-image` steps load).
pub async fn replace_stale_image(docker: &Docker, version: &str) -> Result<()> {
    load_image(docker, version, &image_package(version), false).await
}

async fn load_image(
    docker: &Docker,
    version: &str,
    package: &Path,
    when_absent: bool,
) -> Result<()> {
    let tag = image_tag(version);
    match docker.inspect_image(&tag).await {
        Ok(image) if image.id.is_some() && image.id == package_image_id(package) => {
            return Ok(());
        }
        Ok(_) => {}
        Err(_) if !when_absent => return Ok(()),
        Err(_) => {}
    }
    let file = tokio::fs::File::open(package)
        .await
        .map_err(|e| Error::io(format!("cannot open {}", package.display()), e))?;
    let body = tokio_util::io::ReaderStream::new(file);
    let mut stream = docker.import_image_stream(
        ImportImageOptionsBuilder::default().quiet(true).build(),
        body,
        None,
    );
    while let Some(item) = stream.next().await {
        item.map_err(docker_error(format!("cannot load {}", package.display())))?;
    }
    Ok(())
}

/// Polls the container's log for `line`.
pub async fn wait_for_log(
    docker: &Docker,
    container: &str,
    line: &str,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let logs: Vec<String> = docker
            .logs(container, Some(options))
            .map_ok(|chunk| chunk.to_string())
            .try_collect()
            .await
            .unwrap_or_default();
        if logs.concat().contains(line) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(Error::Timeout(format!(
                "`{container}` never logged `{line}`; log:\n{}",
                crate::services::tail(&logs.concat(), 10)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `cmd` in the container; returns its exit code and output.
async fn exec_output(
    docker: &Docker,
    container: &str,
    cmd: Vec<String>,
    env: Vec<String>,
) -> Result<(i64, String)> {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd),
                env: Some(env),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_error("cannot create an exec"))?;
    let mut output = String::new();
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = docker
        .start_exec(&exec.id, None)
        .await
        .map_err(docker_error("cannot start an exec"))?
    {
        while let Some(Ok(chunk)) = stream.next().await {
            output.push_str(&chunk.to_string());
        }
    }
    let inspect = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(docker_error("cannot inspect an exec"))?;
    Ok((inspect.exit_code.unwrap_or(-1), output))
}

/// `supervisorctl status` in the container: its exit code (0 when every component is
/// RUNNING) and its table.
pub async fn supervisor_status(docker: &Docker, container: &str) -> Result<(i64, String)> {
    exec_output(
        docker,
        container,
        vec!["supervisorctl".to_owned(), "status".to_owned()],
        Vec::new(),
    )
    .await
}

/// Runs `bash /root/docker_init.sh` in the container once `supervisorctl status` shows every
/// component RUNNING (as the runbooks do); returns its exit code and output.
pub async fn exec_init(
    docker: &Docker,
    container: &str,
    env: Vec<String>,
) -> Result<(i64, String)> {
    let started = Instant::now();
    loop {
        let (code, status) = supervisor_status(docker, container).await?;
        if code == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(Error::Timeout(format!(
                "the components of `{container}` were not RUNNING within 30 s:\n{status}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    exec_output(
        docker,
        container,
        vec!["bash".to_owned(), "/root/docker_init.sh".to_owned()],
        env,
    )
    .await
}

/// What an HTTP server answered: the status, the header lines, the (de-chunked) body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<String>,
    pub body: String,
}

impl HttpAnswer {
    /// The body as JSON, `Err` naming the status and body when it is not a 2xx JSON answer.
    pub fn json(&self) -> std::result::Result<serde_json::Value, String> {
        if !(200..300).contains(&self.status) {
            return Err(format!("HTTP {}: {}", self.status, self.body));
        }
        serde_json::from_str(&self.body).map_err(|e| format!("not JSON ({e}): {}", self.body))
    }

    /// `data.healthy` of a 2xx JSON answer.
    pub fn healthy(&self) -> Option<bool> {
        self.json().ok()?["data"]["healthy"].as_bool()
    }

    /// Whether a header line `name: value` is present (name and value case-insensitive).
    pub fn has_header(&self, name: &str, value: &str) -> bool {
        self.headers.iter().any(|line| {
            line.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value)
            })
        })
    }
}

/// `GET url` with curl: an HTTP client independent of omsup's own, so that the simulator and
/// omsup are not only checked against each other. `ca`: verify HTTPS against this CA (curl
/// also checks that the certificate names the address). `Err` with curl's message when no HTTP
/// answer came (nothing listens, TLS refused, timeout).
pub async fn http_get(url: &str, ca: Option<&Path>) -> std::result::Result<HttpAnswer, String> {
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["--silent", "--show-error", "--include", "--http1.1"])
        .args(["--max-time", "2", "--noproxy", "*"]);
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    let output = command
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("cannot run curl (`cargo xtask services` installs it): {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {text:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    Ok(HttpAnswer {
        status,
        headers: lines.map(str::to_owned).collect(),
        body: body.to_owned(),
    })
}

/// `data.healthy` of `GET http://<ip>:8089/oms/health` (plain HTTP), or `None` when no 2xx
/// JSON answer comes.
pub async fn health(ip: &str) -> Option<bool> {
    http_get(&format!("http://{ip}:8089/oms/health"), None)
        .await
        .ok()?
        .healthy()
}

/// Polls plain-HTTP [`health`] until it says healthy.
pub async fn wait_healthy(ip: &str, timeout: Duration) -> Result<()> {
    wait_healthy_at(&format!("http://{ip}:8089/oms/health"), None, timeout).await
}

async fn wait_healthy_at(url: &str, ca: Option<&Path>, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < timeout {
        match http_get(url, ca).await {
            Ok(answer) if answer.healthy() == Some(true) => return Ok(()),
            Ok(answer) => last = format!("HTTP {}: {}", answer.status, answer.body),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Error::Timeout(format!(
        "{url} was not healthy within {timeout:?} (last: {last})"
    )))
}

/// A CA of the world's own (`<dir>/pki/ca.pem`) and one certificate per node signed by it, the
/// node's IP as its subject alternative name, made with openssl as an operator would.
fn world_certificates(dir: &Path, id: &str, nodes: &mut [WorldNode]) -> Result<()> {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki)
        .map_err(|e| Error::io(format!("cannot create {}", pki.display()), e))?;
    hosts::certificate(
        &pki,
        "ca",
        &format!("omsup test world {id} CA"),
        "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
        None,
    )?;
    let (ca, ca_key) = (pki.join("ca.pem"), pki.join("ca-key.pem"));
    for node in nodes {
        let name = format!("node{}", node.index);
        hosts::certificate(
            &pki,
            &name,
            &node.ip,
            &format!(
                "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:{}\n",
                node.ip
            ),
            Some((&ca, &ca_key)),
        )?;
        node.certificate = Some(NodeCertificate {
            cert: pki.join(format!("{name}-cert.pem")),
            key: pki.join(format!("{name}-key.pem")),
            ca: ca.clone(),
        });
    }
    Ok(())
}

/// Polls `check` every 100 ms until it gives a value, for at most `timeout`: how tests wait for
/// a condition instead of sleeping a fixed time. Panics naming `what` on timeout.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "waited {timeout:?} for {what}, in vain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl WorldNode {
    /// The simulator's store file on this node (appended to while OMS runs).
    pub fn store_file(&self) -> PathBuf {
        self.store_dir().join(&self.ip).join("store.dat")
    }

    /// Polls until the store file holds more than `than` bytes, and returns its text.
    pub async fn wait_store_longer_than(&self, than: usize, timeout: Duration) -> String {
        let file = self.store_file();
        poll_until(
            &format!("{} to grow past {than} bytes", file.display()),
            timeout,
            || {
                let text = std::fs::read_to_string(&file).ok();
                async move { text.filter(|text| text.len() > than) }
            },
        )
        .await
    }
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulator_package_names_its_image_id() {
        let package = image_package("4.2.9");
        assert!(package.is_file(), "run `cargo xtask sim-images` first");
        let id = package_image_id(&package).expect("the package's manifest names its image");
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    }

    #[test]
    fn node_ips_are_distinct_per_world_and_node_and_avoid_the_hosts_addresses() {
        let mut seen = std::collections::BTreeSet::new();
        for world in [1, 2, 15, 16, 17, 249, 250, 3_839] {
            for node in 1..=MAX_WORLD_NODES {
                let ip = node_ip(world, node);
                let octets: Vec<u64> = ip.split('.').map(|o| o.parse().unwrap()).collect();
                assert_eq!(octets[..2], [10, 77], "{ip}");
                assert!((16..=255).contains(&octets[2]), "{ip}");
                assert!((1..=254).contains(&octets[3]), "{ip}");
                assert!(seen.insert(ip.clone()), "{ip} allocated twice");
            }
        }
        assert_eq!(seen.len(), 8 * MAX_WORLD_NODES);
        assert_eq!(
            world_addresses("w17").first().map(String::as_str),
            Some("10.77.17.17")
        );
    }
}
