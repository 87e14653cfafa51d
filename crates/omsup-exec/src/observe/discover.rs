//! `omsup init`'s read-only look at one Docker daemon: find the OMS container (by name, or by
//! the fixed OMS mount points when no name is given), and read what a plan file needs from it:
//! its inspect fields, host options, config.yaml keys and the meta database's host, port and
//! user (never the password). Reuses the observer's connection, inspect and config.yaml code.

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::ListContainersOptionsBuilder;
use omsup_engine::init::{MetaConnection, NodeSeen, is_oms_candidate};
use omsup_model::DockerEndpoint;
use omsup_model::plan::{ContainerOptions, Node, SshFiles, TlsFiles};

use super::config_yaml::{ConfigYamlError, parse_config_yaml};
use super::docker::{connect_docker, container_fields, download_config_yaml, inspect_optional};
use super::{ConnectCause, READ_TIMEOUT, within};

/// Why one endpoint gave no OMS container. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot parse the Docker endpoint `{endpoint}`")]
    Endpoint {
        endpoint: String,
        #[source]
        source: omsup_model::endpoint::EndpointParseError,
    },
    #[error("cannot reach the Docker daemon at `{endpoint}`")]
    Unreachable {
        endpoint: String,
        #[source]
        source: ConnectCause<bollard::errors::Error>,
    },
    #[error("cannot {what} at `{endpoint}`")]
    Read {
        endpoint: String,
        what: String,
        #[source]
        source: ConnectCause<bollard::errors::Error>,
    },
    #[error("no container named `{container}` at `{endpoint}`")]
    NoSuchContainer { endpoint: String, container: String },
    #[error(
        "no running OMS container at `{endpoint}` (none mounts /home/admin/conf/config.yaml, /home/admin/logs, /home/ds/store and /home/ds/run)"
    )]
    NoCandidate { endpoint: String },
    #[error("several OMS containers at `{endpoint}`: {}", .candidates.join(", "))]
    SeveralCandidates {
        endpoint: String,
        candidates: Vec<String>,
    },
    #[error("cannot read config.yaml of container `{container}` at `{endpoint}`")]
    ConfigYaml {
        endpoint: String,
        container: String,
        #[source]
        source: ConfigYamlError,
    },
}

impl DiscoverError {
    pub fn hint(&self) -> String {
        match self {
            Self::Endpoint { .. } => {
                "a Docker endpoint is `unix:///path`, `tcp://host:port` or `ssh://user@host`".into()
            }
            Self::Unreachable { endpoint, .. } => {
                format!("is the daemon running and reachable? try `docker -H {endpoint} info`")
            }
            Self::Read { .. } => "the daemon answered but refused a read; check its logs".into(),
            Self::NoSuchContainer { endpoint, .. } => format!(
                "`docker -H {endpoint} ps` lists the containers; give the OMS one with `--container`"
            ),
            Self::NoCandidate { endpoint } => format!(
                "`docker -H {endpoint} ps` lists the containers; name the OMS one with `--container`"
            ),
            Self::SeveralCandidates { .. } => {
                "name the deployment's container with `--container NAME`".into()
            }
            Self::ConfigYaml { .. } => {
                "the OMS container mounts its config at `/home/admin/conf/config.yaml`; check that mount".into()
            }
        }
    }
}

/// Reads one node: the OMS container at `endpoint` (named `container`, or found by its mounts).
pub async fn discover_node(
    endpoint: &str,
    tls: Option<&TlsFiles>,
    ssh: Option<&SshFiles>,
    container: Option<&str>,
) -> Result<NodeSeen, DiscoverError> {
    let parsed: DockerEndpoint = endpoint.parse().map_err(|source| DiscoverError::Endpoint {
        endpoint: endpoint.to_owned(),
        source,
    })?;
    // connect_docker reads only `tls` and `ssh` off the node.
    let node = Node {
        ip: String::new(),
        docker: endpoint.to_owned(),
        tls: tls.cloned(),
        ssh: ssh.cloned(),
        container: String::new(),
        container_overrides: None,
        mounts: None,
    };
    let docker =
        connect_docker(&parsed, &node)
            .await
            .map_err(|source| DiscoverError::Unreachable {
                endpoint: endpoint.to_owned(),
                source,
            })?;
    let read_error = |what: String| {
        let endpoint = endpoint.to_owned();
        move |source| DiscoverError::Read {
            endpoint,
            what,
            source,
        }
    };
    let inspect = match container {
        Some(name) => inspect_optional(&docker, name)
            .await
            .map_err(read_error(format!("inspect container `{name}`")))?
            .ok_or_else(|| DiscoverError::NoSuchContainer {
                endpoint: endpoint.to_owned(),
                container: name.to_owned(),
            })?,
        None => find_by_mounts(&docker, endpoint).await?,
    };
    let fields = container_fields(&inspect, None);
    let bytes = download_config_yaml(&docker, &fields.name)
        .await
        .map_err(|source| DiscoverError::ConfigYaml {
            endpoint: endpoint.to_owned(),
            container: fields.name.clone(),
            source,
        })?;
    let config_error = |source| DiscoverError::ConfigYaml {
        endpoint: endpoint.to_owned(),
        container: fields.name.clone(),
        source,
    };
    let config = parse_config_yaml(&bytes).map_err(config_error)?;
    let meta = meta_connection(&config);
    Ok(NodeSeen {
        docker: endpoint.to_owned(),
        tls: tls.cloned(),
        ssh: ssh.cloned(),
        options: host_options(&inspect),
        container: omsup_engine::observed::ObservedContainer {
            config: Some(config),
            ..fields
        },
        meta,
    })
}

/// The one running container that mounts every fixed OMS path (kept ones left out).
async fn find_by_mounts(
    docker: &Docker,
    endpoint: &str,
) -> Result<ContainerInspectResponse, DiscoverError> {
    let read_error = |what: &str| {
        let endpoint = endpoint.to_owned();
        let what = what.to_owned();
        move |source| DiscoverError::Read {
            endpoint,
            what,
            source,
        }
    };
    let running = within(
        READ_TIMEOUT,
        docker.list_containers(Some(ListContainersOptionsBuilder::default().build())),
    )
    .await
    .map_err(read_error("list containers"))?;
    let mut candidates = Vec::new();
    for summary in running {
        let Some(id) = summary.id else { continue };
        let Some(inspect) = inspect_optional(docker, &id)
            .await
            .map_err(read_error("inspect a container"))?
        else {
            continue;
        };
        let fields = container_fields(&inspect, None);
        if is_oms_candidate(&fields) {
            candidates.push((fields.name, inspect));
        }
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    match candidates.len() {
        0 => Err(DiscoverError::NoCandidate {
            endpoint: endpoint.to_owned(),
        }),
        1 => Ok(candidates.remove(0).1),
        _ => Err(DiscoverError::SeveralCandidates {
            endpoint: endpoint.to_owned(),
            candidates: candidates.into_iter().map(|(name, _)| name).collect(),
        }),
    }
}

/// The options a new container must keep: network mode, privileged, pids limit, nproc.
fn host_options(inspect: &ContainerInspectResponse) -> ContainerOptions {
    let host = inspect.host_config.as_ref();
    ContainerOptions {
        network: host.and_then(|h| h.network_mode.clone()),
        privileged: Some(host.and_then(|h| h.privileged).unwrap_or(false)),
        // Docker treats 0 and -1 alike (unlimited), and some daemons report it as absent.
        pids_limit: Some(
            host.and_then(|h| h.pids_limit)
                .filter(|limit| *limit > 0)
                .unwrap_or(-1),
        ),
        ulimit_nproc: host
            .and_then(|h| h.ulimits.as_ref())
            .into_iter()
            .flatten()
            .find(|u| u.name.as_deref() == Some("nproc"))
            .and_then(|u| u.hard.or(u.soft))
            .and_then(|limit| u64::try_from(limit).ok()),
        ..Default::default()
    }
}

/// `oms_meta_host`, `oms_meta_port` and `oms_meta_user` (the password is not read), quoted or
/// not.
pub fn meta_connection(config: &omsup_engine::observed::ObservedOmsConfig) -> MetaConnection {
    MetaConnection {
        host: config.oms_meta_host.clone(),
        port: config.oms_meta_port,
        user: config.oms_meta_user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_are_read_quoted_or_not_and_never_the_password() {
        let plain = b"oms_meta_host: 10.0.0.1\noms_meta_port: 2883\noms_meta_user: oms\noms_meta_password: s3cret\n";
        let quoted = b"oms_meta_host: '10.0.0.1'\noms_meta_port: \"2883\"\noms_meta_user: \"oms\"\noms_meta_password: \"s3cret\"\n";
        for text in [&plain[..], &quoted[..]] {
            let meta = meta_connection(&parse_config_yaml(text).unwrap());
            assert_eq!(
                meta,
                MetaConnection {
                    host: Some("10.0.0.1".into()),
                    port: Some(2883),
                    user: Some("oms".into()),
                }
            );
            assert!(!format!("{meta:?}").contains("s3cret"));
        }
        let missing = meta_connection(&parse_config_yaml(b"drc_rm_db: rm\n").unwrap());
        assert_eq!(missing.port, None);
    }
}
