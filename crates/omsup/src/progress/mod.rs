//! Progress of a run (apply, resume, rollback) as events, and the sinks that show them.
//!
//! The runner emits [`Event`]s, from several tasks at once, and never prints; a
//! [`ProgressSink`] decides how they look. [`sink`] picks one of three:
//!
//! - **Live view** (`--format human`, stderr is a terminal): an indicatif `MultiProgress` on
//!   stderr with a header (kind, run id, deployment, steps finished out of all, elapsed), one
//!   spinner per running step, or a bytes bar when the step reports a total (image loads,
//!   backups). Finished steps become permanent lines above the bars
//!   (`✓ node[10.0.0.2].stop-old  1.2s  kept ...`, `✗ step  0.4s: error`). A steady tick keeps
//!   spinners moving; drawing is rate-limited by indicatif so many steps do not flicker.
//!   [`ProgressSink::finish`] clears the bars. The run's outcome is not shown here: the
//!   command prints its summary after `finish`.
//! - **Plain lines** (`--format human`, stderr is not a terminal: pipes, CI): one line per
//!   event on stderr, prefixed with the UTC time of day, e.g.
//!   `12:00:01 start node[10.0.0.2].stop-old`,
//!   `12:00:02 done  node[10.0.0.2].stop-old (1.2s) kept the old container as ...`. Byte
//!   progress is throttled ([`plain::ByteThrottle`]): a line when another tenth of the total is
//!   reached, or after 5 s without one, so a long load never floods the log.
//! - **JSON Lines** (`--format jsonl`): one JSON object per event per line on stdout, flushed
//!   after each line.
//!
//! # The JSON Lines format (version [`EVENTS_FORMAT_VERSION`])
//!
//! Every line is an object with these keys first:
//!
//! - `type`: the event, in snake case: `run_started`, `step_started`, `step_progress`,
//!   `step_succeeded`, `step_failed`, `note`, `run_finished`;
//! - `at`: when the event was written, RFC 3339 in UTC with milliseconds
//!   (`2026-11-25T06:45:12.345Z`);
//! - `format_version`: [`EVENTS_FORMAT_VERSION`], bumped on an incompatible change (2: step
//!   kinds are named as the end of their ids, `ha.off`, `online.verify`, `ha.restore`, where
//!   version 1 said `ha-off`, `verify-online`, `ha-restore`);
//!
//! followed by the fields of the event, named as in [`Event`]. Optional fields are always
//! present, `null` when absent. Durations are integer milliseconds (`took_ms`, `downtime_ms`),
//! sizes integer bytes; `step_succeeded` also says how long journaling the step took
//! (`journal_us`, microseconds: its intent and its outcome; added within version 2). For example:
//!
//! ```text
//! {"type":"run_started","at":"2026-11-25T06:45:12.345Z","format_version":2,"run_id":"20261125T064512Z-1a2b","kind":"apply","deployment":"prod","steps":["..."],"already_done":[]}
//! {"type":"step_started","at":"...","format_version":2,"step":"node[10.0.0.2].stop-old","kind":"stop-old","node":"10.0.0.2"}
//! {"type":"step_progress","at":"...","format_version":2,"step":"node[10.0.0.2].load-image","bytes":42048307,"total":83886080}
//! {"type":"step_succeeded","at":"...","format_version":2,"step":"node[10.0.0.2].stop-old","took_ms":1200,"journal_us":850,"summary":"kept the old container as oms-omsup-4.2.8"}
//! {"type":"step_failed","at":"...","format_version":2,"step":"...","took_ms":400,"error":"..."}
//! {"type":"note","at":"...","format_version":2,"step":null,"message":"..."}
//! {"type":"run_finished","at":"...","format_version":2,"run_id":"...","outcome":"succeeded","took_ms":182000,"downtime_ms":41200,"succeeded":12,"failed":0,"not_started":0}
//! ```
//!
//! `step_progress` events are not throttled in JSON Lines: consumers get every report.
//!
//! One file per sink: [`live`], [`plain`], [`jsonl`]; this module holds the [`Event`] they all
//! show and the [`sink`] choice.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::ProgressDrawTarget;
use omsup_engine::diff::human_bytes;
use omsup_journal::time::human_duration;
use serde::Serialize;

use crate::cli::ProgressFormat;
use crate::style::Style;

pub mod jsonl;
pub mod live;
pub mod plain;
#[cfg(test)]
mod tests;

pub use jsonl::{JsonLines, json_line};
pub use live::LiveView;
pub use plain::{ByteThrottle, PlainFormatter, PlainLines, plain_line};

/// Version of the JSON Lines events; bumped on an incompatible change.
pub const EVENTS_FORMAT_VERSION: u32 = 2;

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        /// `apply`, `resume` or `rollback`.
        kind: String,
        deployment: String,
        /// Every step of the run, in order.
        steps: Vec<String>,
        /// Steps a previous attempt already finished (resume).
        already_done: Vec<String>,
    },
    StepStarted {
        step: String,
        /// The step kind, e.g. `load-image`, `backup`, `start-new`.
        kind: String,
        /// The node the step acts on, when it acts on one.
        node: Option<String>,
    },
    /// Bytes moved so far by a long step (image loads, backups).
    StepProgress {
        step: String,
        bytes: u64,
        total: Option<u64>,
    },
    StepSucceeded {
        step: String,
        took_ms: u64,
        /// The time spent journaling the step (its intent and its outcome), in microseconds:
        /// omsup's own overhead per step.
        journal_us: u64,
        /// One line for humans, e.g. `kept the old container as oms-omsup-4.2.8`.
        summary: Option<String>,
    },
    StepFailed {
        step: String,
        took_ms: u64,
        error: String,
    },
    /// A line for the operator that is neither a start nor an outcome (a retry, a warning),
    /// shown above the live bars instead of breaking them.
    Note {
        /// The step it is about, if any.
        step: Option<String>,
        message: String,
    },
    RunFinished {
        run_id: String,
        /// `succeeded`, `failed` or `interrupted`.
        outcome: String,
        took_ms: u64,
        /// First old container stopped -> last node ONLINE, when the run measured it.
        downtime_ms: Option<u64>,
        succeeded: usize,
        failed: usize,
        not_started: usize,
    },
}

/// Shows events. Called from several tasks at once.
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: &Event);
    /// Called once at the end; clears any live view.
    fn finish(&self) {}
}

/// The sink for `--format` and the terminal `style` describes.
pub fn sink(format: ProgressFormat, style: &Style) -> Box<dyn ProgressSink> {
    match format {
        ProgressFormat::Jsonl => Box::new(JsonLines::new(std::io::stdout())),
        ProgressFormat::Human if style.stderr_is_terminal => Box::new(LiveView::new(
            ProgressDrawTarget::stderr(),
            style.for_stderr(),
        )),
        ProgressFormat::Human => Box::new(PlainLines::new(anstream::stderr(), *style)),
    }
}

/// A line for the operator during a run (resuming, a changed plan file, the summary, a
/// signal), as an event: the human sinks show it, JSON Lines emits it as a `note`.
pub fn note(progress: &dyn ProgressSink, message: impl Into<String>) {
    progress.event(&Event::Note {
        step: None,
        message: message.into(),
    });
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not silence the progress display.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn took(millis: u64) -> String {
    human_duration(Duration::from_millis(millis))
}

/// `40.1 MiB/80.0 MiB (50 %)`, or `40.1 MiB` without a total.
pub fn bytes_text(bytes: u64, total: Option<u64>) -> String {
    match total {
        Some(total) if total > 0 => {
            let percent = u128::from(bytes) * 100 / u128::from(total);
            format!(
                "{}/{} ({percent} %)",
                human_bytes(bytes),
                human_bytes(total)
            )
        }
        Some(_) | None => human_bytes(bytes),
    }
}

/// Continuation lines of a multi-line text, indented by `indent` spaces.
pub(crate) fn indent_continuation(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            if index == 0 {
                line.to_owned()
            } else {
                format!("\n{pad}{line}")
            }
        })
        .collect()
}

/// `node[..].start-new: retrying in 1s` (the step, when there is one, then the message).
pub(crate) fn note_text(step: Option<&str>, message: &str, indent: usize) -> String {
    let about = step.map(|step| format!("{step}: ")).unwrap_or_default();
    format!("{about}{}", indent_continuation(message, indent))
}
