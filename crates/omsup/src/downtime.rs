//! Whether a run stopped inside the downtime window, read from its journal alone: OMS is down
//! from the first old container stopped (the first `stop-old` intent of an apply, the first
//! `remove-new` intent of a rollback) until every `online.verify` step of the run succeeded.
//! The failure and interruption messages and `omsup status` say so, with what each way out
//! costs.

use omsup_journal::{RunKind, RunState, StepState, Timestamp};
use omsup_model::step_id::names;

/// A run that stopped with OMS down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Down {
    /// When the window opened (T1): the first intent of a step that stops OMS.
    pub since: Timestamp,
    pub kind: RunKind,
}

/// The step kinds that open the window, per run kind.
fn opening_kinds(kind: RunKind) -> &'static [&'static str] {
    match kind {
        RunKind::Apply => &[names::STOP_OLD],
        RunKind::Rollback => &[names::REMOVE_NEW],
    }
}

/// `Some` when `run` entered the downtime window and has not closed it.
pub fn down_since(run: &RunState) -> Option<Down> {
    let kind = run.info.kind;
    let opens = opening_kinds(kind);
    let since = run
        .steps
        .values()
        .filter(|record| opens.contains(&record.step_kind.as_str()))
        .map(|record| record.first_intent_at)
        .min()?;
    let mut closing = run
        .info
        .planned_steps
        .iter()
        .filter(|planned| planned.step_kind == names::ONLINE_VERIFY)
        .peekable();
    closing.peek()?;
    let closed = closing.all(|planned| {
        run.step(planned.step_id.as_str())
            .is_some_and(|record| record.state == StepState::Succeeded)
    });
    (!closed).then_some(Down { since, kind })
}

impl Down {
    /// `OMS is down since T1 (for 12 min)`.
    pub fn headline(&self, now: Timestamp) -> String {
        format!(
            "OMS is down since {} (for {}): the {} stopped inside its downtime window",
            self.since,
            omsup_journal::time::human_duration(now.duration_since(self.since)),
            self.kind
        )
    }

    /// What each way out costs.
    pub fn ways_out(&self) -> &'static str {
        match self.kind {
            RunKind::Apply => {
                "`omsup resume` continues the upgrade (OMS is back once the new version is up \
                 and ONLINE); `omsup rollback` restores the meta databases from the run's \
                 backups and restarts the old version (what OMS wrote since the backups is lost)"
            }
            RunKind::Rollback => {
                "`omsup resume` continues the rollback (OMS is back once the old version is up \
                 and ONLINE)"
            }
        }
    }
}
