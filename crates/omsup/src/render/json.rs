//! `omsup plan --format json`: a versioned output type of its own, never the engine's types.
//!
//! Format version 2 (`format_version: 2`); a field may be added within a version, none is
//! removed or changes meaning without a new version. One JSON object on stdout:
//!
//! ```json
//! {
//!   "format_version": 2,
//!   "deployment": "oms-hz",
//!   "plan_file_sha256": "<hex>",
//!   "from": "4.2.8-CE",                    // null when no container to upgrade tells it
//!   "to": "4.2.9-CE",
//!   "changes": [                           // what changes, by subject
//!     {"type": "node", "subject": "node[10.0.0.2]", "action": "upgrade", "ip", "region",
//!      "container", "kept_as", "load_image", "image": {"before", "after"},
//!      "env": {"added": {"IS_UPGRADE": "true"}, "changed": {"K": {"before", "after"}},
//!              "removed": ["K"]},
//!      "mounts": [{"host", "container", "read_only"}], "cm_nodes": ["10.0.0.2"],
//!      "new_container": null | {"name", "image", "env": {"K": "v"}, "labels": {"K": "v"},
//!         "mounts", "tty", "open_stdin", "network_mode", "privileged", "pids_limit",
//!         "ulimits": [{"name", "soft", "hard"}], "restart_policy": null | {"name",
//!         "maximum_retry_count"}, "log_config": null | {"driver", "options"}, "memory",
//!         "memory_reservation", "memory_swap", "nano_cpus", "cpu_shares", "cpu_period",
//!         "cpu_quota", "cpuset_cpus", "shm_size", "extra_hosts", "dns", "dns_search",
//!         "dns_options", "cap_add", "cap_drop", "security_opt", "sysctls"}},
//!     {"type": "database", "subject": "db[rm_428]", "action": "update", "name",
//!      "role": "rm" | "cm" | "cm_hb", "region": null | "hz", "size_bytes", "backup": true,
//!      "schema": {"before", "after"}},
//!     {"type": "ha", "subject": "ha.config", "action": "update",
//!      "enable": {"before": true, "during": false, "after": true}}
//!   ],
//!   "steps": [                             // topological order
//!     {"id": "node[10.0.0.2].stop-old", "kind": "stop-old", "target": "10.0.0.2",
//!      "depends_on": ["ha.off"], "lane": 3, "downtime": true,
//!      "changes": "docker stop oms_428 (records T1)",
//!      "compensation": {"kind": "start_old_container", "description": "..."}}
//!   ],
//!   "preflight": [{"severity": "error" | "warning", "code", "subject", "message", "hint"}],
//!   "summary": {"no_changes", "steps", "nodes", "lanes", "downtime_steps", "errors",
//!               "warnings", "message"},
//!   "fingerprint": "<hex>"                 // sha256 over the observed facts
//! }
//! ```
//!
//! - `action`: `upgrade` | `none` (already on the target) | `blocked` for nodes; `update` |
//!   `none` for databases and HA.
//! - step `kind`: `preflight`, `load-image`, `ha.off`, `stop-old`, `prune-heartbeats`,
//!   `backup`, `start-new`, `wait-ready`, `init`, `online.verify`, `ha.restore` (a step's id
//!   ends with its kind; version 1 spelled three of them `ha-off`, `verify-online`,
//!   `ha-restore`); `target` is the node IP, region or database the step acts on (null for
//!   deployment-wide steps).
//! - `lane`: 1-based, the same number as the human output; the steps of one lane depend only
//!   on earlier lanes and may run in parallel.
//! - compensation `kind`: `nothing`, `restore_ha_config`, `turn_ha_off`,
//!   `start_old_container`, `replace_new_with_old`, `restore_databases`,
//!   `restore_meta_databases`.
//! - `env` compares the containers' own variables (what the images set themselves is left
//!   out: it comes with each image); `new_container` is the container `start-new` creates,
//!   exactly (null and unset limits: Docker's defaults; `pids_limit` null: unlimited). Its
//!   `omsup.run-id` label reads `<this run's id>`.
//! - Environment values that look secret are `<redacted>`, or `<redacted: copied from the old
//!   container>` for the old container's own (the engine never keeps them).

use std::collections::BTreeMap;

use omsup_engine::container::ContainerSpec;
use omsup_engine::diff::{DatabaseRole, NodeChange, NodeState};
use omsup_engine::observed::Bind;
use omsup_engine::steps::{InitScope, Step, StepKind};
use omsup_engine::{Compensation, Kind as _, UpgradePlan};
use omsup_model::Severity;
use serde::Serialize;

/// The version of this output format.
pub const FORMAT_VERSION: u32 = 2;

/// The whole `--format json` document.
#[derive(Debug, Serialize)]
pub struct PlanOutput {
    pub format_version: u32,
    pub deployment: String,
    pub plan_file_sha256: String,
    pub from: Option<String>,
    pub to: String,
    pub changes: Vec<ChangeOutput>,
    pub steps: Vec<StepOutput>,
    pub preflight: Vec<FindingOutput>,
    pub summary: SummaryOutput,
    pub fingerprint: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeOutput {
    Node(NodeOutput),
    Database(DatabaseOutput),
    Ha(HaOutput),
}

#[derive(Debug, Serialize)]
pub struct BeforeAfter<T> {
    pub before: T,
    pub after: T,
}

#[derive(Debug, Serialize)]
pub struct NodeOutput {
    pub subject: String,
    pub action: &'static str,
    pub ip: String,
    pub region: String,
    pub container: String,
    pub kept_as: Option<String>,
    pub load_image: bool,
    pub image: BeforeAfter<Option<String>>,
    pub env: EnvOutput,
    pub mounts: Vec<MountOutput>,
    pub cm_nodes: Vec<String>,
    /// The container `start-new` creates, exactly (null when the node is not upgraded).
    pub new_container: Option<Box<ContainerOutput>>,
}

/// A container as `start-new` creates it.
#[derive(Debug, Serialize)]
pub struct ContainerOutput {
    pub name: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<MountOutput>,
    pub tty: bool,
    pub open_stdin: bool,
    pub network_mode: Option<String>,
    pub privileged: bool,
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<UlimitOutput>,
    pub restart_policy: Option<RestartPolicyOutput>,
    pub log_config: Option<LogConfigOutput>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub shm_size: Option<i64>,
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct UlimitOutput {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Serialize)]
pub struct RestartPolicyOutput {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Serialize)]
pub struct LogConfigOutput {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize)]
pub struct EnvOutput {
    pub added: BTreeMap<String, String>,
    pub changed: BTreeMap<String, BeforeAfter<String>>,
    pub removed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct MountOutput {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

#[derive(Debug, Serialize)]
pub struct DatabaseOutput {
    pub subject: String,
    pub action: &'static str,
    pub name: String,
    pub role: &'static str,
    pub region: Option<String>,
    pub size_bytes: u64,
    pub backup: bool,
    pub schema: BeforeAfter<Option<String>>,
}

#[derive(Debug, Serialize)]
pub struct HaOutput {
    pub subject: &'static str,
    pub action: &'static str,
    pub enable: HaEnableOutput,
}

#[derive(Debug, Serialize)]
pub struct HaEnableOutput {
    pub before: bool,
    pub during: bool,
    pub after: bool,
}

#[derive(Debug, Serialize)]
pub struct StepOutput {
    pub id: String,
    pub kind: &'static str,
    pub target: Option<String>,
    pub depends_on: Vec<String>,
    pub lane: usize,
    pub downtime: bool,
    pub changes: String,
    pub compensation: CompensationOutput,
}

#[derive(Debug, Serialize)]
pub struct CompensationOutput {
    pub kind: &'static str,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct FindingOutput {
    pub severity: &'static str,
    pub code: String,
    pub subject: String,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SummaryOutput {
    pub no_changes: bool,
    pub steps: usize,
    pub nodes: usize,
    pub lanes: usize,
    pub downtime_steps: usize,
    pub errors: usize,
    pub warnings: usize,
    /// The human summary line.
    pub message: String,
}

impl PlanOutput {
    pub fn from_plan(plan: &UpgradePlan) -> Self {
        let diff = &plan.diff;
        let mut changes: Vec<ChangeOutput> = diff
            .nodes
            .iter()
            .map(|n| ChangeOutput::Node(node_output(n, plan.new_container(&n.ip))))
            .collect();
        changes.extend(diff.databases.iter().map(|d| {
            let (role, region) = match &d.role {
                DatabaseRole::Rm => ("rm", None),
                DatabaseRole::Cm => ("cm", None),
                DatabaseRole::CmHb { region } => ("cm_hb", Some(region.clone())),
            };
            let migrates = d.schema_before != Some(d.schema_after);
            ChangeOutput::Database(DatabaseOutput {
                subject: format!("db[{}]", d.name),
                action: if d.backup || migrates {
                    "update"
                } else {
                    "none"
                },
                name: d.name.clone(),
                role,
                region,
                size_bytes: d.size_bytes,
                backup: d.backup,
                schema: BeforeAfter {
                    before: d.schema_before.map(|v| v.to_string()),
                    after: Some(d.schema_after.to_string()),
                },
            })
        }));
        if let Some(ha) = &diff.ha {
            changes.push(ChangeOutput::Ha(HaOutput {
                subject: "ha.config",
                action: if ha.turn_off || ha.restore {
                    "update"
                } else {
                    "none"
                },
                enable: HaEnableOutput {
                    before: ha.enable_before,
                    during: ha.enable_before && !ha.turn_off,
                    after: if ha.restore {
                        ha.enable_after
                    } else {
                        ha.enable_before && !ha.turn_off
                    },
                },
            }));
        }
        let steps: Vec<StepOutput> = plan.steps.iter().map(step_output).collect();
        let preflight: Vec<FindingOutput> = diff
            .findings
            .iter()
            .map(|f| FindingOutput {
                severity: match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                code: f.code.clone(),
                subject: f.subject.clone(),
                message: f.message.clone(),
                hint: f.hint.clone(),
            })
            .collect();
        let errors = plan.blocking_findings().count();
        let summary = SummaryOutput {
            no_changes: plan.steps.is_empty() && errors == 0,
            steps: plan.steps.len(),
            nodes: plan.nodes_touched(),
            lanes: plan.lanes().len(),
            downtime_steps: plan.downtime_steps(),
            errors,
            warnings: diff.findings.len() - errors,
            message: summary_message(plan, errors),
        };
        Self {
            format_version: FORMAT_VERSION,
            deployment: plan.deployment.clone(),
            plan_file_sha256: plan.plan_file_sha256.clone(),
            from: diff.from.map(|v| v.to_string()),
            to: diff.to.to_string(),
            changes,
            steps,
            preflight,
            summary,
            fingerprint: plan.fingerprint.clone(),
        }
    }
}

fn summary_message(plan: &UpgradePlan, errors: usize) -> String {
    if plan.steps.is_empty() && errors == 0 {
        format!(
            "No changes. The deployment runs {} everywhere.",
            plan.diff.to
        )
    } else {
        format!(
            "Plan: {} steps on {} nodes; downtime window: {} steps",
            plan.steps.len(),
            plan.nodes_touched(),
            plan.downtime_steps()
        )
    }
}

fn node_output(node: &NodeChange, new: Option<&ContainerSpec>) -> NodeOutput {
    let mut env = EnvOutput::default();
    if let (Some(old), Some(new)) = (&node.container_before, new) {
        let before = old.shown_env();
        let after = new.shown_env();
        for (key, after) in &after {
            match before.get(key) {
                None => {
                    env.added.insert(key.clone(), after.clone());
                }
                Some(before) if before != after => {
                    env.changed.insert(
                        key.clone(),
                        BeforeAfter {
                            before: before.clone(),
                            after: after.clone(),
                        },
                    );
                }
                Some(_) => {}
            }
        }
        env.removed = before
            .keys()
            .filter(|key| !after.contains_key(*key))
            .cloned()
            .collect();
    }
    let binds = new
        .or(node.container_before.as_ref())
        .map_or(&[][..], |spec| &spec.binds);
    NodeOutput {
        subject: format!("node[{}]", node.ip),
        action: match node.state {
            NodeState::NeedsUpgrade => "upgrade",
            NodeState::Upgraded => "none",
            NodeState::Blocked => "blocked",
        },
        ip: node.ip.clone(),
        region: node.region.clone(),
        container: node.container.clone(),
        kept_as: node.kept_as.clone(),
        load_image: node.load_image,
        image: BeforeAfter {
            before: node.image_before.clone(),
            after: Some(node.image_after.clone()),
        },
        env,
        mounts: binds.iter().map(mount_output).collect(),
        cm_nodes: node.cm_nodes.clone(),
        new_container: new.map(|spec| Box::new(container_output(spec))),
    }
}

fn mount_output(bind: &Bind) -> MountOutput {
    MountOutput {
        host: bind.host.clone(),
        container: bind.container.clone(),
        read_only: bind.read_only,
    }
}

fn container_output(spec: &ContainerSpec) -> ContainerOutput {
    let s = &spec.settings;
    ContainerOutput {
        name: spec.name.clone(),
        image: spec.image.clone(),
        env: spec.shown_env(),
        labels: spec.shown_labels(),
        mounts: spec.binds.iter().map(mount_output).collect(),
        tty: s.tty,
        open_stdin: s.open_stdin,
        network_mode: s.network_mode.clone(),
        privileged: s.privileged,
        pids_limit: s.pids_limit,
        ulimits: s
            .ulimits
            .iter()
            .map(|u| UlimitOutput {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        restart_policy: s.restart_policy.as_ref().map(|p| RestartPolicyOutput {
            name: p.name.clone(),
            maximum_retry_count: p.maximum_retry_count,
        }),
        log_config: s.log_config.as_ref().map(|log| LogConfigOutput {
            driver: log.driver.clone(),
            options: log.options.clone(),
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
        extra_hosts: s.extra_hosts.clone(),
        dns: s.dns.clone(),
        dns_search: s.dns_search.clone(),
        dns_options: s.dns_options.clone(),
        cap_add: s.cap_add.clone(),
        cap_drop: s.cap_drop.clone(),
        security_opt: s.security_opt.clone(),
        sysctls: s.sysctls.clone(),
    }
}

fn step_output(step: &Step) -> StepOutput {
    let target = match &step.kind {
        StepKind::Preflight | StepKind::HaOff | StepKind::VerifyOnline | StepKind::HaRestore => {
            None
        }
        StepKind::LoadImage { node }
        | StepKind::StopOld { node }
        | StepKind::StartNew { node, .. }
        | StepKind::WaitReady { node } => Some(node.clone()),
        StepKind::PruneHeartbeats { region, .. } => Some(region.clone()),
        StepKind::Backup { database } => Some(database.clone()),
        StepKind::Init {
            scope: InitScope::Region(name) | InitScope::Node(name),
            ..
        } => Some(name.clone()),
    };
    StepOutput {
        id: step.id.to_string(),
        kind: step.kind.name(),
        target,
        depends_on: step.depends_on.iter().map(ToString::to_string).collect(),
        lane: step.lane + 1,
        downtime: step.downtime,
        changes: step.changes.clone(),
        compensation: CompensationOutput {
            kind: compensation_kind(&step.kind.compensation()),
            description: step.kind.compensation_text().to_owned(),
        },
    }
}

/// Spelled out here so the output format does not change when the engine renames a variant.
fn compensation_kind(compensation: &Compensation) -> &'static str {
    match compensation {
        Compensation::Nothing => "nothing",
        Compensation::RestoreHaConfig => "restore_ha_config",
        Compensation::TurnHaOff => "turn_ha_off",
        Compensation::StartOldContainer { .. } => "start_old_container",
        Compensation::ReplaceNewWithOld { .. } => "replace_new_with_old",
        Compensation::RestoreDatabases { .. } => "restore_databases",
        Compensation::RestoreMetaDatabases => "restore_meta_databases",
    }
}

/// `--format json`: the [`PlanOutput`] document, pretty-printed, with a final newline.
pub fn render_plan_json(plan: &UpgradePlan) -> String {
    serde_json::to_string_pretty(&PlanOutput::from_plan(plan)).expect("the output type serializes")
        + "\n"
}
