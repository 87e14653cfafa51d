//! What steps remember before they act ([`Capture`]) and what they return after
//! ([`StepOutput`] for forward steps, [`UndoOutput`] for undo steps), as types.
//!
//! The executors return these, the runner journals them (serde at the journal's boundary, the
//! journal itself stores JSON) and reads them back as these types on resume and rollback.
//! Nothing reads a step's output by string key: T1 is the earliest [`StopOldOutput`], a backup
//! is a [`BackupManifest`], the `ha.config` value is a [`HaConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use omsup_model::StepId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `ha.config` (in rm's `oms_normal_config`) as stored: a JSON object whose keys OMS owns.
/// Every key is kept, in its stored order; omsup reads and sets only three.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HaConfig(Map<String, Value>);

/// The keys omsup reads, through serde; a key of another type reads as absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct HaKeys {
    #[serde(deserialize_with = "lenient")]
    enable: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    perceive_store_client_checkpoint: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    refetch_store_interval_min: Option<u64>,
}

fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

impl HaConfig {
    pub const ENABLE: &str = "enable";
    pub const PERCEIVE_STORE_CLIENT_CHECKPOINT: &str = "perceiveStoreClientCheckpoint";
    pub const REFETCH_STORE_INTERVAL_MIN: &str = "refetchStoreIntervalMin";

    /// Parses the stored text; `Err` when it is not a JSON object.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value when it is a JSON object.
    pub fn from_value(value: &Value) -> Option<Self> {
        serde_json::from_value(value.clone()).ok()
    }

    fn keys(&self) -> HaKeys {
        HaKeys::deserialize(Value::Object(self.0.clone())).unwrap_or_default()
    }

    /// `enable` (absent: false).
    pub fn enable(&self) -> bool {
        self.keys().enable.unwrap_or(false)
    }

    /// `perceiveStoreClientCheckpoint` (absent: false).
    pub fn perceive_store_client_checkpoint(&self) -> bool {
        self.keys()
            .perceive_store_client_checkpoint
            .unwrap_or(false)
    }

    /// `refetchStoreIntervalMin` (absent: 0).
    pub fn refetch_store_interval_min(&self) -> u64 {
        self.keys().refetch_store_interval_min.unwrap_or(0)
    }

    pub fn set_enable(&mut self, enable: bool) {
        self.0.insert(Self::ENABLE.into(), Value::Bool(enable));
    }

    pub fn set_perceive_store_client_checkpoint(&mut self, perceive: bool) {
        self.0.insert(
            Self::PERCEIVE_STORE_CLIENT_CHECKPOINT.into(),
            Value::Bool(perceive),
        );
    }

    pub fn set_refetch_store_interval_min(&mut self, minutes: u64) {
        self.0.insert(
            Self::REFETCH_STORE_INTERVAL_MIN.into(),
            Value::from(minutes),
        );
    }

    /// The stored text (keys in their order).
    pub fn to_json_text(&self) -> String {
        self.to_value().to_string()
    }

    /// The whole value as JSON (for tests and renderers that show it as it is).
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

impl std::fmt::Display for HaConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.to_json_text())
    }
}

/// What a step read, without changing anything, before its first attempt; journaled with its
/// intent and handed to every later attempt (a resume), so a retry knows the world as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Capture {
    /// `ha.config` before `ha.off` (what `ha.restore` and rollback write back), or before
    /// `ha.restore` (its base when there was no `ha.off`).
    HaConfig { ha_config: HaConfig },
    /// The time just before `stop-old` acted: T1, if the stop is only found done later.
    BeforeStop { at: u64 },
}

impl Capture {
    pub fn ha_config(&self) -> Option<&HaConfig> {
        match self {
            Self::HaConfig { ha_config } => Some(ha_config),
            Self::BeforeStop { .. } => None,
        }
    }

    pub fn before_stop(&self) -> Option<u64> {
        match self {
            Self::BeforeStop { at } => Some(*at),
            Self::HaConfig { .. } => None,
        }
    }
}

/// What a backup holds and how to check it; journaled as `backup`'s output and written next to
/// the dump file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub database: String,
    /// The dump file (`<dir>/<database>.sql`).
    pub file: PathBuf,
    pub size_bytes: u64,
    pub sha256: String,
    /// Rows per table, counted just before the dump.
    pub row_counts: BTreeMap<String, u64>,
    /// `SHOW CREATE DATABASE`, so a restore re-creates the same character set and collation.
    pub create_database: String,
    /// The client that wrote the dump, as found on PATH or configured.
    pub dump_client: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightOutput {
    pub checked_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadImageOutput {
    pub image_id: String,
    pub took_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaOffOutput {
    /// The value before the run (the first attempt's capture wins over a retry's read).
    pub previous: HaConfig,
    /// False when HA was already off.
    pub changed: bool,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOldOutput {
    pub container_id: String,
    /// False when it was found already stopped.
    pub was_running: bool,
    /// When it stopped: T1 is the earliest of these.
    pub stopped_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneHeartbeatsOutput {
    /// `max(id)`, the one row kept (`None` for an empty table).
    pub kept_id: Option<i64>,
    pub deleted_rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartNewOutput {
    pub old_container_id: Option<String>,
    /// The name the old container is kept under.
    pub kept_as: String,
    pub new_container_id: String,
    /// False when this run's container already existed (a resumed step).
    pub created: bool,
    pub binds: Vec<String>,
    /// Where the node answers `/oms/health`.
    pub health_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitReadyOutput {
    pub ready_after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitOutput {
    /// `region hz` or `node 10.0.0.2`.
    pub scope: String,
    pub run_on: String,
    pub exit_code: i64,
    pub took_ms: u64,
    /// The `oms_version` remedy ran before a second, successful init.
    pub oms_version_remedy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOnlineOutput {
    pub online: Vec<String>,
    pub after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaRestoreOutput {
    /// The value written.
    pub value: HaConfig,
    /// T2.
    pub t2: u64,
    /// T2 − T1.
    pub ha_off_window_s: u64,
}

/// A forward step's output, one variant per [`crate::steps::StepKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepOutput {
    Preflight(PreflightOutput),
    LoadImage(LoadImageOutput),
    HaOff(HaOffOutput),
    StopOld(StopOldOutput),
    PruneHeartbeats(PruneHeartbeatsOutput),
    Backup(BackupManifest),
    StartNew(StartNewOutput),
    WaitReady(WaitReadyOutput),
    Init(InitOutput),
    VerifyOnline(VerifyOnlineOutput),
    HaRestore(HaRestoreOutput),
}

impl StepOutput {
    /// One line for the progress view.
    pub fn summary(&self) -> Option<String> {
        match self {
            Self::HaOff(o) => Some(format!("ha.config enable was {}", o.previous.enable())),
            Self::StopOld(o) => Some(if o.was_running {
                "stopped".to_owned()
            } else {
                "already stopped".to_owned()
            }),
            Self::Backup(m) => Some(format!("{} bytes to {}", m.size_bytes, m.file.display())),
            Self::StartNew(o) => Some(format!("old container kept as `{}`", o.kept_as)),
            Self::Init(o) => Some(if o.oms_version_remedy {
                "succeeded after the oms_version remedy".to_owned()
            } else {
                "succeeded".to_owned()
            }),
            Self::HaRestore(o) => Some(format!(
                "enable={}, HA was off for {} s",
                o.value.enable(),
                o.ha_off_window_s
            )),
            Self::Preflight(_)
            | Self::LoadImage(_)
            | Self::PruneHeartbeats(_)
            | Self::WaitReady(_)
            | Self::VerifyOnline(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedBackup {
    pub database: String,
    pub file: PathBuf,
    pub sha256: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupsVerifiedOutput {
    pub verified: Vec<VerifiedBackup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoHaOffOutput {
    /// The value found (written back with `enable: false` when HA was off before the run).
    pub found: HaConfig,
    pub changed: bool,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveNewOutput {
    /// `None` when there was no new container (never created, or already removed).
    pub container_id: Option<String>,
    pub was_running: bool,
    /// When the new container stopped: T3 is the latest of these.
    pub t3: u64,
    pub removed: bool,
    /// With `--keep-new`: the name it is kept under.
    pub kept_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOutput {
    pub database: String,
    pub file: PathBuf,
    pub sha256: String,
    pub row_counts: BTreeMap<String, u64>,
    pub took_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOldOutput {
    pub container_id: String,
    pub image: Option<String>,
    /// The kept name it was renamed back from.
    pub renamed_from: Option<String>,
    /// False when it was found running.
    pub started: bool,
    pub ready_after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoVerifyOnlineOutput {
    pub online: Vec<String>,
    /// The image each restarted node runs.
    pub images: BTreeMap<String, Option<String>>,
    pub after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoHaRestoreOutput {
    pub value: HaConfig,
    /// False when the value before the run was unknown (HA left off).
    pub previous_known: bool,
    pub t1: Option<u64>,
    pub t3: u64,
    pub window_s: u64,
}

/// An undo step's output, one variant per [`crate::rollback::UndoKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UndoOutput {
    BackupsVerified(BackupsVerifiedOutput),
    HaOff(UndoHaOffOutput),
    RemoveNew(RemoveNewOutput),
    Restore(RestoreOutput),
    StartOld(StartOldOutput),
    VerifyOnline(UndoVerifyOnlineOutput),
    HaRestore(UndoHaRestoreOutput),
}

impl UndoOutput {
    /// One line for the progress view.
    pub fn summary(&self) -> Option<String> {
        None
    }
}

/// The outputs of a run's finished steps, by step id, read through typed accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs<O>(BTreeMap<StepId, O>);

impl<O> Default for Outputs<O> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<O> Outputs<O> {
    pub fn insert(&mut self, id: StepId, output: O) {
        self.0.insert(id, output);
    }

    pub fn get(&self, id: &StepId) -> Option<&O> {
        self.0.get(id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &O> {
        self.0.values()
    }
}

impl<O> FromIterator<(StepId, O)> for Outputs<O> {
    fn from_iter<I: IntoIterator<Item = (StepId, O)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// One typed accessor per output a later step or rollback reads.
macro_rules! accessor {
    ($name:ident, $enum:ident :: $variant:ident, $out:ty, $id:expr $(, $arg:ident)?) => {
        pub fn $name(&self $(, $arg: &str)?) -> Option<&$out> {
            match self.0.get(&$id) {
                Some($enum::$variant(output)) => Some(output),
                _ => None,
            }
        }
    };
}

impl Outputs<StepOutput> {
    accessor!(ha_off, StepOutput::HaOff, HaOffOutput, StepId::ha_off());
    accessor!(
        stop_old,
        StepOutput::StopOld,
        StopOldOutput,
        StepId::stop_old(node),
        node
    );
    accessor!(
        start_new,
        StepOutput::StartNew,
        StartNewOutput,
        StepId::start_new(node),
        node
    );
    accessor!(
        backup,
        StepOutput::Backup,
        BackupManifest,
        StepId::backup(database),
        database
    );
    accessor!(
        ha_restore,
        StepOutput::HaRestore,
        HaRestoreOutput,
        StepId::ha_restore()
    );

    /// T1, when HA went off for good: the first old container stopped (the earliest
    /// `stopped_at`), or `ha.off` itself when nothing was stopped.
    pub fn t1(&self) -> Option<u64> {
        let first_stop = self
            .values()
            .filter_map(|output| match output {
                StepOutput::StopOld(stop) => Some(stop.stopped_at),
                _ => None,
            })
            .min();
        first_stop.or_else(|| self.ha_off().map(|off| off.at))
    }
}

impl Outputs<UndoOutput> {
    accessor!(
        ha_off,
        UndoOutput::HaOff,
        UndoHaOffOutput,
        StepId::undo_ha_off()
    );
    accessor!(
        start_old,
        UndoOutput::StartOld,
        StartOldOutput,
        StepId::undo_start_old(node),
        node
    );
    accessor!(
        remove_new,
        UndoOutput::RemoveNew,
        RemoveNewOutput,
        StepId::undo_remove_new(node),
        node
    );
    accessor!(
        restore,
        UndoOutput::Restore,
        RestoreOutput,
        StepId::undo_restore(database),
        database
    );
    accessor!(
        ha_restore,
        UndoOutput::HaRestore,
        UndoHaRestoreOutput,
        StepId::undo_ha_restore()
    );

    /// T3: the last new container stopped by the rollback.
    pub fn t3(&self) -> Option<u64> {
        self.values()
            .filter_map(|output| match output {
                UndoOutput::RemoveNew(remove) => Some(remove.t3),
                _ => None,
            })
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha_config_keeps_every_key_in_order_and_reads_three() {
        let mut config =
            HaConfig::parse(r#"{"enable":true,"zeta":1,"refetchStoreIntervalMin":"x","alpha":2}"#)
                .unwrap();
        assert!(config.enable());
        assert!(!config.perceive_store_client_checkpoint());
        assert_eq!(
            config.refetch_store_interval_min(),
            0,
            "a string reads as absent"
        );
        config.set_enable(false);
        assert_eq!(
            config.to_json_text(),
            r#"{"enable":false,"zeta":1,"refetchStoreIntervalMin":"x","alpha":2}"#
        );
        assert!(HaConfig::parse("[1]").is_err());
    }

    #[test]
    fn t1_is_the_first_stop_else_ha_off() {
        let mut outputs: Outputs<StepOutput> = Outputs::default();
        outputs.insert(
            StepId::ha_off(),
            StepOutput::HaOff(HaOffOutput {
                previous: HaConfig::parse("{}").unwrap(),
                changed: true,
                at: 90,
            }),
        );
        assert_eq!(outputs.t1(), Some(90));
        for (node, at) in [("10.0.0.2", 120), ("10.0.0.3", 110)] {
            outputs.insert(
                StepId::stop_old(node),
                StepOutput::StopOld(StopOldOutput {
                    container_id: node.into(),
                    was_running: true,
                    stopped_at: at,
                }),
            );
        }
        assert_eq!(outputs.t1(), Some(110));
    }

    #[test]
    fn outputs_round_trip_through_json_with_their_kind() {
        let output = StepOutput::StopOld(StopOldOutput {
            container_id: "c".into(),
            was_running: false,
            stopped_at: 5,
        });
        let value = serde_json::to_value(&output).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"kind": "stop_old", "container_id": "c", "was_running": false, "stopped_at": 5})
        );
        assert_eq!(serde_json::from_value::<StepOutput>(value).unwrap(), output);
    }
}
