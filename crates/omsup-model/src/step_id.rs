//! [`StepId`]: the one id type of a step, shared by the planner, the executors, the runner and
//! the journal, and built by one constructor per step (never by `format!` at a call site).
//!
//! An id is `[undo.][scope.]name`: the scope names what the step acts on (`node[10.0.0.2]`,
//! `db[rm_428]`, `region[hz]`), and the name is the step kind's name (`stop-old`, `ha.off`,
//! `online.verify`), so a step has one name, whether in its id, in the journal's `step_kind` or
//! in the progress events. Forward and undo steps share the names of what they act on; an undo
//! step's id starts with `undo.`.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind names: a step id ends with its kind's name.
pub mod names {
    pub const PREFLIGHT: &str = "preflight";
    pub const HA_OFF: &str = "ha.off";
    pub const LOAD_IMAGE: &str = "load-image";
    pub const STOP_OLD: &str = "stop-old";
    pub const PRUNE_HEARTBEATS: &str = "prune-heartbeats";
    pub const BACKUP: &str = "backup";
    pub const START_NEW: &str = "start-new";
    pub const WAIT_READY: &str = "wait-ready";
    pub const INIT: &str = "init";
    pub const ONLINE_VERIFY: &str = "online.verify";
    pub const HA_RESTORE: &str = "ha.restore";
    // Undo steps (their ids start with `undo.`).
    pub const BACKUPS_VERIFY: &str = "backups.verify";
    pub const REMOVE_NEW: &str = "remove-new";
    pub const RESTORE: &str = "restore";
    pub const START_OLD: &str = "start-old";
    // `omsup rehearse`'s steps (their ids start with `rehearse.`; never journaled as a run's).
    pub const COPY: &str = "copy";
    pub const START: &str = "start";
    pub const CHECK: &str = "check";
}

/// A step's stable id, e.g. `node[10.0.0.2].stop-old`, `db[rm_428].backup`, `ha.off`,
/// `undo.db[rm_428].restore`. Serialized as the plain string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    /// An id read back (from the journal, a failpoint, a test): not built from its parts.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn plain(name: &str) -> Self {
        Self(name.to_owned())
    }

    fn scoped(scope: &str, subject: &str, name: &str) -> Self {
        Self(format!("{scope}[{subject}].{name}"))
    }

    fn undo(self) -> Self {
        Self(format!("undo.{}", self.0))
    }

    // Forward steps.

    pub fn preflight() -> Self {
        Self::plain(names::PREFLIGHT)
    }

    pub fn ha_off() -> Self {
        Self::plain(names::HA_OFF)
    }

    pub fn load_image(node: &str) -> Self {
        Self::scoped("node", node, names::LOAD_IMAGE)
    }

    pub fn stop_old(node: &str) -> Self {
        Self::scoped("node", node, names::STOP_OLD)
    }

    pub fn prune_heartbeats(region: &str) -> Self {
        Self::scoped("region", region, names::PRUNE_HEARTBEATS)
    }

    pub fn backup(database: &str) -> Self {
        Self::scoped("db", database, names::BACKUP)
    }

    pub fn start_new(node: &str) -> Self {
        Self::scoped("node", node, names::START_NEW)
    }

    pub fn wait_ready(node: &str) -> Self {
        Self::scoped("node", node, names::WAIT_READY)
    }

    /// The init run once for a region whose nodes share `cm_nodes`.
    pub fn region_init(region: &str) -> Self {
        Self::scoped("region", region, names::INIT)
    }

    /// The init run on one node (the region's nodes differ).
    pub fn node_init(node: &str) -> Self {
        Self::scoped("node", node, names::INIT)
    }

    pub fn online_verify() -> Self {
        Self::plain(names::ONLINE_VERIFY)
    }

    pub fn ha_restore() -> Self {
        Self::plain(names::HA_RESTORE)
    }

    // `omsup rehearse`'s steps.

    /// Copying a meta database into the rehearsal's scratch database.
    pub fn rehearse_copy(database: &str) -> Self {
        Self::scoped("rehearse.db", database, names::COPY)
    }

    pub fn rehearse_load_image() -> Self {
        Self(format!("rehearse.{}", names::LOAD_IMAGE))
    }

    /// Creating and starting the throwaway container.
    pub fn rehearse_start() -> Self {
        Self(format!("rehearse.{}", names::START))
    }

    pub fn rehearse_wait_ready() -> Self {
        Self(format!("rehearse.{}", names::WAIT_READY))
    }

    pub fn rehearse_init() -> Self {
        Self(format!("rehearse.{}", names::INIT))
    }

    /// The copies after init: version, rows, host ONLINE.
    pub fn rehearse_check() -> Self {
        Self(format!("rehearse.{}", names::CHECK))
    }

    // Undo steps.

    pub fn undo_backups_verify() -> Self {
        Self::plain(names::BACKUPS_VERIFY).undo()
    }

    pub fn undo_ha_off() -> Self {
        Self::ha_off().undo()
    }

    pub fn undo_remove_new(node: &str) -> Self {
        Self::scoped("node", node, names::REMOVE_NEW).undo()
    }

    pub fn undo_restore(database: &str) -> Self {
        Self::scoped("db", database, names::RESTORE).undo()
    }

    pub fn undo_start_old(node: &str) -> Self {
        Self::scoped("node", node, names::START_OLD).undo()
    }

    pub fn undo_online_verify() -> Self {
        Self::online_verify().undo()
    }

    pub fn undo_ha_restore() -> Self {
        Self::ha_restore().undo()
    }
}

impl fmt::Display for StepId {
    /// The id, padded like a `str` (`{:<36}` aligns step tables).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.pad(&self.0)
    }
}

impl Borrow<str> for StepId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StepId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for StepId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<String> for StepId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&StepId> for StepId {
    fn from(id: &StepId) -> Self {
        id.clone()
    }
}

impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_scope_then_kind_name() {
        assert_eq!(StepId::stop_old("10.0.0.2"), "node[10.0.0.2].stop-old");
        assert_eq!(StepId::backup("rm_428"), "db[rm_428].backup");
        assert_eq!(StepId::region_init("hz"), "region[hz].init");
        assert_eq!(StepId::ha_off(), "ha.off");
        assert_eq!(StepId::undo_restore("rm_428"), "undo.db[rm_428].restore");
        assert_eq!(StepId::undo_backups_verify(), "undo.backups.verify");
        assert_eq!(StepId::undo_online_verify(), "undo.online.verify");
        assert_eq!(format!("{:<8}|", StepId::ha_off()), "ha.off  |");
        assert_eq!(
            serde_json::to_string(&StepId::undo_start_old("10.0.0.3")).unwrap(),
            r#""undo.node[10.0.0.3].start-old""#
        );
    }
}
