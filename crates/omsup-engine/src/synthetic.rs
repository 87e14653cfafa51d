//! Synthetic plan files and observed worlds: no Docker, no database, just data. For the engine's
//! tests, the renderers' snapshot tests, and `cargo xtask bench` (100 regions × 10 nodes).
//!
//! Every node runs `oms:feature_<version>-ce` with the four documented mounts under
//! `/data/<ip>/...`, `OMS_HOST_IP` set, and a config.yaml whose `cm_nodes` lists its region's
//! nodes (and whose databases, region and meta address are the plan's); the meta database is at `<version>` with HA on; the operator side has the package and
//! a large backup directory.

use std::collections::BTreeMap;

use omsup_model::PlanFile;

use crate::container::{ContainerSettings, ImageDefaults, RestartPolicy, Ulimit};
use crate::observed::{
    Bind, ClientCheck, DockerReach, MetaDbReach, ObservedBackupDir, ObservedClients,
    ObservedContainer, ObservedDatabase, ObservedDocker, ObservedMetaDb, ObservedNode,
    ObservedOmsConfig, ObservedOperatorSide, ObservedPackage, ObservedWorld,
};

/// The TOML text of a plan with `regions` regions (`r0`, `r1`, ...) of `nodes` nodes each
/// (`10.<region>.<node>.2`), target 4.2.9-CE. Parse it with the `toml` crate or `lint_source`.
pub fn plan_toml(regions: usize, nodes: usize) -> String {
    let mut text = String::from(
        "[deployment]\nname = \"t\"\ntarget_version = \"4.2.9-CE\"\n[image]\npackage = \"/p/oms.tar\"\ntag = \"oms:feature_4.2.9-ce\"\n\
         [meta_db]\nhost = \"10.0.0.1\"\nport = 2883\nuser = \"u\"\npassword_env = \"P\"\nrm = \"rm\"\ncm = \"cm\"\n[backup]\ndir = \"/b\"\n",
    );
    for r in 0..regions {
        text.push_str(&format!("[[region]]\nname = \"r{r}\"\ncm_hb = \"hb{r}\"\n"));
        for n in 0..nodes {
            text.push_str(&format!("[[region.node]]\nip = \"10.{r}.{n}.2\"\ndocker = \"unix:///run/n{n}.sock\"\ncontainer = \"oms\"\n"));
        }
    }
    text
}

/// A running OMS container `oms` on `version` at `ip`, with the documented mounts under
/// `/data/<ip>/...` and a config.yaml listing `cm_nodes`.
pub fn container(ip: &str, version: &str, cm_nodes: Vec<String>) -> ObservedContainer {
    ObservedContainer {
        id: format!("id-{ip}"),
        name: "oms".into(),
        image: format!("oms:feature_{version}-ce"),
        image_id: format!("sha256:{version}"),
        version: version.parse().ok(),
        running: true,
        status: "running".into(),
        binds: [
            "/home/admin/conf/config.yaml",
            "/home/admin/logs",
            "/home/ds/store",
            "/home/ds/run",
        ]
        .iter()
        .map(|inside| Bind {
            host: format!("/data/{ip}{inside}"),
            container: (*inside).into(),
            read_only: false,
        })
        .collect(),
        env: BTreeMap::from([
            ("OMS_HOST_IP".into(), ip.into()),
            ("OMS_VERSION".into(), format!("{version}-CE")),
            ("TZ".into(), "Asia/Shanghai".into()),
        ]),
        labels: BTreeMap::from([("team".into(), "dba".into())]),
        config: Some(ObservedOmsConfig {
            cm_nodes,
            cm_region: None,
            drc_rm_db: None,
            drc_cm_db: None,
            drc_cm_heartbeat_db: None,
            oms_meta_host: None,
            oms_meta_port: None,
            oms_meta_user: None,
            nginx_server_port: Some(8089),
            sha256: "x".into(),
        }),
        settings: ContainerSettings {
            tty: true,
            open_stdin: true,
            network_mode: Some("host".into()),
            privileged: true,
            ulimits: vec![Ulimit {
                name: "nproc".into(),
                soft: 65535,
                hard: 65535,
            }],
            restart_policy: Some(RestartPolicy {
                name: "always".into(),
                maximum_retry_count: 0,
            }),
            ..ContainerSettings::default()
        },
        image_defaults: Some(ImageDefaults {
            env: BTreeMap::from([("OMS_VERSION".into(), format!("{version}-CE"))]),
            labels: BTreeMap::new(),
        }),
    }
}

/// [`container`] whose config.yaml names what `plan` names: its databases, the region and the
/// meta database's address.
fn container_of(
    plan: &PlanFile,
    region: &omsup_model::plan::Region,
    ip: &str,
    version: &str,
    cm_nodes: Vec<String>,
) -> ObservedContainer {
    let mut container = container(ip, version, cm_nodes);
    if let Some(config) = container.config.as_mut() {
        config.drc_rm_db = Some(plan.meta_db.rm.clone());
        config.drc_cm_db = Some(plan.meta_db.cm.clone());
        config.drc_cm_heartbeat_db = Some(region.cm_hb.clone());
        config.cm_region = Some(region.name.clone());
        config.oms_meta_host = Some(plan.meta_db.host.clone());
        config.oms_meta_port = Some(plan.meta_db.port);
        config.oms_meta_user = Some(plan.meta_db.user.clone());
    }
    container
}

/// Every node of `plan` on `version`, sharing cm_nodes per region, HA on, DB at `version`.
pub fn world(plan: &PlanFile, version: &str) -> ObservedWorld {
    let nodes = plan
        .regions
        .iter()
        .flat_map(|region| {
            let ips: Vec<String> = region.nodes.iter().map(|n| n.ip.clone()).collect();
            region.nodes.iter().map(move |node| ObservedNode {
                ip: node.ip.clone(),
                docker: DockerReach::Reachable(Box::new(ObservedDocker {
                    api_version: "1.41".into(),
                    container: Some(ObservedContainer {
                        name: node.container.clone(),
                        ..container_of(plan, region, &node.ip, version, ips.clone())
                    }),
                    kept_containers: vec![],
                    target_image_id: None,
                    package: None,
                    data_root_free_bytes: Some(1 << 40),
                })),
            })
        })
        .collect();
    let mut databases = BTreeMap::new();
    for name in [plan.meta_db.rm.clone(), plan.meta_db.cm.clone()]
        .into_iter()
        .chain(plan.regions.iter().map(|r| r.cm_hb.clone()))
    {
        databases.insert(
            name,
            ObservedDatabase {
                exists: true,
                size_bytes: 1 << 20,
                heartbeat_rows: Some(5000),
            },
        );
    }
    ObservedWorld {
        nodes,
        meta_db: MetaDbReach::Reachable(Box::new(ObservedMetaDb {
            oms_version: version.parse().ok(),
            ha_config: Some(
                serde_json::json!({"enable": true, "perceiveStoreClientCheckpoint": false, "refetchStoreIntervalMin": 30}),
            ),
            hosts: BTreeMap::new(),
            databases,
            column_statistics: false,
        })),
        operator: ObservedOperatorSide {
            package: ObservedPackage {
                exists: true,
                readable: true,
                size_bytes: 1 << 30,
            },
            backup_dir: ObservedBackupDir {
                exists: true,
                writable: true,
                free_bytes: 1 << 40,
            },
            clients: ObservedClients {
                dump: ClientCheck::Works {
                    client: "/usr/bin/mariadb-dump".into(),
                    version: None,
                    adaptations: vec![],
                },
                restore: ClientCheck::Works {
                    client: "/usr/bin/mariadb".into(),
                    version: None,
                    adaptations: vec![],
                },
            },
        },
    }
}

/// Node `ip`'s observed daemon, to change it.
///
/// # Panics
/// When the world has no node `ip` or its daemon is unreachable (a bug in the caller).
pub fn node_mut<'w>(world: &'w mut ObservedWorld, ip: &str) -> &'w mut ObservedDocker {
    let node = world
        .nodes
        .iter_mut()
        .find(|n| n.ip == ip)
        .unwrap_or_else(|| panic!("no node {ip}"));
    match &mut node.docker {
        DockerReach::Reachable(docker) => docker,
        DockerReach::Unreachable { .. } => panic!("node {ip} is unreachable"),
    }
}

/// What `omsup init` sees on a node of [`container`]: config.yaml in region `region` (heartbeat
/// database `cm_hb_428_<region>`, rm `rm_428`, cm `cm_428`), the documented host options, and
/// the meta database at `10.0.0.1:2883` as `oms_meta_user`.
pub fn node_seen(ip: &str, region: &str, cm_nodes: &[&str]) -> crate::init::NodeSeen {
    let mut container = container(
        ip,
        "4.2.8",
        cm_nodes.iter().map(|s| (*s).to_owned()).collect(),
    );
    if let Some(config) = container.config.as_mut() {
        config.cm_region = Some(region.into());
        config.drc_cm_heartbeat_db = Some(format!("cm_hb_428_{}", region.replace('-', "_")));
        config.drc_rm_db = Some("rm_428".into());
        config.drc_cm_db = Some("cm_428".into());
    }
    crate::init::NodeSeen {
        docker: format!("ssh://admin@{ip}"),
        tls: None,
        ssh: None,
        container,
        options: omsup_model::plan::ContainerOptions {
            network: Some("host".into()),
            privileged: Some(true),
            pids_limit: Some(-1),
            ulimit_nproc: Some(65535),
            ..Default::default()
        },
        meta: crate::init::MetaConnection {
            host: Some("10.0.0.1".into()),
            port: Some(2883),
            user: Some("oms_meta_user".into()),
        },
    }
}
