//! One node's Docker daemon, read-only: the OMS container (and the ones kept for rollback), the
//! target image, and config.yaml read through the archive API.

use std::collections::{BTreeMap, BTreeSet};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder,
};
use futures_util::TryStreamExt;
use omsup_engine::observed::{Bind, DockerReach, ObservedContainer, ObservedDocker, ObservedNode};
use omsup_model::plan::Node;
use omsup_model::{DockerEndpoint, OmsVersion, PlanFile};

use super::config_yaml::{MAX_CONFIG_BYTES, parse_config_yaml, single_file_from_tar};
use super::{CONNECT_TIMEOUT, ConnectCause, NodeObservation, ObserveError, READ_TIMEOUT, within};
use crate::observe::config_yaml::ConfigYamlError;

/// Where OMS reads its configuration inside the container.
pub const CONFIG_YAML_PATH: &str = "/home/admin/conf/config.yaml";
/// Label omsup may put on containers it keeps for rollback (the name is the primary mark).
pub const LABEL_KEPT_FOR_ROLLBACK: &str = "omsup.kept-for-rollback";

/// Connects to the daemon an endpoint names and negotiates the API version, within
/// [`CONNECT_TIMEOUT`]. Requests made later are bounded by [`READ_TIMEOUT`].
pub async fn connect_docker(
    endpoint: &DockerEndpoint,
    node: &Node,
) -> Result<Docker, ConnectCause<bollard::errors::Error>> {
    let request_timeout = READ_TIMEOUT.as_secs();
    let version = bollard::API_DEFAULT_VERSION;
    let docker = match endpoint {
        DockerEndpoint::Unix { path } => {
            Docker::connect_with_unix(&path.display().to_string(), request_timeout, version)
        }
        DockerEndpoint::Tcp { host, port } => {
            let address = format!("tcp://{host}:{port}");
            match &node.tls {
                Some(tls) => Docker::connect_with_ssl(
                    &address,
                    &tls.key,
                    &tls.cert,
                    &tls.ca,
                    request_timeout,
                    version,
                ),
                None => Docker::connect_with_http(&address, request_timeout, version),
            }
        }
        DockerEndpoint::Ssh { user, host, port } => Ok(crate::ssh::connect_with_ssh(
            crate::ssh::SshTarget::new(user.clone(), host.clone(), *port, node.ssh.as_ref()),
            request_timeout,
        )),
    }
    .map_err(ConnectCause::Failed)?;
    within(CONNECT_TIMEOUT, docker.negotiate_version()).await
}

pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Observes one node; never fails: an unreachable daemon is [`DockerReach::Unreachable`].
pub(crate) async fn observe_node(plan: &PlanFile, node: &Node) -> NodeObservation {
    let unreachable = |problem: ObserveError| {
        let observed = ObservedNode {
            ip: node.ip.clone(),
            docker: DockerReach::Unreachable {
                error: problem.cause_line(),
            },
        };
        (observed, vec![problem])
    };
    let endpoint: DockerEndpoint = match node.docker.parse() {
        Ok(endpoint) => endpoint,
        Err(source) => {
            return unreachable(ObserveError::DockerEndpoint {
                node: node.ip.clone(),
                endpoint: node.docker.clone(),
                source,
            });
        }
    };
    tracing::info!(node = %node.ip, endpoint = %node.docker, "observing the Docker daemon");
    let docker = match connect_docker(&endpoint, node).await {
        Ok(docker) => docker,
        Err(source) => {
            return unreachable(ObserveError::DockerUnreachable {
                node: node.ip.clone(),
                endpoint: node.docker.clone(),
                source: crate::link::connect_failure(&source, &endpoint),
            });
        }
    };
    match read_docker(&docker, plan, node).await {
        Ok((observed, problems)) => (
            ObservedNode {
                ip: node.ip.clone(),
                docker: DockerReach::Reachable(Box::new(observed)),
            },
            problems,
        ),
        Err(problem) => unreachable(problem),
    }
}

async fn read_docker(
    docker: &Docker,
    plan: &PlanFile,
    node: &Node,
) -> Result<(ObservedDocker, Vec<ObserveError>), ObserveError> {
    let read_error = |what: String| {
        let node = node.ip.clone();
        move |source| ObserveError::DockerRead { node, what, source }
    };
    let client_version = docker.client_version();
    let api_version = format!(
        "{}.{}",
        client_version.major_version, client_version.minor_version
    );
    let mut problems = Vec::new();

    let container = inspect_optional(docker, &node.container)
        .await
        .map_err(read_error(format!(
            "inspect container `{}`",
            node.container
        )))?;
    let container = match container {
        None => None,
        Some(inspect) => {
            let (observed, problem) = observed_container(docker, node, &inspect).await;
            problems.extend(problem);
            Some(observed)
        }
    };

    let kept_prefix = format!("{}-omsup-", node.container);
    let all = within(
        READ_TIMEOUT,
        docker.list_containers(Some(
            ListContainersOptionsBuilder::default().all(true).build(),
        )),
    )
    .await
    .map_err(read_error("list containers".into()))?;
    let mut kept_containers = Vec::new();
    for summary in all {
        let name = summary
            .names
            .as_deref()
            .and_then(|names| names.first())
            .map(|name| name.trim_start_matches('/').to_owned())
            .unwrap_or_default();
        let labelled = summary
            .labels
            .as_ref()
            .is_some_and(|labels| labels.contains_key(LABEL_KEPT_FOR_ROLLBACK));
        if !(name.starts_with(&kept_prefix) || labelled) || name == node.container {
            continue;
        }
        let Some(id) = summary.id else { continue };
        if let Some(inspect) = inspect_optional(docker, &id)
            .await
            .map_err(read_error(format!("inspect container `{name}`")))?
        {
            // Kept containers are stopped; their config is not needed.
            kept_containers.push(container_fields(&inspect, None));
        }
    }
    kept_containers.sort_by(|a, b| a.name.cmp(&b.name));

    let target_image_id = match within(READ_TIMEOUT, docker.inspect_image(&plan.image.tag)).await {
        Ok(image) => image.id,
        Err(ConnectCause::Failed(error)) if is_not_found(&error) => None,
        Err(source) => {
            return Err(read_error(format!("inspect image `{}`", plan.image.tag))(
                source,
            ));
        }
    };

    // Only needed when it will be loaded.
    let package = match target_image_id {
        None => crate::node_package::observe(plan, node).await,
        Some(_) => None,
    };
    let data_root_free_bytes = match container.as_ref().filter(|c| c.running) {
        Some(running) => super::node_space::data_root_free_bytes(docker, &running.name).await,
        None => None,
    };
    Ok((
        ObservedDocker {
            api_version,
            container,
            kept_containers,
            target_image_id,
            package,
            data_root_free_bytes,
        },
        problems,
    ))
}

pub(crate) async fn inspect_optional(
    docker: &Docker,
    name: &str,
) -> Result<Option<ContainerInspectResponse>, ConnectCause<bollard::errors::Error>> {
    match within(READ_TIMEOUT, docker.inspect_container(name, None)).await {
        Ok(inspect) => Ok(Some(inspect)),
        Err(ConnectCause::Failed(error)) if is_not_found(&error) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The OMS container with its config.yaml; a config that cannot be read is a problem, not a
/// failure of the whole node.
async fn observed_container(
    docker: &Docker,
    node: &Node,
    inspect: &ContainerInspectResponse,
) -> (ObservedContainer, Option<ObserveError>) {
    let name = inspect
        .name
        .as_deref()
        .unwrap_or(&node.container)
        .trim_start_matches('/')
        .to_owned();
    let (mut observed, problem) = match read_config_yaml(docker, &name).await {
        Ok(config) => (container_fields(inspect, Some(config)), None),
        Err(source) => {
            tracing::warn!(node = %node.ip, container = %name, "config.yaml could not be read");
            let problem = ObserveError::ConfigYaml {
                node: node.ip.clone(),
                container: name,
                source,
            };
            (container_fields(inspect, None), Some(problem))
        }
    };
    observed.image_defaults = image_defaults(docker, &observed).await;
    (observed, problem)
}

async fn read_config_yaml(
    docker: &Docker,
    container: &str,
) -> Result<omsup_engine::observed::ObservedOmsConfig, ConfigYamlError> {
    parse_config_yaml(&download_config_yaml(docker, container).await?)
}

/// config.yaml's bytes, read from `container` through Docker's archive API (never logged: it
/// holds the meta password).
pub(crate) async fn download_config_yaml(
    docker: &Docker,
    container: &str,
) -> Result<Vec<u8>, ConfigYamlError> {
    download_file(docker, container, CONFIG_YAML_PATH).await
}

/// The bytes of one file of `container` (at most [`MAX_CONFIG_BYTES`]), read through Docker's
/// archive API: works on a stopped container too, and over any transport.
pub(crate) async fn download_file(
    docker: &Docker,
    container: &str,
    path: &str,
) -> Result<Vec<u8>, ConfigYamlError> {
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let download = docker
        .download_from_container(container, Some(options))
        .try_fold(Vec::new(), |mut archive, chunk| async move {
            archive.extend_from_slice(&chunk);
            Ok(archive)
        });
    let archive = match tokio::time::timeout(super::READ_TIMEOUT, download).await {
        Ok(Ok(archive)) => archive,
        Ok(Err(_)) | Err(_) => return Err(ConfigYamlError::NotATar),
    };
    if archive.len() > MAX_CONFIG_BYTES + 4096 {
        return Err(ConfigYamlError::TooLarge(MAX_CONFIG_BYTES));
    }
    single_file_from_tar(&archive)
}

/// The inspect fields the engine needs.
pub(crate) fn container_fields(
    inspect: &ContainerInspectResponse,
    config: Option<omsup_engine::observed::ObservedOmsConfig>,
) -> ObservedContainer {
    let config_section = inspect.config.as_ref();
    let image = config_section
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let state = inspect.state.as_ref();
    let mut binds = BTreeSet::new();
    if let Some(host_binds) = inspect.host_config.as_ref().and_then(|h| h.binds.as_ref()) {
        for bind in host_binds {
            let mut parts = bind.split(':');
            let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
                continue;
            };
            let read_only = parts.any(|option| option.split(',').any(|o| o == "ro"));
            binds.insert(Bind {
                host: host.to_owned(),
                container: container.to_owned(),
                read_only,
            });
        }
    }
    for mount in inspect.mounts.iter().flatten() {
        if mount.typ.as_deref() != Some("bind") {
            continue;
        }
        let (Some(host), Some(container)) = (&mount.source, &mount.destination) else {
            continue;
        };
        let read_only = mount.rw == Some(false);
        let already = binds
            .iter()
            .any(|bind| &bind.host == host && &bind.container == container);
        if !already {
            binds.insert(Bind {
                host: host.clone(),
                container: container.clone(),
                read_only,
            });
        }
    }
    let env = crate::docker_spec::env_map(
        config_section
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten(),
    );
    let labels: BTreeMap<String, String> = config_section
        .and_then(|c| c.labels.as_ref())
        .map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    ObservedContainer {
        id: inspect.id.clone().unwrap_or_default(),
        name: inspect
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        version: running_version(&image, &env, &labels),
        image,
        image_id: inspect.image.clone().unwrap_or_default(),
        running: state.and_then(|s| s.running).unwrap_or(false),
        status: state
            .and_then(|s| s.status)
            .map_or_else(|| "unknown".into(), |status| status.to_string()),
        binds: binds.into_iter().collect(),
        env,
        labels,
        config,
        settings: crate::docker_spec::settings(inspect),
        image_defaults: None,
    }
}

/// What the container's image brings (`None` when it cannot be inspected: the diff then
/// refuses to plan a new container from it).
async fn image_defaults(
    docker: &Docker,
    container: &ObservedContainer,
) -> Option<omsup_engine::observed::ImageDefaults> {
    let image = within(READ_TIMEOUT, docker.inspect_image(&container.image_id))
        .await
        .ok()?;
    Some(crate::docker_spec::image_defaults(&image))
}

/// The version a container runs: off its image tag, else (an OMS started by image id has no
/// tag) the image's version label (`org.opencontainers.image.version`, `version`) or an
/// `OMS_VERSION` / `OMS_*_VERSION` variable of its environment (the container's inspect holds
/// the image's labels and environment). `None` when none names one; the engine then takes
/// `rm.oms_version`, or the plan's `current_version`.
pub fn running_version(
    image: &str,
    env: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Option<OmsVersion> {
    let from_label = ["org.opencontainers.image.version", "version"]
        .iter()
        .filter_map(|key| labels.get(*key));
    let from_env = env
        .iter()
        .filter(|(key, _)| {
            key.as_str() == "OMS_VERSION" || (key.starts_with("OMS_") && key.ends_with("_VERSION"))
        })
        .map(|(_, value)| value);
    version_of_tag(image).or_else(|| {
        from_label
            .chain(from_env)
            .find_map(|text| text.trim().parse().ok())
    })
}

/// The OMS version an image tag names: `oms:feature_4.2.9-ce` → 4.2.9. An image id
/// (`sha256:...`, bare hex, or a digest reference) names none.
pub fn version_of_tag(image: &str) -> Option<OmsVersion> {
    let is_id = image.starts_with("sha256:")
        || (image.len() >= 12 && image.chars().all(|c| c.is_ascii_hexdigit()));
    if is_id || image.contains("@sha256:") {
        return None;
    }
    let tag = image.rsplit_once(':').map_or(image, |(_, tag)| tag);
    let start = tag.find(|c: char| c.is_ascii_digit())?;
    let candidate = &tag[start..];
    let end = candidate
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(candidate.len());
    candidate[..end].trim_end_matches('.').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_off_oms_tags() {
        assert_eq!(
            version_of_tag("oms:feature_4.2.9-ce").map(|v| v.to_string()),
            Some("4.2.9-CE".into())
        );
        assert_eq!(
            version_of_tag("registry.example:5000/oms:feature_4.2.8_ce").map(|v| v.to_string()),
            Some("4.2.8-CE".into())
        );
        assert_eq!(version_of_tag("oms:latest"), None);
        assert_eq!(version_of_tag("sha256:4211e0a9c3b2"), None);
        assert_eq!(version_of_tag("4211e0a9c3b2"), None);
    }

    #[test]
    fn an_image_id_takes_the_version_from_the_labels_or_the_environment() {
        let none = BTreeMap::new();
        let env = BTreeMap::from([("OMS_SIM_VERSION".to_owned(), "4.2.8-CE".to_owned())]);
        let labels = BTreeMap::from([(
            "org.opencontainers.image.version".to_owned(),
            "4.2.7-CE".to_owned(),
        )]);
        let text = |v: Option<OmsVersion>| v.map(|v| v.to_string());
        assert_eq!(
            text(running_version("sha256:4211e0a9", &env, &none)).as_deref(),
            Some("4.2.8-CE")
        );
        assert_eq!(
            text(running_version("sha256:4211e0a9", &env, &labels)).as_deref(),
            Some("4.2.7-CE")
        );
        assert_eq!(
            text(running_version("oms:feature_4.2.9-ce", &env, &labels)).as_deref(),
            Some("4.2.9-CE")
        );
        assert_eq!(running_version("sha256:4211e0a9", &none, &none), None);
    }
}
