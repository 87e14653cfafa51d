//! The rollback planner: from what a forward run reached (its journal), the undo steps that
//! bring the deployment back to where it was before that run. Pure data in, data out.
//!
//! Only what the forward run reached is compensated (a step counts as reached from its intent
//! record on: its outcome may be unknown, so the undo observes before it acts):
//!
//! - `undo.backups.verify` checks the sha256 of every backup about to be restored, before
//!   anything is dropped;
//! - `undo.ha.off` turns HA off while containers and databases change;
//! - `undo.node[ip].remove-new`, per node whose `start-new` was reached: stop the new container
//!   (T3) and remove it (or keep it renamed);
//! - `undo.db[name].restore`, in parallel: every database backed up by the run once any
//!   `start-new` or `init` was reached (the new version wrote to them: writes since the backup
//!   are lost, [`RollbackPlan::loses_data_since_backup`]), and a heartbeat database whose
//!   `prune-heartbeats` was reached (when its backup exists);
//! - `undo.node[ip].start-old`, per node whose `stop-old` or `start-new` was reached: rename the
//!   kept old container back, start it, wait until it is ready;
//! - `undo.online.verify`: every node ONLINE and healthy on the old version;
//! - `undo.ha.restore`: `ha.config` back to its value before the run, with
//!   `refetchStoreIntervalMin` above T3 − T1 when `perceiveStoreClientCheckpoint` is false.
//!
//! A run that reached nothing but `preflight`, `load-image` and `backup` gets an empty plan.

use std::collections::{BTreeMap, BTreeSet};

use omsup_model::StepId;
use omsup_model::step_id::names;
use serde::{Deserialize, Serialize};

use crate::container::RestartPolicy;
use crate::outputs::{Capture, HaConfig, StepOutput, UndoOutput};
use crate::step::{Builder, Kind, Step};
use crate::steps::StepKind;

/// How far a forward step got, from its journal records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reached {
    /// Its intent is journaled; it may have acted, failed or been cut off.
    Intent,
    Succeeded,
}

/// One step of the forward run, as its journal has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardStep {
    pub id: StepId,
    pub kind: StepKind,
    pub reached: Reached,
    /// What the step captured before acting (journaled with its intent), e.g. `ha.off`'s
    /// `ha.config`; `None` when nothing was captured.
    #[serde(default)]
    pub captured: Option<Capture>,
    /// Its output, when it succeeded.
    #[serde(default)]
    pub output: Option<StepOutput>,
}

/// What `ha.config` held before the forward run, as far as its journal knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum HaBefore {
    /// Journaled by the forward `ha.off` (its output, or its capture before acting).
    Journaled { value: HaConfig },
    /// The forward run had no `ha.off`: HA was off already. The value `undo.ha.off` finds is
    /// written back with `enable: false`.
    WasOff,
    /// `ha.off` was started but neither its capture nor its output is journaled: the value is
    /// unknown, so HA is left off and the step says so.
    Unknown,
}

/// What an undo step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UndoKind {
    /// Checks every backup file against the sha256 of its manifest.
    VerifyBackups {
        databases: Vec<String>,
    },
    HaOff,
    /// Stops the new container (T3) and removes it, or keeps it renamed.
    RemoveNew {
        node: String,
    },
    /// Drops, re-creates and restores the database from its checked backup.
    RestoreDatabase {
        database: String,
    },
    /// Renames the kept old container back, gives it back its restart policy (`start-new`
    /// set it to `no` while it is kept), starts it and waits until it is ready.
    StartOld {
        node: String,
        /// The policy it had (the one `start-new`'s spec copied from it).
        #[serde(default)]
        restart_policy: Option<RestartPolicy>,
    },
    /// Every node ONLINE and healthy; `restarted` are the nodes whose old container came back.
    VerifyOnline {
        restarted: Vec<String>,
    },
    HaRestore {
        before: HaBefore,
    },
}

impl Kind for UndoKind {
    type Output = UndoOutput;

    fn name(&self) -> &'static str {
        match self {
            Self::VerifyBackups { .. } => names::BACKUPS_VERIFY,
            Self::HaOff => names::HA_OFF,
            Self::RemoveNew { .. } => names::REMOVE_NEW,
            Self::RestoreDatabase { .. } => names::RESTORE,
            Self::StartOld { .. } => names::START_OLD,
            Self::VerifyOnline { .. } => names::ONLINE_VERIFY,
            Self::HaRestore { .. } => names::HA_RESTORE,
        }
    }

    fn id(&self) -> StepId {
        match self {
            Self::VerifyBackups { .. } => StepId::undo_backups_verify(),
            Self::HaOff => StepId::undo_ha_off(),
            Self::RemoveNew { node } => StepId::undo_remove_new(node),
            Self::RestoreDatabase { database } => StepId::undo_restore(database),
            Self::StartOld { node, .. } => StepId::undo_start_old(node),
            Self::VerifyOnline { .. } => StepId::undo_online_verify(),
            Self::HaRestore { .. } => StepId::undo_ha_restore(),
        }
    }

    /// From the first new container stopped to the last node ONLINE again.
    fn in_downtime(&self) -> bool {
        matches!(
            self,
            Self::RemoveNew { .. }
                | Self::RestoreDatabase { .. }
                | Self::StartOld { .. }
                | Self::VerifyOnline { .. }
        )
    }

    fn node(&self) -> Option<&str> {
        match self {
            Self::RemoveNew { node } | Self::StartOld { node, .. } => Some(node),
            _ => None,
        }
    }

    fn summary(output: &UndoOutput) -> Option<String> {
        output.summary()
    }
}

/// Everything `omsup rollback` shows and executes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// The forward run this plan undoes.
    pub undoes_run: String,
    /// In dependency order.
    pub steps: Vec<Step<UndoKind>>,
    /// The forward run got to `start-new` or `init`: the meta databases go back to their
    /// backups, so whatever was written to them since the backup is lost.
    pub loses_data_since_backup: bool,
    /// What the forward run changed that this plan cannot or does not undo, in words.
    pub notes: Vec<String>,
}

impl RollbackPlan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step<UndoKind>> {
        crate::step::find(&self.steps, id)
    }
}

/// Plans the rollback of run `undoes_run` from the steps it reached (any order).
pub fn plan_rollback(undoes_run: &str, reached: &[ForwardStep]) -> RollbackPlan {
    let mut notes = Vec::new();
    let mut stopped: BTreeSet<&str> = BTreeSet::new();
    let mut started_new: BTreeSet<&str> = BTreeSet::new();
    let mut restart_policies: BTreeMap<&str, Option<RestartPolicy>> = BTreeMap::new();
    let mut pruned: BTreeSet<&str> = BTreeSet::new();
    let mut backups: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut init_reached = false;
    let mut ha_off: Option<&ForwardStep> = None;
    let mut ha_restore_reached = false;
    for step in reached {
        match &step.kind {
            StepKind::Preflight
            | StepKind::LoadImage { .. }
            | StepKind::WaitReady { .. }
            | StepKind::VerifyOnline => {}
            StepKind::HaOff => ha_off = Some(step),
            StepKind::StopOld { node } => {
                stopped.insert(node);
            }
            StepKind::PruneHeartbeats { database, .. } => {
                pruned.insert(database);
            }
            StepKind::Backup { database } => {
                let file = match (&step.output, step.reached) {
                    (Some(StepOutput::Backup(manifest)), Reached::Succeeded) => {
                        Some(manifest.file.display().to_string())
                    }
                    (_, Reached::Succeeded) => Some("?".to_owned()),
                    (_, Reached::Intent) => None,
                };
                backups.insert(database, file);
            }
            StepKind::StartNew { node, container } => {
                restart_policies.insert(node.as_str(), container.settings.restart_policy.clone());
                started_new.insert(node);
                stopped.insert(node);
            }
            StepKind::Init { .. } => init_reached = true,
            StepKind::HaRestore => ha_restore_reached = true,
        }
    }
    let backed_up = |database: &str| backups.get(database).and_then(Option::as_deref);

    let loses_data_since_backup = !started_new.is_empty() || init_reached;
    let mut restore: BTreeSet<&str> = BTreeSet::new();
    if loses_data_since_backup {
        restore.extend(
            backups
                .iter()
                .filter_map(|(db, file)| file.as_ref().map(|_| *db)),
        );
        for (database, file) in &backups {
            if file.is_none() {
                notes.push(format!(
                    "the backup of `{database}` did not finish: `{database}` is not restored"
                ));
            }
        }
        if backups.is_empty() {
            notes.push(
                "the run wrote to the meta databases but took no backups: they are not restored"
                    .into(),
            );
        }
    }
    for database in &pruned {
        if backed_up(database).is_some() {
            restore.insert(database);
        } else {
            notes.push(format!(
                "heartbeats were pruned in `{database}` before any backup of it finished: the \
                 pruned `heatbeat_sequence` rows are not restored (OMS needs only the newest)"
            ));
        }
    }
    if !started_new.is_empty() || init_reached {
        notes.push(
            "components such as full import, the JDBC writer or connectors may need manual \
             recovery after a rollback (OMS documents this)"
                .into(),
        );
    }

    let touches_world = !restore.is_empty() || !stopped.is_empty();
    let ha_before = match ha_off {
        Some(step) => {
            let journaled = match &step.output {
                Some(StepOutput::HaOff(off)) => Some(&off.previous),
                _ => None,
            }
            .or_else(|| step.captured.as_ref().and_then(Capture::ha_config));
            match journaled {
                Some(value) => HaBefore::Journaled {
                    value: value.clone(),
                },
                None => {
                    notes.push(
                        "the value `ha.config` had before the run was not journaled (`ha.off` \
                         did not finish): HA is left off; check `ha.config` by hand"
                            .into(),
                    );
                    HaBefore::Unknown
                }
            }
        }
        None => HaBefore::WasOff,
    };
    let plan_ha_restore = ha_off.is_some() || touches_world || ha_restore_reached;
    let plan_ha_off = touches_world || ha_restore_reached;

    let mut b: Builder<UndoKind> = Builder::default();
    let verify = (!restore.is_empty()).then(|| {
        let databases: Vec<String> = restore.iter().map(|d| (*d).to_owned()).collect();
        b.add(
            UndoKind::VerifyBackups {
                databases: databases.clone(),
            },
            vec![],
            format!(
                "check the sha256 of the backups of {} before anything is dropped",
                databases.join(", ")
            ),
        )
    });
    let ha_off_id = plan_ha_off.then(|| {
        b.add(
            UndoKind::HaOff,
            verify.iter().cloned().collect(),
            "ha.config: enable -> false while containers and databases change",
        )
    });
    let first: Vec<StepId> = ha_off_id.or(verify).into_iter().collect();

    let mut removals: BTreeMap<&str, StepId> = BTreeMap::new();
    for node in &started_new {
        let id = b.add(
            UndoKind::RemoveNew {
                node: (*node).to_owned(),
            },
            first.clone(),
            format!(
                "stop the new container on node {node} (records T3), then remove it (or keep it renamed)"
            ),
        );
        removals.insert(node, id);
    }
    let mut restores = Vec::new();
    for database in &restore {
        let mut deps: Vec<StepId> = removals.values().cloned().collect();
        if deps.is_empty() {
            deps.clone_from(&first);
        }
        restores.push(b.add(
            UndoKind::RestoreDatabase {
                database: (*database).to_owned(),
            },
            deps,
            format!(
                "drop and re-create `{database}`, restore it from {} and check its row counts",
                backed_up(database).unwrap_or("its backup")
            ),
        ));
    }
    let mut starts = Vec::new();
    for node in &stopped {
        let mut deps = restores.clone();
        deps.extend(removals.get(node).cloned());
        if deps.is_empty() {
            deps.clone_from(&first);
        }
        starts.push(b.add(
            UndoKind::StartOld {
                node: (*node).to_owned(),
                restart_policy: restart_policies.get(node).cloned().flatten(),
            },
            deps,
            format!(
                "rename the kept old container on node {node} back, start it and wait until it is ready"
            ),
        ));
    }
    let online = (!starts.is_empty()).then(|| {
        b.add(
            UndoKind::VerifyOnline {
                restarted: stopped.iter().map(|n| (*n).to_owned()).collect(),
            },
            starts.clone(),
            "every server ONLINE in cm.host and healthy, on the old containers",
        )
    });
    if plan_ha_restore {
        // After everything else: the online check, or whatever the plan ends with.
        let deps = match &online {
            Some(id) => vec![id.clone()],
            None => b.sinks(),
        };
        let changes = match &ha_before {
            HaBefore::Journaled { value } => format!(
                "ha.config: back to the value before the run (enable {}), refetchStoreIntervalMin above T3 - T1 unless perceiveStoreClientCheckpoint",
                value.enable()
            ),
            HaBefore::WasOff => "ha.config: enable false (HA was off before the run), refetchStoreIntervalMin above T3 - T1 unless perceiveStoreClientCheckpoint".into(),
            HaBefore::Unknown => "ha.config: left off (its value before the run is unknown)".into(),
        };
        b.add(UndoKind::HaRestore { before: ha_before }, deps, changes);
    }
    RollbackPlan {
        undoes_run: undoes_run.to_owned(),
        steps: b.finish(),
        loses_data_since_backup,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::{
        BackupManifest, HaOffOutput, HaRestoreOutput, InitOutput, LoadImageOutput, PreflightOutput,
        PruneHeartbeatsOutput, StartNewOutput, StopOldOutput, VerifyOnlineOutput, WaitReadyOutput,
    };
    use crate::steps::InitScope;

    const NODES: [&str; 2] = ["10.0.0.2", "10.0.0.3"];
    const DATABASES: [&str; 3] = ["rm_428", "cm_428", "cm_hb_428"];

    fn succeeded(kind: StepKind, output: StepOutput) -> ForwardStep {
        ForwardStep {
            id: kind.id(),
            kind,
            reached: Reached::Succeeded,
            captured: None,
            output: Some(output),
        }
    }

    fn intent(kind: StepKind) -> ForwardStep {
        ForwardStep {
            id: kind.id(),
            kind,
            reached: Reached::Intent,
            captured: None,
            output: None,
        }
    }

    fn ha_value(enable: bool) -> HaConfig {
        HaConfig::parse(&format!(
            r#"{{"enable": {enable}, "perceiveStoreClientCheckpoint": false, "refetchStoreIntervalMin": 30}}"#
        ))
        .unwrap()
    }

    /// The forward run of a two-node, one-region upgrade, in its step order, every step
    /// succeeded.
    fn full_run() -> Vec<ForwardStep> {
        let mut steps = vec![
            succeeded(
                StepKind::Preflight,
                StepOutput::Preflight(PreflightOutput { checked_at: 99 }),
            ),
            succeeded(
                StepKind::HaOff,
                StepOutput::HaOff(HaOffOutput {
                    previous: ha_value(true),
                    changed: true,
                    at: 100,
                }),
            ),
        ];
        for node in NODES {
            steps.push(succeeded(
                StepKind::LoadImage { node: node.into() },
                StepOutput::LoadImage(LoadImageOutput {
                    image_id: "sha256:new".into(),
                    took_ms: 1,
                }),
            ));
            steps.push(succeeded(
                StepKind::StopOld { node: node.into() },
                StepOutput::StopOld(StopOldOutput {
                    container_id: format!("old-{node}"),
                    was_running: true,
                    stopped_at: 110,
                }),
            ));
        }
        steps.push(succeeded(
            StepKind::PruneHeartbeats {
                region: "hz".into(),
                database: "cm_hb_428".into(),
            },
            StepOutput::PruneHeartbeats(PruneHeartbeatsOutput {
                kept_id: Some(7),
                deleted_rows: 6,
            }),
        ));
        for database in DATABASES {
            steps.push(succeeded(
                StepKind::Backup {
                    database: database.into(),
                },
                StepOutput::Backup(BackupManifest {
                    database: database.into(),
                    file: format!("/b/{database}.sql").into(),
                    size_bytes: 1,
                    sha256: "00".into(),
                    row_counts: BTreeMap::new(),
                    create_database: String::new(),
                    dump_client: "mariadb-dump".into(),
                }),
            ));
        }
        for node in NODES {
            steps.push(succeeded(
                StepKind::StartNew {
                    node: node.into(),
                    container: Box::new(crate::container::own_spec(&crate::synthetic::container(
                        node,
                        "4.2.9",
                        vec![],
                    ))),
                },
                StepOutput::StartNew(StartNewOutput {
                    old_container_id: Some(format!("old-{node}")),
                    kept_as: "oms-omsup-4.2.8".into(),
                    new_container_id: "new".into(),
                    created: true,
                    binds: vec![],
                    health_port: 8089,
                }),
            ));
            steps.push(succeeded(
                StepKind::WaitReady { node: node.into() },
                StepOutput::WaitReady(WaitReadyOutput { ready_after_ms: 1 }),
            ));
        }
        steps.push(succeeded(
            StepKind::Init {
                scope: InitScope::Region("hz".into()),
                run_on: NODES[0].into(),
            },
            StepOutput::Init(InitOutput {
                scope: "region hz".into(),
                run_on: NODES[0].into(),
                exit_code: 0,
                took_ms: 1,
                oms_version_remedy: false,
            }),
        ));
        steps.push(succeeded(
            StepKind::VerifyOnline,
            StepOutput::VerifyOnline(VerifyOnlineOutput {
                online: NODES.iter().map(|n| (*n).to_owned()).collect(),
                after_ms: 1,
            }),
        ));
        steps.push(succeeded(
            StepKind::HaRestore,
            StepOutput::HaRestore(HaRestoreOutput {
                value: ha_value(true),
                t2: 200,
                ha_off_window_s: 100,
            }),
        ));
        steps
    }

    /// The first `count` steps of the full run; the last one only reached its intent.
    fn prefix(count: usize) -> Vec<ForwardStep> {
        let mut steps: Vec<ForwardStep> = full_run().into_iter().take(count).collect();
        if let Some(last) = steps.last_mut() {
            last.reached = Reached::Intent;
            last.output = None;
        }
        steps
    }

    fn position(steps: &[ForwardStep], id: &str) -> usize {
        steps
            .iter()
            .position(|s| s.id == id)
            .expect("a forward step")
            + 1
    }

    fn ids(plan: &RollbackPlan) -> Vec<&str> {
        plan.steps.iter().map(|s| s.id.as_str()).collect()
    }

    fn deps<'p>(plan: &'p RollbackPlan, id: &str) -> Vec<&'p str> {
        let mut deps: Vec<&str> = plan
            .step(id)
            .unwrap_or_else(|| panic!("no step {id} in {:?}", ids(plan)))
            .depends_on
            .iter()
            .map(StepId::as_str)
            .collect();
        deps.sort();
        deps
    }

    /// Every dependency comes earlier in the list, with a lower lane.
    fn assert_ordered(plan: &RollbackPlan) {
        for (i, step) in plan.steps.iter().enumerate() {
            for dep in &step.depends_on {
                let j = plan
                    .steps
                    .iter()
                    .position(|s| &s.id == dep)
                    .unwrap_or_else(|| panic!("{} depends on unknown {dep}", step.id));
                assert!(j < i, "{} before its dependency {dep}", step.id);
                assert!(plan.steps[j].lane < step.lane, "{} lane", step.id);
            }
        }
    }

    #[test]
    fn a_full_run_is_undone_in_the_safe_order() {
        let plan = plan_rollback("run-1", &full_run());
        assert_ordered(&plan);
        assert_eq!(plan.undoes_run, "run-1");
        assert!(plan.loses_data_since_backup);
        assert_eq!(
            ids(&plan),
            [
                "undo.backups.verify",
                "undo.ha.off",
                "undo.node[10.0.0.2].remove-new",
                "undo.node[10.0.0.3].remove-new",
                "undo.db[cm_428].restore",
                "undo.db[cm_hb_428].restore",
                "undo.db[rm_428].restore",
                "undo.node[10.0.0.2].start-old",
                "undo.node[10.0.0.3].start-old",
                "undo.online.verify",
                "undo.ha.restore",
            ]
        );
        assert_eq!(
            plan.step("undo.backups.verify").unwrap().kind,
            UndoKind::VerifyBackups {
                databases: vec!["cm_428".into(), "cm_hb_428".into(), "rm_428".into()]
            }
        );
        assert_eq!(deps(&plan, "undo.ha.off"), ["undo.backups.verify"]);
        assert_eq!(
            deps(&plan, "undo.node[10.0.0.2].remove-new"),
            ["undo.ha.off"]
        );
        assert_eq!(
            deps(&plan, "undo.db[rm_428].restore"),
            [
                "undo.node[10.0.0.2].remove-new",
                "undo.node[10.0.0.3].remove-new"
            ]
        );
        assert_eq!(
            deps(&plan, "undo.node[10.0.0.3].start-old"),
            [
                "undo.db[cm_428].restore",
                "undo.db[cm_hb_428].restore",
                "undo.db[rm_428].restore",
                "undo.node[10.0.0.3].remove-new"
            ]
        );
        assert_eq!(deps(&plan, "undo.ha.restore"), ["undo.online.verify"]);
        // Removals run side by side, and so do the restores.
        let lane = |id: &str| plan.step(id).unwrap().lane;
        assert_eq!(
            lane("undo.node[10.0.0.2].remove-new"),
            lane("undo.node[10.0.0.3].remove-new")
        );
        assert_eq!(
            lane("undo.db[rm_428].restore"),
            lane("undo.db[cm_hb_428].restore")
        );
        assert_eq!(
            plan.step("undo.ha.restore").unwrap().kind,
            UndoKind::HaRestore {
                before: HaBefore::Journaled {
                    value: ha_value(true)
                }
            }
        );
        assert!(!plan.step("undo.backups.verify").unwrap().downtime);
        assert!(plan.step("undo.db[rm_428].restore").unwrap().downtime);
        assert!(
            plan.step("undo.db[rm_428].restore")
                .unwrap()
                .changes
                .contains("/b/rm_428.sql")
        );
    }

    #[test]
    fn nothing_reached_or_only_harmless_steps_plan_nothing() {
        assert!(plan_rollback("r", &[]).is_empty());
        let harmless: Vec<ForwardStep> = full_run()
            .into_iter()
            .filter(|s| {
                matches!(
                    s.kind,
                    StepKind::Preflight | StepKind::LoadImage { .. } | StepKind::Backup { .. }
                )
            })
            .collect();
        let plan = plan_rollback("r", &harmless);
        assert!(plan.is_empty(), "{:?}", ids(&plan));
        assert!(!plan.loses_data_since_backup);
    }

    #[test]
    fn ha_off_alone_is_undone_by_restoring_ha_only() {
        let run = full_run();
        let plan = plan_rollback("r", &run[..position(&run, "ha.off")]);
        assert_eq!(ids(&plan), ["undo.ha.restore"]);
        assert!(plan.step("undo.ha.restore").unwrap().depends_on.is_empty());
        // Started but not finished: the value captured before acting is used.
        let mut started = intent(StepKind::HaOff);
        started.captured = Some(Capture::HaConfig {
            ha_config: ha_value(true),
        });
        let plan = plan_rollback("r", &[started]);
        assert_eq!(
            plan.step("undo.ha.restore").unwrap().kind,
            UndoKind::HaRestore {
                before: HaBefore::Journaled {
                    value: ha_value(true)
                }
            }
        );
        // Neither captured nor finished: unknown, and the plan says so.
        let plan = plan_rollback("r", &[intent(StepKind::HaOff)]);
        assert_eq!(
            plan.step("undo.ha.restore").unwrap().kind,
            UndoKind::HaRestore {
                before: HaBefore::Unknown
            }
        );
        assert!(plan.notes.iter().any(|n| n.contains("not journaled")));
    }

    #[test]
    fn stopped_containers_are_started_again_without_touching_databases() {
        let run = full_run();
        // The second stop only reached its intent: it may have stopped, so it is undone too.
        let plan = plan_rollback("r", &prefix(position(&run, "node[10.0.0.3].stop-old")));
        assert_ordered(&plan);
        assert!(!plan.loses_data_since_backup);
        assert_eq!(
            ids(&plan),
            [
                "undo.ha.off",
                "undo.node[10.0.0.2].start-old",
                "undo.node[10.0.0.3].start-old",
                "undo.online.verify",
                "undo.ha.restore",
            ]
        );
        assert_eq!(
            deps(&plan, "undo.node[10.0.0.2].start-old"),
            ["undo.ha.off"]
        );
        assert_eq!(
            plan.step("undo.online.verify").unwrap().kind,
            UndoKind::VerifyOnline {
                restarted: vec!["10.0.0.2".into(), "10.0.0.3".into()]
            }
        );
    }

    #[test]
    fn a_pruned_heartbeat_database_is_restored_once_backed_up() {
        let run = full_run();
        // Pruned, backups done, no new container: only the pruned database is restored.
        let plan = plan_rollback("r", &run[..position(&run, "db[cm_hb_428].backup")]);
        assert_ordered(&plan);
        assert!(!plan.loses_data_since_backup);
        assert_eq!(
            ids(&plan),
            [
                "undo.backups.verify",
                "undo.ha.off",
                "undo.db[cm_hb_428].restore",
                "undo.node[10.0.0.2].start-old",
                "undo.node[10.0.0.3].start-old",
                "undo.online.verify",
                "undo.ha.restore",
            ]
        );
        assert_eq!(deps(&plan, "undo.db[cm_hb_428].restore"), ["undo.ha.off"]);
        // Pruned but its backup never finished: nothing to restore from, and a note says so.
        let plan = plan_rollback("r", &prefix(position(&run, "db[cm_hb_428].backup")));
        assert!(plan.step("undo.db[cm_hb_428].restore").is_none());
        assert!(plan.step("undo.backups.verify").is_none());
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("pruned in `cm_hb_428`"))
        );
    }

    #[test]
    fn a_run_cut_off_in_start_new_restores_every_backup_and_removes_only_what_was_started() {
        let run = full_run();
        // The first start-new only reached its intent; the second never started.
        let plan = plan_rollback("r", &prefix(position(&run, "node[10.0.0.2].start-new")));
        assert_ordered(&plan);
        assert!(plan.loses_data_since_backup);
        assert!(plan.step("undo.node[10.0.0.2].remove-new").is_some());
        assert!(plan.step("undo.node[10.0.0.3].remove-new").is_none());
        for database in DATABASES {
            assert!(
                plan.step(&format!("undo.db[{database}].restore")).is_some(),
                "{database}"
            );
        }
        assert_eq!(
            deps(&plan, "undo.node[10.0.0.3].start-old"),
            [
                "undo.db[cm_428].restore",
                "undo.db[cm_hb_428].restore",
                "undo.db[rm_428].restore"
            ]
        );
    }

    #[test]
    fn an_unfinished_backup_is_not_restored_and_is_named() {
        let mut run = full_run();
        let backup = position(&run, "db[rm_428].backup") - 1;
        run[backup].reached = Reached::Intent;
        run[backup].output = None;
        let plan = plan_rollback("r", &run);
        assert!(plan.step("undo.db[rm_428].restore").is_none());
        assert!(plan.step("undo.db[cm_428].restore").is_some());
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("the backup of `rm_428` did not finish"))
        );
    }

    #[test]
    fn without_a_forward_ha_off_ha_goes_back_to_off() {
        let run: Vec<ForwardStep> = full_run()
            .into_iter()
            .filter(|s| s.kind != StepKind::HaOff)
            .collect();
        let plan = plan_rollback("r", &run);
        assert!(plan.step("undo.ha.off").is_some());
        assert_eq!(
            plan.step("undo.ha.restore").unwrap().kind,
            UndoKind::HaRestore {
                before: HaBefore::WasOff
            }
        );
    }

    #[test]
    fn the_plan_round_trips_through_json() {
        let plan = plan_rollback("run-1", &full_run());
        let text = serde_json::to_string(&plan).unwrap();
        let back: RollbackPlan = serde_json::from_str(&text).unwrap();
        assert_eq!(back, plan);
        assert!(text.contains(r#""kind":"remove_new""#), "{text}");
    }
}
