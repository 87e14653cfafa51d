//! Docker's container settings both ways, in one place: read off `docker inspect` into the
//! engine's [`ContainerSettings`] and [`ImageDefaults`] (observation), and a
//! [`ContainerSpec`] turned into the create request (`start-new`), field for field, so that
//! what is observed on the old container is what the new one is created with.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigLogConfig, ImageInspect,
    ResourcesUlimits, RestartPolicyNameEnum,
};
use omsup_engine::container::{
    ContainerSettings, ContainerSpec, ImageDefaults, LogConfig, RestartPolicy, Ulimit,
};
use omsup_engine::observed::Bind;

/// `KEY=value` entries as a map (a bare `KEY` reads as empty).
pub fn env_map<'a>(entries: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (entry.clone(), String::new()),
        })
        .collect()
}

/// A container's environment, as inspected, as a map (what a new container copies its
/// secret-looking values from).
pub fn container_env(inspect: &ContainerInspectResponse) -> BTreeMap<String, String> {
    env_map(
        inspect
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten(),
    )
}

/// What an image brings by itself.
pub fn image_defaults(image: &ImageInspect) -> ImageDefaults {
    let config = image.config.as_ref();
    ImageDefaults {
        env: env_map(config.and_then(|c| c.env.as_ref()).into_iter().flatten()),
        labels: config
            .and_then(|c| c.labels.as_ref())
            .map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

/// A limit Docker reports as 0 when unset.
fn set(value: Option<i64>) -> Option<i64> {
    value.filter(|v| *v != 0)
}

fn list(values: Option<&Vec<String>>) -> Vec<String> {
    values.cloned().unwrap_or_default()
}

/// The container's create settings besides name, image, environment, labels and mounts.
pub fn settings(inspect: &ContainerInspectResponse) -> ContainerSettings {
    let config = inspect.config.as_ref();
    let default = HostConfig::default();
    let host = inspect.host_config.as_ref().unwrap_or(&default);
    let mut ulimits: Vec<Ulimit> = host
        .ulimits
        .iter()
        .flatten()
        .map(|u| Ulimit {
            name: u.name.clone().unwrap_or_default(),
            soft: u.soft.unwrap_or_default(),
            hard: u.hard.unwrap_or_default(),
        })
        .collect();
    ulimits.sort();
    let restart_policy = host.restart_policy.as_ref().and_then(|policy| {
        let name = policy.name?;
        (!matches!(
            name,
            RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO
        ))
        .then(|| RestartPolicy {
            name: name.to_string(),
            maximum_retry_count: policy.maximum_retry_count.unwrap_or_default(),
        })
    });
    let log_config = host.log_config.as_ref().and_then(|log| {
        Some(LogConfig {
            driver: log.typ.clone().filter(|t| !t.is_empty())?,
            options: log
                .config
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    });
    ContainerSettings {
        tty: config.and_then(|c| c.tty).unwrap_or(false),
        open_stdin: config.and_then(|c| c.open_stdin).unwrap_or(false),
        network_mode: host.network_mode.clone().filter(|m| !m.is_empty()),
        privileged: host.privileged.unwrap_or(false),
        // Docker reports an unlimited pids limit as null, 0 or -1.
        pids_limit: host.pids_limit.filter(|n| *n > 0),
        ulimits,
        restart_policy,
        log_config,
        memory: set(host.memory),
        memory_reservation: set(host.memory_reservation),
        memory_swap: set(host.memory_swap),
        nano_cpus: set(host.nano_cpus),
        cpu_shares: set(host.cpu_shares),
        cpu_period: set(host.cpu_period),
        cpu_quota: set(host.cpu_quota),
        cpuset_cpus: host.cpuset_cpus.clone().filter(|c| !c.is_empty()),
        shm_size: set(host.shm_size),
        extra_hosts: list(host.extra_hosts.as_ref()),
        dns: list(host.dns.as_ref()),
        dns_search: list(host.dns_search.as_ref()),
        dns_options: list(host.dns_options.as_ref()),
        cap_add: list(host.cap_add.as_ref()),
        cap_drop: list(host.cap_drop.as_ref()),
        security_opt: list(host.security_opt.as_ref()),
        sysctls: host
            .sysctls
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A restart policy as Docker takes it (`None`: `no`).
pub fn restart_policy(policy: Option<&RestartPolicy>) -> bollard::models::RestartPolicy {
    bollard::models::RestartPolicy {
        name: Some(policy.map_or(RestartPolicyNameEnum::NO, |p| {
            p.name.parse().unwrap_or(RestartPolicyNameEnum::NO)
        })),
        maximum_retry_count: policy.map(|p| p.maximum_retry_count),
    }
}

/// The create request for `spec`, with the environment and labels it resolved (the values
/// only apply can know: secret-looking variables copied from the old container, the run id).
pub fn create_body(
    spec: &ContainerSpec,
    env: Vec<String>,
    labels: BTreeMap<String, String>,
) -> ContainerCreateBody {
    let s = &spec.settings;
    let some_list = |values: &Vec<String>| (!values.is_empty()).then(|| values.clone());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(env),
        labels: Some(labels.into_iter().collect::<HashMap<_, _>>()),
        tty: Some(s.tty),
        open_stdin: Some(s.open_stdin),
        host_config: Some(HostConfig {
            binds: Some(spec.binds.iter().map(Bind::to_docker).collect()),
            network_mode: s.network_mode.clone(),
            privileged: Some(s.privileged),
            // Unlimited is -1 to Docker; leaving it unset would take the daemon's default.
            pids_limit: Some(s.pids_limit.unwrap_or(-1)),
            ulimits: Some(
                s.ulimits
                    .iter()
                    .map(|u| ResourcesUlimits {
                        name: Some(u.name.clone()),
                        soft: Some(u.soft),
                        hard: Some(u.hard),
                    })
                    .collect(),
            ),
            restart_policy: Some(restart_policy(s.restart_policy.as_ref())),
            log_config: s.log_config.as_ref().map(|log| HostConfigLogConfig {
                typ: Some(log.driver.clone()),
                config: Some(log.options.clone().into_iter().collect()),
            }),
            memory: s.memory,
            memory_reservation: s.memory_reservation,
            memory_swap: s.memory_swap,
            nano_cpus: s.nano_cpus,
            cpu_shares: s.cpu_shares,
            cpu_period: s.cpu_period,
            cpu_quota: s.cpu_quota,
            cpuset_cpus: s.cpuset_cpus.clone(),
            shm_size: s.shm_size,
            extra_hosts: some_list(&s.extra_hosts),
            dns: some_list(&s.dns),
            dns_search: some_list(&s.dns_search),
            dns_options: some_list(&s.dns_options),
            cap_add: some_list(&s.cap_add),
            cap_drop: some_list(&s.cap_drop),
            security_opt: some_list(&s.security_opt),
            sysctls: (!s.sysctls.is_empty())
                .then(|| s.sysctls.clone().into_iter().collect::<HashMap<_, _>>()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is created reads back as the same settings: every field of [`ContainerSettings`]
    /// goes into the request and comes out of an inspect of it.
    #[test]
    fn settings_survive_a_create_and_an_inspect() {
        let spec = ContainerSpec {
            name: "oms".into(),
            image: "oms:feature_4.2.9-ce".into(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            binds: vec![],
            settings: ContainerSettings {
                tty: true,
                open_stdin: true,
                network_mode: Some("host".into()),
                privileged: false,
                pids_limit: Some(4096),
                ulimits: vec![Ulimit {
                    name: "nofile".into(),
                    soft: 1024,
                    hard: 2048,
                }],
                restart_policy: Some(RestartPolicy {
                    name: "on-failure".into(),
                    maximum_retry_count: 3,
                }),
                log_config: Some(LogConfig {
                    driver: "json-file".into(),
                    options: BTreeMap::from([("max-size".into(), "10m".into())]),
                }),
                memory: Some(1 << 30),
                memory_reservation: Some(1 << 29),
                memory_swap: Some(-1),
                nano_cpus: Some(1_500_000_000),
                cpu_shares: Some(512),
                cpu_period: Some(100_000),
                cpu_quota: Some(50_000),
                cpuset_cpus: Some("0-1".into()),
                shm_size: Some(1 << 27),
                extra_hosts: vec!["db.local:10.0.0.9".into()],
                dns: vec!["10.0.0.53".into()],
                dns_search: vec!["example.internal".into()],
                dns_options: vec!["ndots:2".into()],
                cap_add: vec!["SYS_PTRACE".into()],
                cap_drop: vec!["MKNOD".into()],
                security_opt: vec!["no-new-privileges".into()],
                sysctls: BTreeMap::from([("net.core.somaxconn".into(), "1024".into())]),
            },
        };
        let body = create_body(&spec, vec![], BTreeMap::new());
        let inspect = ContainerInspectResponse {
            config: Some(bollard::models::ContainerConfig {
                tty: body.tty,
                open_stdin: body.open_stdin,
                ..Default::default()
            }),
            host_config: body.host_config,
            ..Default::default()
        };
        assert_eq!(settings(&inspect), spec.settings);
    }
}
