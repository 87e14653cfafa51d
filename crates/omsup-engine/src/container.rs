//! The new OMS container's create spec, computed once, here, from the old container's own
//! settings; the plan shows it, apply creates exactly it, the journal keeps it with the run.
//!
//! The old container's *own* settings are what `docker inspect` shows minus what its image
//! brings: Docker merges the image's `Env` and `Labels` into the container's, so a variable
//! equal to the old image's default (`OMS_SIM_VERSION=4.2.8-CE`) is the image's, not the
//! operator's, and copying it would override the new image's value. Everything else the
//! operator set (`-e TZ=...`, `--restart`, `--log-opt`, `--ulimit`, `--memory`, `--cpus`,
//! `--add-host`, `--dns`, `--cap-add`, labels, ...) is kept as it is ([`ContainerSettings`]).
//!
//! [`upgrade_spec`] changes only what the upgrade must change: the image, the name (the old
//! one's), `IS_UPGRADE=true`, `OMS_HOST_IP` (the node's IP), omsup's labels (this run and
//! step), and the plan file's explicit `[container]` / `container_overrides` values, which win.
//!
//! Two values are not known when planning, and are typed as such: a secret-looking variable
//! of the old container ([`EnvValue::FromOldContainer`]: its value never enters a plan, a
//! saved plan or the journal; apply copies it from the old container when creating) and the
//! run id ([`LabelValue::RunId`]). [`ContainerSpec::create_env`] and
//! [`ContainerSpec::create_labels`] fill them in; nothing else is added when creating.

use std::collections::BTreeMap;

use omsup_model::StepId;
use omsup_model::plan::{ContainerOptions, Node, PlanFile};
use serde::{Deserialize, Serialize};

use crate::diff::{REDACTED, is_secret_key};
use crate::observed::{Bind, ObservedContainer};

/// Label on every container omsup creates: the run that created it.
pub const LABEL_RUN_ID: &str = "omsup.run-id";
/// Label on every container omsup creates: the step that created it.
pub const LABEL_STEP_ID: &str = "omsup.step-id";
/// omsup's own labels start with this; an old container's are never copied.
pub const OMSUP_LABEL_PREFIX: &str = "omsup.";
/// Label on `omsup rehearse`'s throwaway container: the rehearsal's id.
pub const LABEL_REHEARSAL: &str = "omsup.rehearsal";
/// Label on `omsup rehearse`'s throwaway container: the deployment it rehearses.
pub const LABEL_REHEARSAL_DEPLOYMENT: &str = "omsup.rehearsal.deployment";
/// Where the HTTPS certificate and key are mounted in an OMS container.
pub const HTTPS_CERT_MOUNT: &str = "/etc/pki/nginx/oms_server.crt";
pub const HTTPS_KEY_MOUNT: &str = "/etc/pki/nginx/oms_server.key";

/// What the image of a container brings by itself (`docker image inspect`: `Config.Env`,
/// `Config.Labels`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDefaults {
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// The create settings of a container besides its name, image, environment, labels and mounts,
/// as `docker inspect` shows them (Docker's "unset" zeros read as `None` or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSettings {
    /// `-t`
    pub tty: bool,
    /// `-i`
    pub open_stdin: bool,
    /// `--net` (`host` for OMS)
    pub network_mode: Option<String>,
    pub privileged: bool,
    /// `--pids-limit`; `None`: unlimited.
    pub pids_limit: Option<i64>,
    /// `--ulimit`, by name.
    pub ulimits: Vec<Ulimit>,
    /// `--restart`; `None`: Docker's `no`.
    pub restart_policy: Option<RestartPolicy>,
    /// `--log-driver` / `--log-opt`; `None`: the daemon's default.
    pub log_config: Option<LogConfig>,
    /// `--memory`, bytes.
    pub memory: Option<i64>,
    /// `--memory-reservation`, bytes.
    pub memory_reservation: Option<i64>,
    /// `--memory-swap`, bytes (`-1`: unlimited).
    pub memory_swap: Option<i64>,
    /// `--cpus`, in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// `--cpu-shares`
    pub cpu_shares: Option<i64>,
    /// `--cpu-period`, µs.
    pub cpu_period: Option<i64>,
    /// `--cpu-quota`, µs.
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`
    pub cpuset_cpus: Option<String>,
    /// `--shm-size`, bytes.
    pub shm_size: Option<i64>,
    /// `--add-host` (`name:ip`)
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure`
    pub name: String,
    /// For `on-failure`; 0 otherwise.
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

/// An environment variable's value in a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvValue {
    Value(String),
    /// A secret-looking variable (see [`crate::diff::is_secret_key`]) of the old container: its
    /// value is not kept in any plan; apply copies it from the old container when creating.
    FromOldContainer,
}

/// A label's value in a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelValue {
    Value(String),
    /// The id of the run that creates the container (unknown when planning).
    RunId,
}

impl Bind {
    /// As Docker's `HostConfig.Binds` writes it: `host:container[:ro]`.
    pub fn to_docker(&self) -> String {
        let mode = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{mode}", self.host, self.container)
    }
}

/// Everything a container is created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub env: BTreeMap<String, EnvValue>,
    pub labels: BTreeMap<String, LabelValue>,
    /// Host mounts, exactly (`HostConfig.Binds`).
    pub binds: Vec<Bind>,
    pub settings: ContainerSettings,
}

/// A spec's env value, a secret looking one named but not shown.
const FROM_OLD_CONTAINER: &str = "<redacted: copied from the old container>";
/// How the run id label reads before there is a run.
const THIS_RUN: &str = "<this run's id>";

/// A secret-looking variable of the old container that is no longer there when creating.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the old container no longer has `{0}`, which the new one must copy from it")]
pub struct MissingOldValue(pub String);

impl ContainerSpec {
    /// The environment to create with, `KEY=value`, in key order; secret-looking values are
    /// read from `old_env` (the old container's environment, as inspected now).
    pub fn create_env(
        &self,
        old_env: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, MissingOldValue> {
        self.env
            .iter()
            .map(|(key, value)| match value {
                EnvValue::Value(value) => Ok(format!("{key}={value}")),
                EnvValue::FromOldContainer => old_env
                    .get(key)
                    .map(|value| format!("{key}={value}"))
                    .ok_or_else(|| MissingOldValue(key.clone())),
            })
            .collect()
    }

    /// The labels to create with, the run id filled in.
    pub fn create_labels(&self, run_id: &str) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    LabelValue::Value(value) => value.clone(),
                    LabelValue::RunId => run_id.to_owned(),
                };
                (key.clone(), value)
            })
            .collect()
    }

    /// The environment as shown (secret values redacted, also the plan file's).
    pub fn shown_env(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(key, value)| {
                let shown = match value {
                    EnvValue::FromOldContainer => FROM_OLD_CONTAINER.to_owned(),
                    EnvValue::Value(_) if is_secret_key(key) => REDACTED.to_owned(),
                    EnvValue::Value(value) => value.clone(),
                };
                (key.clone(), shown)
            })
            .collect()
    }

    /// The labels as shown (the run id as `<this run's id>`).
    pub fn shown_labels(&self) -> BTreeMap<String, String> {
        self.create_labels(THIS_RUN)
    }

    /// The spec as lines, one setting each, for the plan's diff and the saved plan's facts.
    pub fn lines(&self) -> Vec<SpecLine> {
        let mut lines = vec![SpecLine::new("image", None, &self.image)];
        for (key, value) in self.shown_env() {
            lines.push(SpecLine::new("env", Some(&key), &value));
        }
        for (key, value) in self.shown_labels() {
            lines.push(SpecLine::new("label", Some(&key), &value));
        }
        for bind in &self.binds {
            let mode = if bind.read_only { " (read-only)" } else { "" };
            lines.push(SpecLine {
                text: format!("mount {} -> {}{mode}", bind.host, bind.container),
                key: format!("mount {}", bind.container),
                value: format!("{}{mode}", bind.host),
            });
        }
        let s = &self.settings;
        lines.push(SpecLine::new("tty", None, &s.tty.to_string()));
        lines.push(SpecLine::new("stdin-open", None, &s.open_stdin.to_string()));
        lines.push(SpecLine::new(
            "network",
            None,
            s.network_mode.as_deref().unwrap_or("default"),
        ));
        lines.push(SpecLine::new("privileged", None, &s.privileged.to_string()));
        lines.push(SpecLine::new(
            "pids-limit",
            None,
            &s.pids_limit
                .map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        ));
        for ulimit in &s.ulimits {
            let value = format!("{}:{}", ulimit.soft, ulimit.hard);
            lines.push(SpecLine::new("ulimit", Some(&ulimit.name), &value));
        }
        let restart = s.restart_policy.as_ref().map_or_else(
            || "no".to_owned(),
            |policy| match policy.maximum_retry_count {
                0 => policy.name.clone(),
                n => format!("{}:{n}", policy.name),
            },
        );
        lines.push(SpecLine::new("restart", None, &restart));
        match &s.log_config {
            None => lines.push(SpecLine::new("log-driver", None, "(the daemon's default)")),
            Some(log) => {
                lines.push(SpecLine::new("log-driver", None, &log.driver));
                for (key, value) in &log.options {
                    lines.push(SpecLine::new("log-opt", Some(key), value));
                }
            }
        }
        for (flag, value) in [
            ("memory", s.memory),
            ("memory-reservation", s.memory_reservation),
            ("memory-swap", s.memory_swap),
            ("cpus-nano", s.nano_cpus),
            ("cpu-shares", s.cpu_shares),
            ("cpu-period", s.cpu_period),
            ("cpu-quota", s.cpu_quota),
            ("shm-size", s.shm_size),
        ] {
            if let Some(value) = value {
                lines.push(SpecLine::new(flag, None, &value.to_string()));
            }
        }
        if let Some(cpus) = &s.cpuset_cpus {
            lines.push(SpecLine::new("cpuset-cpus", None, cpus));
        }
        for (flag, values) in [
            ("add-host", &s.extra_hosts),
            ("dns", &s.dns),
            ("dns-search", &s.dns_search),
            ("dns-option", &s.dns_options),
            ("cap-add", &s.cap_add),
            ("cap-drop", &s.cap_drop),
            ("security-opt", &s.security_opt),
        ] {
            for value in values {
                lines.push(SpecLine {
                    text: format!("{flag} {value}"),
                    key: format!("{flag} {value}"),
                    value: "set".into(),
                });
            }
        }
        for (key, value) in &s.sysctls {
            lines.push(SpecLine::new("sysctl", Some(key), value));
        }
        lines
    }
}

/// One setting of a spec: how it reads (`env TZ=Asia/Shanghai`), and as a fact (`env TZ`,
/// `Asia/Shanghai`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecLine {
    pub text: String,
    pub key: String,
    pub value: String,
}

impl SpecLine {
    fn new(flag: &str, name: Option<&str>, value: &str) -> Self {
        match name {
            None => Self {
                text: format!("{flag} {value}"),
                key: flag.to_owned(),
                value: value.to_owned(),
            },
            Some(name) => Self {
                text: format!("{flag} {name}={value}"),
                key: format!("{flag} {name}"),
                value: value.to_owned(),
            },
        }
    }
}

/// The old container's own settings, as a spec that would create it again: its environment and
/// labels without what its image brings (unknown image defaults: nothing subtracted), every
/// secret-looking value left out ([`EnvValue::FromOldContainer`]).
pub fn own_spec(container: &ObservedContainer) -> ContainerSpec {
    let defaults = container.image_defaults.clone().unwrap_or_default();
    let env = container
        .env
        .iter()
        .filter(|(key, value)| defaults.env.get(*key) != Some(*value))
        .map(|(key, value)| {
            let value = if is_secret_key(key) {
                EnvValue::FromOldContainer
            } else {
                EnvValue::Value(value.clone())
            };
            (key.clone(), value)
        })
        .collect();
    let labels = container
        .labels
        .iter()
        .filter(|(key, value)| defaults.labels.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), LabelValue::Value(value.clone())))
        .collect();
    ContainerSpec {
        name: container.name.clone(),
        image: container.image.clone(),
        env,
        labels,
        binds: container.binds.clone(),
        settings: container.settings.clone(),
    }
}

/// The new container of `node`: the old one's own settings (`old`, see [`own_spec`]) with the
/// target image, the node's container name, `IS_UPGRADE=true`, `OMS_HOST_IP`, omsup's labels
/// (`omsup.run-id`, `omsup.step-id` = `step`; an earlier run's are dropped) and the plan file's
/// explicit container options (the node's over `[container]`), which win.
/// `omsup rehearse`'s throwaway container, from the new container `new` a node's `start-new`
/// creates: the same image, environment (`IS_UPGRADE=true`) and settings, but no host mount
/// (its config.yaml, pointing at the copies, is put in through the archive API), its own name,
/// network and `OMS_HOST_IP`, no restart policy, and the rehearsal's labels instead of a run's.
pub fn rehearsal_spec(
    new: &ContainerSpec,
    name: &str,
    network: &str,
    host_ip: &str,
    deployment: &str,
    rehearsal_id: &str,
) -> ContainerSpec {
    let mut spec = new.clone();
    spec.name = name.to_owned();
    spec.binds.clear();
    spec.env
        .insert("OMS_HOST_IP".into(), EnvValue::Value(host_ip.to_owned()));
    spec.env
        .insert("IS_UPGRADE".into(), EnvValue::Value("true".into()));
    spec.labels
        .retain(|key, _| !key.starts_with(OMSUP_LABEL_PREFIX));
    for (key, value) in [
        (LABEL_REHEARSAL, rehearsal_id),
        (LABEL_REHEARSAL_DEPLOYMENT, deployment),
    ] {
        spec.labels
            .insert(key.into(), LabelValue::Value(value.to_owned()));
    }
    spec.settings.network_mode = Some(network.to_owned());
    spec.settings.restart_policy = None;
    spec
}

pub fn upgrade_spec(
    old: &ContainerSpec,
    plan: &PlanFile,
    node: &Node,
    step: &StepId,
) -> ContainerSpec {
    let options = explicit_options(&plan.container, node.container_overrides.as_ref());
    let mut env = old.env.clone();
    for (key, value) in &options.env {
        env.insert(key.clone(), EnvValue::Value(value.clone()));
    }
    env.insert("OMS_HOST_IP".into(), EnvValue::Value(node.ip.clone()));
    env.insert("IS_UPGRADE".into(), EnvValue::Value("true".into()));

    let mut labels: BTreeMap<String, LabelValue> = old
        .labels
        .iter()
        .filter(|(key, _)| !key.starts_with(OMSUP_LABEL_PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    labels.insert(LABEL_RUN_ID.into(), LabelValue::RunId);
    labels.insert(LABEL_STEP_ID.into(), LabelValue::Value(step.to_string()));

    let mut binds = old.binds.clone();
    for (host, inside) in [
        (&options.https_cert, HTTPS_CERT_MOUNT),
        (&options.https_key, HTTPS_KEY_MOUNT),
    ] {
        if let Some(host) = host {
            binds.retain(|bind| bind.container != inside);
            binds.push(Bind {
                host: host.display().to_string(),
                container: inside.to_owned(),
                read_only: false,
            });
        }
    }

    let mut settings = old.settings.clone();
    if let Some(network) = &options.network {
        settings.network_mode = Some(network.clone());
    }
    if let Some(privileged) = options.privileged {
        settings.privileged = privileged;
    }
    if let Some(pids_limit) = options.pids_limit {
        settings.pids_limit = (pids_limit > 0).then_some(pids_limit);
    }
    if let Some(nproc) = options.ulimit_nproc {
        let nproc = i64::try_from(nproc).unwrap_or(i64::MAX);
        settings.ulimits.retain(|u| u.name != "nproc");
        settings.ulimits.push(Ulimit {
            name: "nproc".into(),
            soft: nproc,
            hard: nproc,
        });
        settings.ulimits.sort();
    }
    ContainerSpec {
        name: node.container.clone(),
        image: plan.image.tag.clone(),
        env,
        labels,
        binds,
        settings,
    }
}

/// The options the plan file sets for a node: the node's `container_overrides` over
/// `[container]`, without defaults (an unset option keeps the old container's value).
fn explicit_options(base: &ContainerOptions, node: Option<&ContainerOptions>) -> ContainerOptions {
    let Some(node) = node else {
        return base.clone();
    };
    let mut env = base.env.clone();
    env.extend(node.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    ContainerOptions {
        network: node.network.clone().or_else(|| base.network.clone()),
        privileged: node.privileged.or(base.privileged),
        pids_limit: node.pids_limit.or(base.pids_limit),
        ulimit_nproc: node.ulimit_nproc.or(base.ulimit_nproc),
        https_cert: node.https_cert.clone().or_else(|| base.https_cert.clone()),
        https_key: node.https_key.clone().or_else(|| base.https_key.clone()),
        env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rehearsal_container_mounts_nothing_of_the_host_and_is_no_runs() {
        let new = ContainerSpec {
            name: "oms_428".into(),
            image: "oms:feature_4.2.9-ce".into(),
            env: [
                ("OMS_HOST_IP", EnvValue::Value("10.0.0.2".into())),
                ("IS_UPGRADE", EnvValue::Value("true".into())),
                ("TZ", EnvValue::Value("Asia/Shanghai".into())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            labels: [
                (LABEL_RUN_ID.to_owned(), LabelValue::RunId),
                ("team".to_owned(), LabelValue::Value("dba".into())),
            ]
            .into_iter()
            .collect(),
            binds: vec![Bind {
                host: "/data/oms/config.yaml".into(),
                container: "/home/admin/conf/config.yaml".into(),
                read_only: false,
            }],
            settings: ContainerSettings {
                network_mode: Some("host".into()),
                restart_policy: Some(RestartPolicy {
                    name: "always".into(),
                    maximum_retry_count: 0,
                }),
                ..Default::default()
            },
        };
        let spec = rehearsal_spec(&new, "omsup-rehearsal-x-1", "bridge", "10.0.0.9", "x", "1");
        assert_eq!(spec.name, "omsup-rehearsal-x-1");
        assert_eq!(spec.image, new.image);
        assert!(spec.binds.is_empty());
        assert_eq!(spec.settings.network_mode.as_deref(), Some("bridge"));
        assert_eq!(spec.settings.restart_policy, None);
        assert_eq!(
            spec.create_env(&BTreeMap::new()).unwrap(),
            [
                "IS_UPGRADE=true",
                "OMS_HOST_IP=10.0.0.9",
                "TZ=Asia/Shanghai"
            ]
        );
        let labels = spec.create_labels("run-1");
        assert!(!labels.contains_key(LABEL_RUN_ID), "{labels:?}");
        assert_eq!(labels[LABEL_REHEARSAL], "1");
        assert_eq!(labels[LABEL_REHEARSAL_DEPLOYMENT], "x");
        assert_eq!(labels["team"], "dba");
    }
}
