//! `omsup init`'s pure part: a [`PlanFile`] built from what was seen on each given node (its
//! OMS container, that container's config.yaml and host options), and the cross-checks that
//! keep a wrong plan from being written.
//!
//! Nodes are grouped into regions by (`cm_region`, `drc_cm_heartbeat_db`), in the order the
//! nodes were given. Deployment-wide keys (meta database host, port, user, `drc_rm_db`,
//! `drc_cm_db`) must agree on every node; a region's `cm_nodes` must be the same on every node
//! (init once per region) or each node must list only itself (init once per node). Nothing is
//! merged: a disagreement is an [`InitFinding`] and no plan is built. A node that a `cm_nodes`
//! list names but that was not given is a finding too: a plan without it would upgrade half a
//! region. The meta password is never read here; the plan names where it comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use omsup_model::OmsVersion;
use omsup_model::plan::{
    Backup, ContainerOptions, Deployment, HaPolicy, Image, MetaDb, Mounts, Node, PlanFile, Region,
    SshFiles, Timeouts, TlsFiles,
};

use crate::diff::FIXED_MOUNTS;
use crate::observed::ObservedContainer;

pub use crate::container::{HTTPS_CERT_MOUNT, HTTPS_KEY_MOUNT};

/// How the meta database is reached, as config.yaml says (`oms_meta_host`, `oms_meta_port`,
/// `oms_meta_user`). Never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaConnection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
}

/// One given node as it was seen: the endpoint it was reached through and its OMS container.
#[derive(Debug, Clone)]
pub struct NodeSeen {
    /// The Docker endpoint as given (`unix://`, `tcp://`, `ssh://`).
    pub docker: String,
    pub tls: Option<TlsFiles>,
    /// SSH client files for an `ssh://` endpoint (written into the plan as they were used).
    pub ssh: Option<SshFiles>,
    /// The OMS container, with its config.yaml keys.
    pub container: ObservedContainer,
    /// `network`, `privileged`, `pids_limit`, `ulimit_nproc` as the container runs with them.
    pub options: ContainerOptions,
    /// config.yaml's meta database keys.
    pub meta: MetaConnection,
}

/// Where the plan says the meta password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

/// What the operator chose on the command line (everything not read off the deployment).
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The deployment's name; `oms-<first region>` when not given.
    pub name: Option<String>,
    pub target_version: OmsVersion,
    pub image_package: PathBuf,
    /// The tag the package yields; `oms:feature_<target>-ce` when not given.
    pub image_tag: Option<String>,
    pub backup_dir: PathBuf,
    pub password: PasswordSource,
}

/// Why no plan was built. Each names what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitFinding {
    /// A node's container has no `OMS_HOST_IP`.
    NoHostIp { docker: String, container: String },
    /// A node's config.yaml has no value for `key` (or was not readable at all).
    MissingKey { node: String, key: &'static str },
    /// Two given endpoints reach the same node.
    DuplicateNode { ip: String },
    /// A key that must agree differs; `values` is each node with its value.
    Disagreement {
        /// `deployment` or `region <name>`.
        scope: String,
        key: &'static str,
        values: Vec<(String, String)>,
    },
    /// `cm_nodes` of the given nodes name a node that was not given.
    NodeNotGiven { ip: String, named_by: Vec<String> },
    /// The cm database's `host` table lists a node that was not given.
    HostNotGiven { ip: String, status: String },
}

impl InitFinding {
    pub fn message(&self) -> String {
        match self {
            Self::NoHostIp { docker, container } => format!(
                "container `{container}` at `{docker}` has no `OMS_HOST_IP`: the node's IP is unknown"
            ),
            Self::MissingKey { node, key } => {
                format!("node {node}: config.yaml has no `{key}`")
            }
            Self::DuplicateNode { ip } => {
                format!("node {ip} was given twice (two endpoints reach the same node)")
            }
            Self::Disagreement { scope, key, values } => format!(
                "{scope}: `{key}` disagrees across nodes ({})",
                values
                    .iter()
                    .map(|(node, value)| format!("{node}: {value}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Self::NodeNotGiven { ip, named_by } => format!(
                "node {ip} is in `cm_nodes` of {} but was not given with `--node`",
                named_by.join(", ")
            ),
            Self::HostNotGiven { ip, status } => format!(
                "node {ip} is in the cm database's `host` table ({status}) but was not given with `--node`"
            ),
        }
    }

    /// The node a finding says is missing from the command line, if any.
    pub fn missing_node(&self) -> Option<&str> {
        match self {
            Self::NodeNotGiven { ip, .. } | Self::HostNotGiven { ip, .. } => Some(ip),
            _ => None,
        }
    }
}

/// Nodes the cm database's `host` table (ip → status) lists that `plan` does not have.
pub fn hosts_not_given(plan: &PlanFile, hosts: &BTreeMap<String, String>) -> Vec<InitFinding> {
    let given: BTreeSet<&str> = plan.nodes().map(|(_, node)| node.ip.as_str()).collect();
    hosts
        .iter()
        .filter(|(ip, _)| !given.contains(ip.as_str()))
        .map(|(ip, status)| InitFinding::HostNotGiven {
            ip: ip.clone(),
            status: status.clone(),
        })
        .collect()
}

/// (`cm_region`, `drc_cm_heartbeat_db`): what makes nodes one region.
type RegionKey = (String, String);

/// The plan, or every reason it cannot be written.
pub fn build_plan(nodes: &[NodeSeen], options: &InitOptions) -> Result<PlanFile, Vec<InitFinding>> {
    let mut findings = Vec::new();
    // (ip, node) for every node whose IP is known.
    let mut named: Vec<(String, &NodeSeen)> = Vec::new();
    for node in nodes {
        match node
            .container
            .env
            .get("OMS_HOST_IP")
            .filter(|ip| !ip.is_empty())
        {
            Some(ip) if named.iter().any(|(seen, _)| seen == ip) => {
                findings.push(InitFinding::DuplicateNode { ip: ip.clone() });
            }
            Some(ip) => named.push((ip.clone(), node)),
            None => findings.push(InitFinding::NoHostIp {
                docker: node.docker.clone(),
                container: node.container.name.clone(),
            }),
        }
    }

    let config_key = |ip: &str,
                      node: &NodeSeen,
                      key: &'static str,
                      findings: &mut Vec<InitFinding>|
     -> Option<String> {
        let config = node.container.config.as_ref();
        let value = match key {
            "cm_region" => config.and_then(|c| c.cm_region.clone()),
            "drc_cm_heartbeat_db" => config.and_then(|c| c.drc_cm_heartbeat_db.clone()),
            "drc_rm_db" => config.and_then(|c| c.drc_rm_db.clone()),
            "drc_cm_db" => config.and_then(|c| c.drc_cm_db.clone()),
            "oms_meta_host" => node.meta.host.clone(),
            "oms_meta_port" => node.meta.port.map(|p| p.to_string()),
            "oms_meta_user" => node.meta.user.clone(),
            _ => None,
        };
        if value.is_none() {
            findings.push(InitFinding::MissingKey {
                node: ip.to_owned(),
                key,
            });
        }
        value
    };

    // Deployment-wide keys: one value on every node.
    let mut deployment_values: BTreeMap<&'static str, String> = BTreeMap::new();
    for key in [
        "oms_meta_host",
        "oms_meta_port",
        "oms_meta_user",
        "drc_rm_db",
        "drc_cm_db",
    ] {
        let values: Vec<(String, String)> = named
            .iter()
            .filter_map(|(ip, node)| {
                config_key(ip, node, key, &mut findings).map(|value| (ip.clone(), value))
            })
            .collect();
        let distinct: BTreeSet<&String> = values.iter().map(|(_, v)| v).collect();
        match distinct.len() {
            0 => {}
            1 => {
                deployment_values.insert(key, values[0].1.clone());
            }
            _ => findings.push(InitFinding::Disagreement {
                scope: "deployment".into(),
                key,
                values,
            }),
        }
    }

    // Regions by (cm_region, drc_cm_heartbeat_db), in the order nodes were given.
    let mut regions: Vec<(RegionKey, Vec<(String, &NodeSeen)>)> = Vec::new();
    for (ip, node) in &named {
        let region = config_key(ip, node, "cm_region", &mut findings);
        let cm_hb = config_key(ip, node, "drc_cm_heartbeat_db", &mut findings);
        let (Some(region), Some(cm_hb)) = (region, cm_hb) else {
            continue;
        };
        let key = (region, cm_hb);
        match regions.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((ip.clone(), *node)),
            None => regions.push((key, vec![(ip.clone(), *node)])),
        }
    }
    // One region name with two heartbeat databases is two deployments mixed up.
    let mut by_name: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for ((name, cm_hb), members) in &regions {
        for (ip, _) in members {
            by_name
                .entry(name.as_str())
                .or_default()
                .push((ip.clone(), cm_hb.clone()));
        }
    }
    for (name, values) in by_name {
        let distinct: BTreeSet<&String> = values.iter().map(|(_, v)| v).collect();
        if distinct.len() > 1 {
            findings.push(InitFinding::Disagreement {
                scope: format!("region {name}"),
                key: "drc_cm_heartbeat_db",
                values,
            });
        }
    }

    // cm_nodes: within a region the same list everywhere, or each node only itself.
    for ((name, _), members) in &regions {
        let lists: Vec<(String, Vec<String>)> = members
            .iter()
            .map(|(ip, node)| {
                let mut list = node
                    .container
                    .config
                    .as_ref()
                    .map(|c| c.cm_nodes.clone())
                    .unwrap_or_default();
                list.sort();
                (ip.clone(), list)
            })
            .collect();
        let shared = lists.windows(2).all(|pair| pair[0].1 == pair[1].1);
        let each_itself = lists
            .iter()
            .all(|(ip, list)| list == std::slice::from_ref(ip));
        if !(shared || each_itself) {
            findings.push(InitFinding::Disagreement {
                scope: format!("region {name}"),
                key: "cm_nodes",
                values: lists
                    .into_iter()
                    .map(|(ip, list)| (ip, format!("[{}]", list.join(", "))))
                    .collect(),
            });
        }
    }

    // Nodes named by cm_nodes but not given.
    let given: BTreeSet<&str> = named.iter().map(|(ip, _)| ip.as_str()).collect();
    let mut not_given: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (ip, node) in &named {
        for listed in node.container.config.iter().flat_map(|c| c.cm_nodes.iter()) {
            if !given.contains(listed.as_str()) {
                not_given
                    .entry(listed.clone())
                    .or_default()
                    .push(ip.clone());
            }
        }
    }
    findings.extend(
        not_given
            .into_iter()
            .map(|(ip, named_by)| InitFinding::NodeNotGiven { ip, named_by }),
    );

    if !findings.is_empty() || named.is_empty() {
        return Err(findings);
    }

    let first = named[0].1;
    let container = first.options.clone();
    let mounts_of = |node: &NodeSeen| -> Option<Mounts> {
        let host = |inside: &str| {
            node.container
                .binds
                .iter()
                .find(|b| b.container == inside)
                .map(|b| PathBuf::from(&b.host))
        };
        let [config, logs, store, run] = FIXED_MOUNTS.map(|(_, inside)| host(inside));
        Some(Mounts {
            config: config?,
            logs: logs?,
            store: store?,
            run: run?,
        })
    };
    let all_mounts: Vec<Option<Mounts>> = named.iter().map(|(_, n)| mounts_of(n)).collect();
    let shared_mounts = all_mounts.windows(2).all(|pair| pair[0] == pair[1]);
    let https = |node: &NodeSeen, inside: &str| {
        node.container
            .binds
            .iter()
            .find(|b| b.container == inside)
            .map(|b| PathBuf::from(&b.host))
    };
    let mut container = ContainerOptions {
        https_cert: https(first, HTTPS_CERT_MOUNT),
        https_key: https(first, HTTPS_KEY_MOUNT),
        ..container
    };
    container.env.clear();

    let plan_regions: Vec<Region> = regions
        .iter()
        .map(|((name, cm_hb), members)| Region {
            name: name.clone(),
            cm_hb: cm_hb.clone(),
            nodes: members
                .iter()
                .map(|(ip, node)| {
                    let own = ContainerOptions {
                        https_cert: https(node, HTTPS_CERT_MOUNT),
                        https_key: https(node, HTTPS_KEY_MOUNT),
                        env: BTreeMap::new(),
                        ..node.options.clone()
                    };
                    Node {
                        ip: ip.clone(),
                        docker: node.docker.clone(),
                        tls: node.tls.clone(),
                        ssh: node.ssh.clone(),
                        container: node.container.name.clone(),
                        container_overrides: overrides(&container, &own),
                        mounts: if shared_mounts { None } else { mounts_of(node) },
                    }
                })
                .collect(),
        })
        .collect();

    let versions: BTreeSet<Option<OmsVersion>> =
        named.iter().map(|(_, n)| n.container.version).collect();
    let current_version = match versions.into_iter().collect::<Vec<_>>().as_slice() {
        [Some(version)] => Some(version.to_string()),
        _ => None,
    };
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| default_name(&regions[0].0.0));
    let (password_env, password_file) = match &options.password {
        PasswordSource::Env(variable) => (Some(variable.clone()), None),
        PasswordSource::File(path) => (None, Some(path.clone())),
    };
    Ok(PlanFile {
        deployment: Deployment {
            name,
            target_version: options.target_version.to_string(),
            current_version,
        },
        image: Image {
            package: options.image_package.clone(),
            package_on: omsup_model::plan::PackageLocation::Operator,
            tag: options
                .image_tag
                .clone()
                .unwrap_or_else(|| default_image_tag(options.target_version)),
        },
        meta_db: MetaDb {
            host: deployment_values["oms_meta_host"].clone(),
            port: deployment_values["oms_meta_port"]
                .parse()
                .expect("read as a port number"),
            user: deployment_values["oms_meta_user"].clone(),
            password_env,
            password_file,
            password: None,
            rm: deployment_values["drc_rm_db"].clone(),
            cm: deployment_values["drc_cm_db"].clone(),
        },
        backup: Backup {
            dir: options.backup_dir.clone(),
            dump_command: None,
        },
        timeouts: Timeouts::default(),
        ha: HaPolicy::default(),
        container,
        health: Default::default(),
        mounts: if shared_mounts {
            all_mounts[0].clone()
        } else {
            None
        },
        regions: plan_regions,
        state: Default::default(),
        rehearsal: None,
    })
}

/// The fields of `own` that differ from `base`, or `None` when none do.
fn overrides(base: &ContainerOptions, own: &ContainerOptions) -> Option<ContainerOptions> {
    fn differing<T: Clone + PartialEq>(base: &Option<T>, own: &Option<T>) -> Option<T> {
        (base != own).then(|| own.clone()).flatten()
    }
    let result = ContainerOptions {
        network: differing(&base.network, &own.network),
        privileged: differing(&base.privileged, &own.privileged),
        pids_limit: differing(&base.pids_limit, &own.pids_limit),
        ulimit_nproc: differing(&base.ulimit_nproc, &own.ulimit_nproc),
        https_cert: differing(&base.https_cert, &own.https_cert),
        https_key: differing(&base.https_key, &own.https_key),
        env: BTreeMap::new(),
    };
    (result != ContainerOptions::default()).then_some(result)
}

/// `oms-<region>`, with characters a deployment name may not hold replaced by `-`.
pub fn default_name(region: &str) -> String {
    let cleaned: String = region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("oms-{cleaned}");
    name.truncate(64);
    name
}

/// `oms:feature_4.2.9-ce`, the tag OMS packages load as.
pub fn default_image_tag(version: OmsVersion) -> String {
    format!("oms:feature_{}-ce", version.numeric())
}

/// Whether `container` is a candidate for a node's OMS container when no name is given: it
/// mounts every fixed OMS path and is not one omsup kept for rollback (`<name>-omsup-<v>`).
pub fn is_oms_candidate(container: &ObservedContainer) -> bool {
    let mounts_all = FIXED_MOUNTS
        .iter()
        .all(|(_, inside)| container.binds.iter().any(|b| b.container == *inside));
    mounts_all && !container.name.contains("-omsup-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic;

    use synthetic::node_seen as seen;

    fn options() -> InitOptions {
        InitOptions {
            name: None,
            target_version: "4.2.9".parse().unwrap(),
            image_package: "/data/pkgs/oms-4.2.9-ce.tar".into(),
            image_tag: None,
            backup_dir: "/var/backups/omsup".into(),
            password: PasswordSource::Env("OMSUP_META_PASSWORD".into()),
        }
    }

    #[test]
    fn only_containers_with_every_oms_mount_and_not_kept_are_candidates() {
        let oms = synthetic::container("10.0.0.2", "4.2.8", vec![]);
        assert!(is_oms_candidate(&oms));
        let mut other = oms.clone();
        other.binds.retain(|b| b.container != "/home/ds/store");
        assert!(!is_oms_candidate(&other), "one fixed mount missing");
        let kept = ObservedContainer {
            name: "oms-omsup-4.2.8".into(),
            ..oms
        };
        assert!(!is_oms_candidate(&kept), "kept for rollback");
    }

    #[test]
    fn two_regions_are_grouped_and_per_node_mounts_kept() {
        let nodes = [
            seen("10.0.0.2", "hz", &["10.0.0.2", "10.0.0.3"]),
            seen("10.0.0.3", "hz", &["10.0.0.3", "10.0.0.2"]),
            seen("10.0.1.2", "sh", &["10.0.1.2"]),
            seen("10.0.1.3", "sh", &["10.0.1.3"]),
        ];
        let plan = build_plan(&nodes, &options()).unwrap();
        let regions: Vec<(&str, &str, Vec<&str>)> = plan
            .regions
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.cm_hb.as_str(),
                    r.nodes.iter().map(|n| n.ip.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            regions,
            [
                ("hz", "cm_hb_428_hz", vec!["10.0.0.2", "10.0.0.3"]),
                ("sh", "cm_hb_428_sh", vec!["10.0.1.2", "10.0.1.3"]),
            ]
        );
        assert_eq!(plan.deployment.name, "oms-hz");
        assert_eq!(plan.deployment.target_version, "4.2.9-CE");
        assert_eq!(plan.deployment.current_version.as_deref(), Some("4.2.8-CE"));
        assert_eq!(plan.image.tag, "oms:feature_4.2.9-ce");
        assert_eq!(plan.meta_db.port, 2883);
        assert_eq!(
            plan.meta_db.password_env.as_deref(),
            Some("OMSUP_META_PASSWORD")
        );
        // Synthetic containers mount `/data/<ip>/...`: different per node.
        assert_eq!(plan.mounts, None);
        let first = &plan.regions[0].nodes[0];
        assert_eq!(
            first.mounts.as_ref().map(|m| m.store.clone()),
            Some("/data/10.0.0.2/home/ds/store".into())
        );
        assert_eq!(first.container_overrides, None);
    }

    #[test]
    fn a_node_named_by_cm_nodes_but_not_given_is_reported() {
        let nodes = [seen("10.0.0.2", "hz", &["10.0.0.2", "10.0.0.3"])];
        let findings = build_plan(&nodes, &options()).unwrap_err();
        assert_eq!(
            findings,
            [InitFinding::NodeNotGiven {
                ip: "10.0.0.3".into(),
                named_by: vec!["10.0.0.2".into()]
            }]
        );
        assert!(findings[0].message().contains("10.0.0.3"));
        assert_eq!(findings[0].missing_node(), Some("10.0.0.3"));
    }

    #[test]
    fn hosts_the_cm_database_lists_but_not_given_are_reported() {
        let nodes = [seen("10.0.0.2", "hz", &["10.0.0.2"])];
        let plan = build_plan(&nodes, &options()).unwrap();
        let hosts = BTreeMap::from([
            ("10.0.0.2".to_owned(), "ONLINE".to_owned()),
            ("10.0.0.4".to_owned(), "ONLINE".to_owned()),
        ]);
        let findings = hosts_not_given(&plan, &hosts);
        assert_eq!(
            findings,
            [InitFinding::HostNotGiven {
                ip: "10.0.0.4".into(),
                status: "ONLINE".into()
            }]
        );
        assert!(findings[0].message().contains("`host` table (ONLINE)"));
    }

    #[test]
    fn disagreeing_configs_are_reported_not_merged() {
        let mut other = seen("10.0.0.3", "hz", &["10.0.0.3"]);
        other.meta.port = Some(3306);
        let nodes = [seen("10.0.0.2", "hz", &["10.0.0.2", "10.0.0.3"]), other];
        let findings = build_plan(&nodes, &options()).unwrap_err();
        let keys: Vec<&str> = findings
            .iter()
            .map(|f| match f {
                InitFinding::Disagreement { key, .. } => *key,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(keys, ["oms_meta_port", "cm_nodes"]);
        assert!(
            findings[0]
                .message()
                .contains("10.0.0.2: 2883; 10.0.0.3: 3306")
        );
    }

    #[test]
    fn a_node_with_other_options_gets_only_the_differing_overrides() {
        let mut other = seen("10.0.0.3", "hz", &["10.0.0.2", "10.0.0.3"]);
        other.options.privileged = Some(false);
        let nodes = [seen("10.0.0.2", "hz", &["10.0.0.2", "10.0.0.3"]), other];
        let plan = build_plan(&nodes, &options()).unwrap();
        assert_eq!(
            plan.regions[0].nodes[1].container_overrides,
            Some(ContainerOptions {
                privileged: Some(false),
                ..Default::default()
            })
        );
    }
}
