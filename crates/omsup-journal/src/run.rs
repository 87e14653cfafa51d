//! A run's own record (the `runs` table): what kind of run, which plan, who, where, when, and
//! how it ended.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ids::{RunId, StepId};
use crate::time::Timestamp;

/// `apply` (forward, also continued by `resume`) or `rollback` (compensations of another run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Apply,
    Rollback,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Apply => "apply",
            RunKind::Rollback => "rollback",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "apply" => Some(RunKind::Apply),
            "rollback" => Some(RunKind::Rollback),
            _ => None,
        }
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A run's recorded state. `Running` with no live lock means the run was interrupted (see
/// [`crate::Journal::unfinished_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Running,
    Succeeded,
    /// Stopped after a failed step; resumable.
    Failed,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "running" => Some(RunOutcome::Running),
            "succeeded" => Some(RunOutcome::Succeeded),
            "failed" => Some(RunOutcome::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A step the run means to execute (so `status` can show steps not reached yet, and `history`
/// can say "5/12 steps").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub step_id: StepId,
    pub step_kind: String,
}

impl PlannedStep {
    pub fn new(step_id: impl Into<StepId>, step_kind: impl Into<String>) -> Self {
        Self {
            step_id: step_id.into(),
            step_kind: step_kind.into(),
        }
    }
}

/// What the caller says about a run it begins ([`crate::Journal::begin_run`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub kind: RunKind,
    /// For a rollback: the run it undoes.
    pub undoes: Option<RunId>,
    /// The fingerprint of what `plan` observed.
    pub plan_fingerprint: String,
    /// The plan file as given (relative or absolute) and its sha256 (hex).
    pub plan_file_path: PathBuf,
    pub plan_file_sha256: String,
    /// The steps of the run in the engine's order.
    pub planned_steps: Vec<PlannedStep>,
    /// What the run executes, as the caller serialized it (the engine's plan), so a resume or
    /// a rollback works from exactly what was started, not from a re-plan. Refused when it
    /// contains a registered secret. `Value::Null` when the caller has nothing to keep.
    pub document: serde_json::Value,
}

/// A run's row, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: RunId,
    pub kind: RunKind,
    pub undoes: Option<RunId>,
    pub deployment: String,
    pub plan_fingerprint: String,
    pub plan_file_path: PathBuf,
    pub plan_file_sha256: String,
    pub planned_steps: Vec<PlannedStep>,
    /// `$USER` (or `uid <n>`) of the process that began the run.
    pub started_by: String,
    pub started_on_host: String,
    pub started_pid: u32,
    pub omsup_version: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub outcome: RunOutcome,
    /// How many times `resume` continued this run.
    pub resume_count: u32,
    pub last_resumed_at: Option<Timestamp>,
}
