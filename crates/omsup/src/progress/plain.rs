//! Plain lines (`--format human` when stderr is not a terminal: pipes, CI): one line per event,
//! prefixed with the UTC time of day; byte progress throttled by [`ByteThrottle`].

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use omsup_journal::Timestamp;

use super::{Event, ProgressSink, bytes_text, indent_continuation, lock, note_text, took};
use crate::style::Style;

/// Width of the `12:00:01 ` time prefix and the `start ` word, for continuation lines.
const PLAIN_INDENT: usize = 15;

/// The plain log line of `event` at `now` (UTC time of day, then a five-letter word). Pure:
/// throttling of byte progress is [`ByteThrottle`]'s job.
pub fn plain_line(event: &Event, now: Timestamp, style: &Style) -> String {
    let rfc3339 = now.to_rfc3339();
    let clock = rfc3339.get(11..19).unwrap_or("--:--:--");
    let body = match event {
        Event::RunStarted {
            run_id,
            kind,
            deployment,
            steps,
            already_done,
        } => {
            let left = steps.len().saturating_sub(already_done.len());
            let done = if already_done.is_empty() {
                String::new()
            } else {
                format!(", {} already done, {left} to run", already_done.len())
            };
            format!(
                "{} {kind} run {run_id} of deployment {deployment}: {} steps{done}",
                style.bold("run  "),
                steps.len()
            )
        }
        Event::StepStarted { step, .. } => format!("start {step}"),
        Event::StepProgress { step, bytes, total } => {
            format!("bytes {step} {}", bytes_text(*bytes, *total))
        }
        Event::StepSucceeded {
            step,
            took_ms,
            summary,
            ..
        } => {
            let summary = summary
                .as_deref()
                .map(|summary| format!(" {}", indent_continuation(summary, PLAIN_INDENT)))
                .unwrap_or_default();
            format!(
                "{} {step} ({}){summary}",
                style.green("done "),
                took(*took_ms)
            )
        }
        Event::StepFailed {
            step,
            took_ms,
            error,
        } => format!(
            "{} {step} ({}): {}",
            style.red("FAIL "),
            took(*took_ms),
            indent_continuation(error, PLAIN_INDENT)
        ),
        Event::Note { step, message } => format!(
            "{} {}",
            style.yellow("note "),
            note_text(step.as_deref(), message, PLAIN_INDENT)
        ),
        Event::RunFinished {
            run_id,
            outcome,
            took_ms,
            downtime_ms,
            succeeded,
            failed,
            not_started,
        } => {
            let word = if outcome == "succeeded" {
                style.green("end  ")
            } else {
                style.red("end  ")
            };
            let downtime = downtime_ms
                .map(|ms| format!(", downtime {}", took(ms)))
                .unwrap_or_default();
            format!(
                "{word} run {run_id} {outcome} in {}{downtime}: {succeeded} succeeded, \
                 {failed} failed, {not_started} not started",
                took(*took_ms)
            )
        }
    };
    format!("{clock} {body}")
}

/// Decides which byte-progress reports of a step make a plain line: one each time another
/// tenth of the total is reached, or after [`ByteThrottle::EVERY`] without a line (when
/// the bytes moved), so a step reports at most ~10 lines plus one per 5 s.
#[derive(Debug, Default)]
pub struct ByteThrottle {
    steps: HashMap<String, LastReport>,
}

#[derive(Debug, Clone, Copy)]
struct LastReport {
    at: Timestamp,
    bytes: u64,
    tenths: u64,
}

impl ByteThrottle {
    /// The longest silence while bytes move.
    pub const EVERY: Duration = Duration::from_secs(5);

    /// A step started at `now`: its first report is measured from here.
    pub fn started(&mut self, step: &str, now: Timestamp) {
        self.steps.insert(
            step.to_owned(),
            LastReport {
                at: now,
                bytes: 0,
                tenths: 0,
            },
        );
    }

    /// A step ended: forget it.
    pub fn finished(&mut self, step: &str) {
        self.steps.remove(step);
    }

    /// Whether this report deserves a line; remembers it when it does.
    pub fn should_report(
        &mut self,
        step: &str,
        bytes: u64,
        total: Option<u64>,
        now: Timestamp,
    ) -> bool {
        let last = *self.steps.entry(step.to_owned()).or_insert(LastReport {
            at: now,
            bytes: 0,
            tenths: 0,
        });
        let tenths = match total {
            Some(total) if total > 0 => {
                let tenths = (u128::from(bytes) * 10 / u128::from(total)).min(10);
                u64::try_from(tenths).unwrap_or(10)
            }
            Some(_) | None => 0,
        };
        let crossed_a_tenth = tenths > last.tenths;
        let quiet_too_long = now.duration_since(last.at) >= Self::EVERY && bytes != last.bytes;
        if !(crossed_a_tenth || quiet_too_long) {
            return false;
        }
        self.steps.insert(
            step.to_owned(),
            LastReport {
                at: now,
                bytes,
                tenths: tenths.max(last.tenths),
            },
        );
        true
    }
}

/// The lines to write for `event` at `now`, with byte progress throttled: what
/// [`PlainLines`] does, without the writer.
#[derive(Debug, Default)]
pub struct PlainFormatter {
    throttle: ByteThrottle,
}

impl PlainFormatter {
    pub fn line(&mut self, event: &Event, now: Timestamp, style: &Style) -> Option<String> {
        match event {
            Event::StepStarted { step, .. } => self.throttle.started(step, now),
            Event::StepProgress { step, bytes, total } => {
                if !self.throttle.should_report(step, *bytes, *total, now) {
                    return None;
                }
            }
            Event::StepSucceeded { step, .. } | Event::StepFailed { step, .. } => {
                self.throttle.finished(step);
            }
            Event::RunStarted { .. } | Event::Note { .. } | Event::RunFinished { .. } => {}
        }
        Some(plain_line(event, now, style))
    }
}

/// Plain lines on a writer (stderr when not on a terminal).
pub struct PlainLines<W> {
    style: Style,
    state: Mutex<(PlainFormatter, W)>,
}

impl<W: Write + Send> PlainLines<W> {
    pub fn new(writer: W, style: Style) -> Self {
        Self {
            style,
            state: Mutex::new((PlainFormatter::default(), writer)),
        }
    }
}

impl<W: Write + Send> ProgressSink for PlainLines<W> {
    fn event(&self, event: &Event) {
        let mut state = lock(&self.state);
        let (formatter, writer) = &mut *state;
        if let Some(line) = formatter.line(event, Timestamp::now(), &self.style) {
            // A closed stderr must not stop the run.
            let _ = writeln!(writer, "{line}");
            let _ = writer.flush();
        }
    }
}
