//! The journal's state machine, after Oxide steno's `saga_log.rs`: the events a step goes
//! through, the legal transitions between them, and the replay that folds a run's event log
//! into a [`RunState`]. Pure: no SQL here, so the rules can be read (and tested) on their own.
//!
//! Per step (the attempt counter starts at 1):
//!
//! ```text
//! (none)      --Intent-->                  InFlight (attempt 1)
//! InFlight    --Succeeded | Failed-->      Succeeded | Failed
//! Failed      --Intent-->                  InFlight (attempt + 1)  a retry
//! Succeeded   (final)
//! ```
//!
//! Choices, documented:
//! - `Intent` is the durable promise written *before* the side effect. A step with an intent
//!   and no outcome is [`StepState::InFlight`]: resume must resolve it by observing the world.
//! - There is no `Intent -> Intent`. A resume that finds an in-flight step not done records
//!   that as `Failed` (with `"interrupted": true` in the payload, see
//!   [`crate::RunWriter::interrupted`]) and then writes a new `Intent`, so the log says what
//!   happened instead of silently starting over.
//! - `Succeeded` is final: a step succeeds once per run.
//! - Undo has no events of its own: a rollback is a run of its own whose steps are the
//!   compensations, journaled with the same three events (steno's `UndoStarted`/`UndoFinished`
//!   on the forward run were never written by omsup and were removed). A journal holding such
//!   rows (written by a test of schema version 1) is refused with
//!   [`crate::JournalError::RetiredEvent`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{RunId, StepId};
use crate::run::RunInfo;
use crate::time::Timestamp;

/// What happened to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// About to act; durable before the side effect.
    Intent,
    /// Done; the payload holds the step's outputs.
    Succeeded,
    /// Failed; the payload holds `error` and `details`.
    Failed,
}

/// Event names that schema version 1 allowed in the `event` column and that no omsup release
/// ever wrote (only the journal's own tests did): `started` and steno's undo events. Reading
/// one is refused with [`crate::JournalError::RetiredEvent`].
pub const RETIRED_EVENT_NAMES: [&str; 4] =
    ["started", "undo_started", "undo_finished", "undo_failed"];

impl EventKind {
    pub const ALL: [EventKind; 3] = [EventKind::Intent, EventKind::Succeeded, EventKind::Failed];

    /// The name stored in the `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Intent => "intent",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Where a step stands after replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// An intent with no outcome: the side effect may or may not have happened. Resume must
    /// resolve it by observing the world, never by guessing.
    InFlight,
    Succeeded,
    Failed,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::InFlight => "in_flight",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One row of the event table.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEvent {
    pub run_id: RunId,
    /// 1, 2, 3... per run, with no gaps.
    pub seq: u64,
    pub step_id: StepId,
    pub step_kind: String,
    pub kind: EventKind,
    /// The attempt the event belongs to (1, 2, ...: a retry after `Failed` is a new attempt).
    pub attempt: u32,
    pub at: Timestamp,
    pub payload: Value,
}

/// One event row's columns as stored (text and integers), before they are checked.
#[derive(Debug, Clone, Copy)]
pub struct EventColumns<'a> {
    pub run_id: &'a str,
    pub seq: i64,
    pub step_id: &'a str,
    pub step_kind: &'a str,
    pub event: &'a str,
    pub attempt: i64,
    pub at: &'a str,
    pub payload: &'a str,
}

impl JournalEvent {
    /// Decodes a stored row: the event name, the attempt, the RFC 3339 time and the JSON
    /// payload are checked, and a bad one is [`JournalError::Corrupt`] naming the run and seq.
    pub fn from_columns(row: EventColumns<'_>) -> Result<Self, crate::error::JournalError> {
        let run_id = RunId::new(row.run_id.to_owned());
        let seq = u64::try_from(row.seq).unwrap_or(0);
        let corrupt = |detail: String| crate::error::JournalError::Corrupt {
            run_id: run_id.clone(),
            seq,
            detail,
        };
        if RETIRED_EVENT_NAMES.contains(&row.event) {
            return Err(crate::error::JournalError::RetiredEvent {
                run_id,
                seq,
                event: row.event.to_owned(),
                schema_version: crate::schema::SCHEMA_VERSION,
            });
        }
        Ok(JournalEvent {
            step_id: StepId::new(row.step_id.to_owned()),
            step_kind: row.step_kind.to_owned(),
            kind: EventKind::parse(row.event)
                .ok_or_else(|| corrupt(format!("unknown event `{}`", row.event)))?,
            attempt: u32::try_from(row.attempt)
                .map_err(|_| corrupt(format!("attempt {} is out of range", row.attempt)))?,
            at: Timestamp::parse_rfc3339(row.at)
                .ok_or_else(|| corrupt(format!("`{}` is not an RFC 3339 UTC time", row.at)))?,
            payload: serde_json::from_str(row.payload)
                .map_err(|error| corrupt(format!("payload is not JSON: {error}")))?,
            run_id: run_id.clone(),
            seq,
        })
    }
}

/// Everything replay knows about one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step_id: StepId,
    pub step_kind: String,
    pub state: StepState,
    /// Attempts so far (1 after the first intent).
    pub attempts: u32,
    /// The first intent of the first attempt.
    pub first_intent_at: Timestamp,
    /// The intent of the current attempt.
    pub intent_at: Timestamp,
    /// The payload of the current attempt's intent.
    pub intent_payload: Value,
    /// The outcome of the current attempt.
    pub finished_at: Option<Timestamp>,
    /// The `Succeeded` payload: the step's outputs.
    pub output: Option<Value>,
    /// The last `Failed` error message (kept after a successful retry, for history).
    pub error: Option<String>,
    /// The seq of the step's last event.
    pub last_seq: u64,
}

impl StepRecord {
    /// How long the current attempt took (intent to outcome), if it has an outcome.
    pub fn duration(&self) -> Option<std::time::Duration> {
        self.finished_at
            .map(|finished| finished.duration_since(self.intent_at))
    }
}

/// Why an event may not follow a step's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    /// `(none)` or the step's state before the event.
    pub from: String,
    pub event: EventKind,
    pub reason: String,
}

/// What a step's next attempt number must be for `event`, given `record`.
pub fn expected_attempt(record: Option<&StepRecord>, event: EventKind) -> u32 {
    match (record, event) {
        (None, _) => 1,
        (Some(record), EventKind::Intent) => record.attempts + 1,
        (Some(record), _) => record.attempts,
    }
}

/// Applies one event to a step's record, or says why it is illegal. Checks the transition,
/// the attempt number and that the step kind does not change.
pub fn apply_event(
    record: Option<&StepRecord>,
    event: &JournalEvent,
) -> Result<StepRecord, IllegalTransition> {
    let from = record.map_or_else(|| "(none)".to_owned(), |r| r.state.as_str().to_owned());
    let illegal = |reason: String| IllegalTransition {
        from: from.clone(),
        event: event.kind,
        reason,
    };
    if let Some(record) = record
        && record.step_kind != event.step_kind
    {
        return Err(illegal(format!(
            "the step's kind changed from `{}` to `{}`",
            record.step_kind, event.step_kind
        )));
    }
    let expected = expected_attempt(record, event.kind);
    if event.attempt != expected {
        return Err(illegal(format!(
            "attempt {} where {expected} was expected",
            event.attempt
        )));
    }
    let Some(previous) = record else {
        return match event.kind {
            EventKind::Intent => Ok(StepRecord {
                step_id: event.step_id.clone(),
                step_kind: event.step_kind.clone(),
                state: StepState::InFlight,
                attempts: 1,
                first_intent_at: event.at,
                intent_at: event.at,
                intent_payload: event.payload.clone(),
                finished_at: None,
                output: None,
                error: None,
                last_seq: event.seq,
            }),
            _ => Err(illegal("a step's first event must be an intent".to_owned())),
        };
    };
    let mut next = previous.clone();
    next.last_seq = event.seq;
    match (previous.state, event.kind) {
        (StepState::Failed, EventKind::Intent) => {
            next.state = StepState::InFlight;
            next.attempts += 1;
            next.intent_at = event.at;
            next.intent_payload = event.payload.clone();
            next.finished_at = None;
        }
        (StepState::InFlight, EventKind::Succeeded) => {
            next.state = StepState::Succeeded;
            next.finished_at = Some(event.at);
            next.output = Some(event.payload.clone());
        }
        (StepState::InFlight, EventKind::Failed) => {
            next.state = StepState::Failed;
            next.finished_at = Some(event.at);
            next.error = Some(error_message_of(&event.payload));
        }
        (state, kind) => {
            let reason = match (state, kind) {
                (StepState::InFlight, EventKind::Intent) => {
                    "the current attempt has no outcome yet; record `failed` (interrupted) first"
                }
                (StepState::Succeeded, _) => {
                    "a step that succeeded is not run again in the same run"
                }
                (StepState::Failed, _) => "the attempt has failed; a retry begins with an intent",
                _ => "not a transition of the journal's state machine",
            };
            return Err(illegal(reason.to_owned()));
        }
    }
    Ok(next)
}

/// The `error` string of a `Failed` payload (`{"error": "...", "details": ...}`).
pub fn error_message_of(payload: &Value) -> String {
    payload
        .get("error")
        .and_then(Value::as_str)
        .map_or_else(|| payload.to_string(), str::to_owned)
}

/// A run rebuilt from its event log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// The run's row (kind, plan, who, where, state).
    pub info: RunInfo,
    /// Every step that has at least an intent, by id.
    pub steps: BTreeMap<StepId, StepRecord>,
    /// The last seq of the run (0 when no event yet).
    pub last_seq: u64,
}

impl RunState {
    /// The outputs a step recorded when it succeeded (`None` unless it succeeded).
    pub fn output_of(&self, step_id: &str) -> Option<&Value> {
        self.steps
            .get(step_id)
            .filter(|record| record.state == StepState::Succeeded)
            .and_then(|record| record.output.as_ref())
    }

    /// [`RunState::output_of`] deserialized into the caller's type. `Ok(None)` when the step
    /// has no outputs; an error when they do not fit `T`.
    pub fn output_of_as<T: serde::de::DeserializeOwned>(
        &self,
        step_id: &str,
    ) -> Result<Option<T>, serde_json::Error> {
        self.output_of(step_id)
            .map(|value| serde_json::from_value(value.clone()))
            .transpose()
    }

    pub fn step(&self, step_id: &str) -> Option<&StepRecord> {
        self.steps.get(step_id)
    }

    pub fn state_of(&self, step_id: &str) -> Option<StepState> {
        self.steps.get(step_id).map(|record| record.state)
    }

    /// Steps with an intent and no outcome: resume must observe these.
    pub fn in_flight(&self) -> impl Iterator<Item = &StepRecord> {
        self.with_state(StepState::InFlight)
    }

    pub fn with_state(&self, state: StepState) -> impl Iterator<Item = &StepRecord> {
        self.steps
            .values()
            .filter(move |record| record.state == state)
    }

    /// How many of the run's steps succeeded.
    pub fn steps_done(&self) -> usize {
        self.steps
            .values()
            .filter(|record| record.output.is_some())
            .count()
    }
}

/// Folds a run's events (in seq order) into its state, rejecting gaps in seq and illegal
/// transitions. The error carries the run, seq, step and transition.
pub fn replay(
    info: RunInfo,
    events: &[JournalEvent],
) -> Result<RunState, crate::error::JournalError> {
    let mut steps: BTreeMap<StepId, StepRecord> = BTreeMap::new();
    let mut last_seq = 0;
    for event in events {
        if event.seq != last_seq + 1 {
            return Err(crate::error::JournalError::Corrupt {
                run_id: info.run_id.clone(),
                seq: event.seq,
                detail: format!(
                    "events are not contiguous: seq {} follows seq {last_seq}",
                    event.seq
                ),
            });
        }
        last_seq = event.seq;
        let next = apply_event(steps.get(&event.step_id), event).map_err(|illegal| {
            crate::error::JournalError::IllegalTransition {
                run_id: info.run_id.clone(),
                seq: event.seq,
                step_id: event.step_id.clone(),
                from: illegal.from,
                event: illegal.event,
                reason: illegal.reason,
            }
        })?;
        steps.insert(event.step_id.clone(), next);
    }
    Ok(RunState {
        info,
        steps,
        last_seq,
    })
}
