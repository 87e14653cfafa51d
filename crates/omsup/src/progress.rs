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
//!   progress is throttled ([`ByteThrottle`]): a line when another tenth of the total is
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
//! - `format_version`: [`EVENTS_FORMAT_VERSION`], bumped on an incompatible change;
//!
//! followed by the fields of the event, named as in [`Event`]. Optional fields are always
//! present, `null` when absent. Durations are integer milliseconds (`took_ms`, `downtime_ms`),
//! sizes integer bytes. For example:
//!
//! ```text
//! {"type":"run_started","at":"2026-11-25T06:45:12.345Z","format_version":1,"run_id":"20261125T064512Z-1a2b","kind":"apply","deployment":"prod","steps":["..."],"already_done":[]}
//! {"type":"step_started","at":"...","format_version":1,"step":"node[10.0.0.2].stop-old","kind":"stop-old","node":"10.0.0.2"}
//! {"type":"step_progress","at":"...","format_version":1,"step":"node[10.0.0.2].load-image","bytes":42048307,"total":83886080}
//! {"type":"step_succeeded","at":"...","format_version":1,"step":"node[10.0.0.2].stop-old","took_ms":1200,"summary":"kept the old container as oms-omsup-4.2.8"}
//! {"type":"step_failed","at":"...","format_version":1,"step":"...","took_ms":400,"error":"..."}
//! {"type":"note","at":"...","format_version":1,"step":null,"message":"..."}
//! {"type":"run_finished","at":"...","format_version":1,"run_id":"...","outcome":"succeeded","took_ms":182000,"downtime_ms":41200,"succeeded":12,"failed":0,"not_started":0}
//! ```
//!
//! `step_progress` events are not throttled in JSON Lines: consumers get every report.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use omsup_engine::diff::human_bytes;
use omsup_journal::Timestamp;
use omsup_journal::time::human_duration;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::ProgressFormat;
use crate::style::Style;

/// Version of the JSON Lines events; bumped on an incompatible change.
pub const EVENTS_FORMAT_VERSION: u32 = 1;

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
        ProgressFormat::Human if style.stderr_is_terminal => {
            Box::new(LiveView::new(ProgressDrawTarget::stderr(), *style))
        }
        ProgressFormat::Human => Box::new(PlainLines::new(std::io::stderr(), *style)),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not silence the progress display.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn took(millis: u64) -> String {
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
fn indent_continuation(text: &str, indent: usize) -> String {
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
fn note_text(step: Option<&str>, message: &str, indent: usize) -> String {
    let about = step.map(|step| format!("{step}: ")).unwrap_or_default();
    format!("{about}{}", indent_continuation(message, indent))
}

// ---------------------------------------------------------------------------------------------
// Plain lines

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

// ---------------------------------------------------------------------------------------------
// JSON Lines

/// The JSON Lines line of `event` written at `now` (without the newline). See the module doc.
pub fn json_line(event: &Event, now: Timestamp) -> String {
    let mut object = Map::new();
    match serde_json::to_value(event) {
        Ok(Value::Object(fields)) => {
            let kind = fields.get("type").cloned().unwrap_or(Value::Null);
            object.insert("type".to_owned(), kind);
            object.insert("at".to_owned(), Value::String(now.to_rfc3339()));
            object.insert(
                "format_version".to_owned(),
                Value::from(EVENTS_FORMAT_VERSION),
            );
            // In declaration order (`preserve_order`), the tag already written first.
            object.extend(fields.into_iter().filter(|(key, _)| key != "type"));
        }
        // Not reachable with the derived Serialize (string keys, no floats); a line anyway.
        Ok(_) | Err(_) => {
            object.insert(
                "type".to_owned(),
                Value::String("unserializable".to_owned()),
            );
            object.insert("at".to_owned(), Value::String(now.to_rfc3339()));
            object.insert(
                "format_version".to_owned(),
                Value::from(EVENTS_FORMAT_VERSION),
            );
            object.insert("debug".to_owned(), Value::String(format!("{event:?}")));
        }
    }
    Value::Object(object).to_string()
}

/// `--format jsonl`: one JSON object per line on a writer (stdout), flushed per event.
pub struct JsonLines<W> {
    writer: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(writer: W) -> Self {
        Self {
            writer: Mutex::new(writer),
        }
    }
}

impl<W: Write + Send> ProgressSink for JsonLines<W> {
    fn event(&self, event: &Event) {
        let line = json_line(event, Timestamp::now());
        let mut writer = lock(&self.writer);
        // A reader that went away (`| head`) must not stop the run.
        let _ = writeln!(writer, "{line}");
        let _ = writer.flush();
    }
}

// ---------------------------------------------------------------------------------------------
// Live view

/// How often spinners and elapsed times move.
const TICK: Duration = Duration::from_millis(120);
/// Step names are padded to the longest one, up to this width.
const MAX_PREFIX_WIDTH: usize = 48;

/// The live view on a terminal: a header bar, one bar per running step, finished steps as
/// permanent lines above.
pub struct LiveView {
    multi: MultiProgress,
    style: Style,
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    header: Option<ProgressBar>,
    /// The header's text without counts, e.g. `apply run 2026... of prod`.
    header_text: String,
    failed: usize,
    prefix_width: usize,
    running: HashMap<String, RunningStep>,
}

struct RunningStep {
    bar: ProgressBar,
    /// Whether the bytes bar style (with a total) is on.
    has_total: bool,
}

/// The indicatif templates, with or without colour.
struct Templates {
    header: String,
    spinner: String,
    bytes_bar: String,
}

impl Templates {
    fn new(color: bool, prefix_width: usize) -> Self {
        let prefix = if prefix_width == 0 {
            "{prefix}".to_owned()
        } else {
            format!("{{prefix:<{prefix_width}}}")
        };
        if color {
            let prefix = prefix.replace('}', ".bold}");
            Self {
                header: "{spinner:.cyan} {msg}  [{bar:24.cyan/blue}] {pos}/{len} steps  {elapsed}"
                    .to_owned(),
                spinner: format!("{{spinner:.cyan}} {prefix}  {{elapsed:>4}}  {{wide_msg}}"),
                bytes_bar: format!(
                    "{{spinner:.cyan}} {prefix}  {{elapsed:>4}}  [{{bar:30.cyan/blue}}] {{msg}}"
                ),
            }
        } else {
            Self {
                header: "{spinner} {msg}  [{bar:24}] {pos}/{len} steps  {elapsed}".to_owned(),
                spinner: format!("{{spinner}} {prefix}  {{elapsed:>4}}  {{wide_msg}}"),
                bytes_bar: format!("{{spinner}} {prefix}  {{elapsed:>4}}  [{{bar:30}}] {{msg}}"),
            }
        }
    }
}

fn progress_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

impl LiveView {
    /// A live view drawn on `target` (stderr; hidden or a fake terminal in tests).
    pub fn new(target: ProgressDrawTarget, style: Style) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(target),
            style,
            state: Mutex::new(LiveState::default()),
        }
    }

    fn templates(&self, state: &LiveState) -> Templates {
        Templates::new(self.style.color, state.prefix_width)
    }

    fn print_above(&self, line: &str) {
        // Hidden targets print nothing; a failed write must not stop the run.
        let _ = self.multi.println(line);
    }

    fn header_message(&self, state: &LiveState) -> String {
        if state.failed == 0 {
            state.header_text.clone()
        } else {
            format!(
                "{} {}",
                state.header_text,
                self.style.red(&format!("({} failed)", state.failed))
            )
        }
    }

    /// Ends the bar of `step` (if it ran here) and counts it in the header.
    fn step_ended(&self, state: &mut LiveState, step: &str, failed: bool) {
        if let Some(running) = state.running.remove(step) {
            running.bar.finish_and_clear();
            self.multi.remove(&running.bar);
        }
        if failed {
            state.failed += 1;
        }
        if let Some(header) = &state.header {
            header.inc(1);
            header.set_message(self.header_message(state));
        }
    }
}

impl ProgressSink for LiveView {
    fn event(&self, event: &Event) {
        let mut state = lock(&self.state);
        match event {
            Event::RunStarted {
                run_id,
                kind,
                deployment,
                steps,
                already_done,
            } => {
                state.prefix_width = steps
                    .iter()
                    .map(|step| step.chars().count())
                    .max()
                    .unwrap_or(0)
                    .min(MAX_PREFIX_WIDTH);
                state.header_text = format!(
                    "{} run {run_id} of {deployment}",
                    self.style.bold(kind.as_str())
                );
                let templates = self.templates(&state);
                let header = ProgressBar::new(u64::try_from(steps.len()).unwrap_or(u64::MAX))
                    .with_style(progress_style(&templates.header))
                    .with_position(u64::try_from(already_done.len()).unwrap_or(0))
                    .with_message(self.header_message(&state));
                let header = self.multi.insert(0, header);
                header.enable_steady_tick(TICK);
                if let Some(old) = state.header.replace(header) {
                    old.finish_and_clear();
                    self.multi.remove(&old);
                }
                if !already_done.is_empty() {
                    self.print_above(&self.style.dim(&format!(
                        "  {} of {} steps already done by an earlier attempt",
                        already_done.len(),
                        steps.len()
                    )));
                }
            }
            Event::StepStarted { step, .. } => {
                let templates = self.templates(&state);
                let bar = ProgressBar::no_length()
                    .with_style(progress_style(&templates.spinner))
                    .with_prefix(step.clone());
                let bar = self.multi.add(bar);
                bar.enable_steady_tick(TICK);
                if let Some(old) = state.running.insert(
                    step.clone(),
                    RunningStep {
                        bar,
                        has_total: false,
                    },
                ) {
                    // Started twice (a retry): keep one bar.
                    old.bar.finish_and_clear();
                    self.multi.remove(&old.bar);
                }
            }
            Event::StepProgress { step, bytes, total } => {
                let templates = self.templates(&state);
                if let Some(running) = state.running.get_mut(step) {
                    match total {
                        Some(total) if *total > 0 => {
                            if !running.has_total {
                                running.bar.set_style(progress_style(&templates.bytes_bar));
                                running.has_total = true;
                            }
                            running.bar.set_length(*total);
                            running.bar.set_position((*bytes).min(*total));
                            running.bar.set_message(format!(
                                "{}/{}",
                                human_bytes(*bytes),
                                human_bytes(*total)
                            ));
                        }
                        Some(_) | None => running.bar.set_message(human_bytes(*bytes)),
                    }
                }
            }
            Event::StepSucceeded {
                step,
                took_ms,
                summary,
            } => {
                self.step_ended(&mut state, step, false);
                let summary = summary
                    .as_deref()
                    .map(|summary| format!("  {}", indent_continuation(summary, 4)))
                    .unwrap_or_default();
                self.print_above(&format!(
                    "{} {step}  {}{summary}",
                    self.style.green("✓"),
                    self.style.dim(&took(*took_ms))
                ));
            }
            Event::StepFailed {
                step,
                took_ms,
                error,
            } => {
                self.step_ended(&mut state, step, true);
                self.print_above(&format!(
                    "{} {}  {}: {}",
                    self.style.red("✗"),
                    self.style.red(step),
                    self.style.dim(&took(*took_ms)),
                    indent_continuation(error, 4)
                ));
            }
            Event::Note { step, message } => {
                self.print_above(&format!(
                    "{} {}",
                    self.style.yellow("!"),
                    note_text(step.as_deref(), message, 2)
                ));
            }
            // The command prints the run's summary itself once the view is cleared.
            Event::RunFinished { .. } => {}
        }
    }

    fn finish(&self) {
        let mut state = lock(&self.state);
        for (_, running) in state.running.drain() {
            running.bar.finish_and_clear();
            self.multi.remove(&running.bar);
        }
        if let Some(header) = state.header.take() {
            header.finish_and_clear();
            self.multi.remove(&header);
        }
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use indicatif::TermLike;

    use super::*;

    fn at(offset_ms: i64) -> Timestamp {
        let start = Timestamp::parse_rfc3339("2026-11-25T12:00:00Z").expect("a valid timestamp");
        Timestamp::from_unix_millis(start.unix_millis() + offset_ms)
    }

    fn run_started() -> Event {
        Event::RunStarted {
            run_id: "20261125T120000Z-1a2b".to_owned(),
            kind: "apply".to_owned(),
            deployment: "prod".to_owned(),
            steps: vec![
                "node[10.0.0.2].stop-old".to_owned(),
                "node[10.0.0.2].load-image".to_owned(),
                "node[10.0.0.3].start-new".to_owned(),
            ],
            already_done: vec![],
        }
    }

    fn started(step: &str) -> Event {
        Event::StepStarted {
            step: step.to_owned(),
            kind: step.rsplit('.').next().unwrap_or(step).to_owned(),
            node: Some("10.0.0.2".to_owned()),
        }
    }

    fn progress(step: &str, bytes: u64, total: Option<u64>) -> Event {
        Event::StepProgress {
            step: step.to_owned(),
            bytes,
            total,
        }
    }

    const MIB: u64 = 1024 * 1024;

    /// A sequence of events with the time each arrives, as a run would emit them.
    fn a_run() -> Vec<(i64, Event)> {
        let load = "node[10.0.0.2].load-image";
        let mut events = vec![
            (0, run_started()),
            (1_000, started("node[10.0.0.2].stop-old")),
            (1_000, started(load)),
        ];
        // 80 MiB in 1 MiB reports, one every 100 ms: 8 s in all.
        for mib in 1..=80 {
            events.push((
                1_000 + mib * 100,
                progress(load, mib as u64 * MIB, Some(80 * MIB)),
            ));
        }
        events.extend([
            (
                2_200,
                Event::StepSucceeded {
                    step: "node[10.0.0.2].stop-old".to_owned(),
                    took_ms: 1_200,
                    summary: Some("kept the old container as oms-omsup-4.2.8".to_owned()),
                },
            ),
            (
                9_100,
                Event::StepSucceeded {
                    step: load.to_owned(),
                    took_ms: 8_100,
                    summary: None,
                },
            ),
            (9_200, started("node[10.0.0.3].start-new")),
            (
                9_300,
                Event::Note {
                    step: Some("node[10.0.0.3].start-new".to_owned()),
                    message: "Docker answered 503, retrying in 1s".to_owned(),
                },
            ),
            (
                9_600,
                Event::StepFailed {
                    step: "node[10.0.0.3].start-new".to_owned(),
                    took_ms: 400,
                    error: "cannot start container `oms`\ncaused by: port 8088 is in use"
                        .to_owned(),
                },
            ),
            (
                9_700,
                Event::RunFinished {
                    run_id: "20261125T120000Z-1a2b".to_owned(),
                    outcome: "failed".to_owned(),
                    took_ms: 9_700,
                    downtime_ms: None,
                    succeeded: 2,
                    failed: 1,
                    not_started: 0,
                },
            ),
        ]);
        events.sort_by_key(|(offset, _)| *offset);
        events
    }

    #[test]
    fn plain_lines_of_a_run_with_progress_throttled_to_tenths() {
        let mut formatter = PlainFormatter::default();
        let lines: Vec<String> = a_run()
            .iter()
            .filter_map(|(offset, event)| formatter.line(event, at(*offset), &Style::plain()))
            .collect();
        let expected = "\
12:00:00 run   apply run 20261125T120000Z-1a2b of deployment prod: 3 steps
12:00:01 start node[10.0.0.2].stop-old
12:00:01 start node[10.0.0.2].load-image
12:00:01 bytes node[10.0.0.2].load-image 8.0 MiB/80.0 MiB (10 %)
12:00:02 done  node[10.0.0.2].stop-old (1.2s) kept the old container as oms-omsup-4.2.8
12:00:02 bytes node[10.0.0.2].load-image 16.0 MiB/80.0 MiB (20 %)
12:00:03 bytes node[10.0.0.2].load-image 24.0 MiB/80.0 MiB (30 %)
12:00:04 bytes node[10.0.0.2].load-image 32.0 MiB/80.0 MiB (40 %)
12:00:05 bytes node[10.0.0.2].load-image 40.0 MiB/80.0 MiB (50 %)
12:00:05 bytes node[10.0.0.2].load-image 48.0 MiB/80.0 MiB (60 %)
12:00:06 bytes node[10.0.0.2].load-image 56.0 MiB/80.0 MiB (70 %)
12:00:07 bytes node[10.0.0.2].load-image 64.0 MiB/80.0 MiB (80 %)
12:00:08 bytes node[10.0.0.2].load-image 72.0 MiB/80.0 MiB (90 %)
12:00:09 bytes node[10.0.0.2].load-image 80.0 MiB/80.0 MiB (100 %)
12:00:09 done  node[10.0.0.2].load-image (8.1s)
12:00:09 start node[10.0.0.3].start-new
12:00:09 note  node[10.0.0.3].start-new: Docker answered 503, retrying in 1s
12:00:09 FAIL  node[10.0.0.3].start-new (400ms): cannot start container `oms`
               caused by: port 8088 is in use
12:00:09 end   run 20261125T120000Z-1a2b failed in 9.7s: 2 succeeded, 1 failed, 0 not started";
        assert_eq!(lines.join("\n"), expected);
    }

    #[test]
    fn plain_line_of_a_resumed_run_and_a_measured_downtime() {
        let resumed = Event::RunStarted {
            run_id: "r2".to_owned(),
            kind: "resume".to_owned(),
            deployment: "prod".to_owned(),
            steps: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
            already_done: vec!["a".to_owned()],
        };
        assert_eq!(
            plain_line(&resumed, at(61_000), &Style::plain()),
            "12:01:01 run   resume run r2 of deployment prod: 3 steps, 1 already done, 2 to run"
        );
        let finished = Event::RunFinished {
            run_id: "r2".to_owned(),
            outcome: "succeeded".to_owned(),
            took_ms: 182_000,
            downtime_ms: Some(41_200),
            succeeded: 2,
            failed: 0,
            not_started: 0,
        };
        assert_eq!(
            plain_line(&finished, at(0), &Style::plain()),
            "12:00:00 end   run r2 succeeded in 3m 02s, downtime 41.2s: 2 succeeded, 0 failed, \
             0 not started"
        );
    }

    #[test]
    fn plain_lines_are_coloured_only_with_colour_on() {
        let failed = Event::StepFailed {
            step: "s".to_owned(),
            took_ms: 5,
            error: "boom".to_owned(),
        };
        let plain = plain_line(&failed, at(0), &Style::plain());
        assert!(!plain.contains('\x1b'), "{plain:?}");
        let coloured = Style {
            color: true,
            ..Style::plain()
        };
        let painted = plain_line(&failed, at(0), &coloured);
        assert!(painted.contains("\x1b[1;31mFAIL \x1b[0m"), "{painted:?}");
    }

    #[test]
    fn byte_progress_without_a_total_is_reported_every_five_seconds_while_bytes_move() {
        let mut throttle = ByteThrottle::default();
        throttle.started("backup", at(0));
        // One report a second for 20 s: lines at 5, 10, 15 and 20 s.
        let reported: Vec<i64> = (1..=20)
            .filter(|second| {
                throttle.should_report("backup", *second as u64 * MIB, None, at(second * 1000))
            })
            .collect();
        assert_eq!(reported, [5, 10, 15, 20]);
        // Stuck bytes never make a line, however long.
        for second in 21..=60 {
            assert!(!throttle.should_report("backup", 20 * MIB, None, at(second * 1000)));
        }
        // Moving again after the silence: at once.
        assert!(throttle.should_report("backup", 21 * MIB, None, at(61_000)));
    }

    #[test]
    fn byte_progress_with_a_total_makes_at_most_one_line_per_tenth_and_steps_are_separate() {
        let mut throttle = ByteThrottle::default();
        throttle.started("a", at(0));
        throttle.started("b", at(0));
        // 10,000 reports in one second: ten lines per step.
        let mut lines = [0, 0];
        for bytes in 1..=10_000u64 {
            let now = at(i64::try_from(bytes / 10).expect("small"));
            lines[0] += usize::from(throttle.should_report("a", bytes, Some(10_000), now));
            lines[1] += usize::from(throttle.should_report("b", bytes, Some(10_000), now));
        }
        assert_eq!(lines, [10, 10]);
        // A total that shrinks or bytes beyond it do not go past 100 % nor repeat it.
        assert!(!throttle.should_report("a", 20_000, Some(10_000), at(1_000)));
        // Forgotten at the end; a retry starts afresh.
        throttle.finished("a");
        throttle.started("a", at(2_000));
        assert!(throttle.should_report("a", 1_000, Some(10_000), at(2_001)));
    }

    #[test]
    fn json_lines_carry_type_at_format_version_and_every_field() {
        let lines: Vec<String> = a_run()
            .iter()
            .map(|(offset, event)| json_line(event, at(*offset)))
            .collect();
        // Not throttled: every event is a line.
        assert_eq!(lines.len(), a_run().len());
        for line in &lines {
            assert!(!line.contains('\n'), "one line per event: {line}");
            let value: Value = serde_json::from_str(line).expect("each line is JSON");
            let object = value.as_object().expect("each line is an object");
            let keys: Vec<&str> = object.keys().take(3).map(String::as_str).collect();
            assert_eq!(keys, ["type", "at", "format_version"], "{line}");
            assert_eq!(object["format_version"], Value::from(EVENTS_FORMAT_VERSION));
            let at_text = object["at"].as_str().expect("`at` is a string");
            assert!(Timestamp::parse_rfc3339(at_text).is_some(), "{at_text}");
        }
        assert_eq!(
            lines[0],
            r#"{"type":"run_started","at":"2026-11-25T12:00:00.000Z","format_version":1,"run_id":"20261125T120000Z-1a2b","kind":"apply","deployment":"prod","steps":["node[10.0.0.2].stop-old","node[10.0.0.2].load-image","node[10.0.0.3].start-new"],"already_done":[]}"#
        );
        let types: Vec<String> = lines
            .iter()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("JSON");
                value["type"].as_str().expect("a type").to_owned()
            })
            .collect();
        for expected in [
            "run_started",
            "step_started",
            "step_progress",
            "step_succeeded",
            "step_failed",
            "note",
            "run_finished",
        ] {
            assert!(types.iter().any(|t| t == expected), "no `{expected}` line");
        }
        let succeeded = json_line(
            &Event::StepSucceeded {
                step: "s".to_owned(),
                took_ms: 1_200,
                summary: None,
            },
            at(1_500),
        );
        assert_eq!(
            succeeded,
            r#"{"type":"step_succeeded","at":"2026-11-25T12:00:01.500Z","format_version":1,"step":"s","took_ms":1200,"summary":null}"#
        );
    }

    /// A `Write` the test can read back while a sink owns it.
    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuffer {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).expect("UTF-8 output")
        }
    }

    /// Drives `sink` with four steps at once from four threads, as the runner's tasks do.
    fn drive_concurrently(sink: &dyn ProgressSink) {
        let steps: Vec<String> = (0..4)
            .map(|n| format!("node[10.0.0.{n}].load-image"))
            .collect();
        sink.event(&Event::RunStarted {
            run_id: "r1".to_owned(),
            kind: "apply".to_owned(),
            deployment: "prod".to_owned(),
            steps: steps.clone(),
            already_done: vec![steps[3].clone()],
        });
        std::thread::scope(|scope| {
            for (n, step) in steps.iter().take(3).enumerate() {
                scope.spawn(move || {
                    sink.event(&started(step));
                    for mib in 0..=40u64 {
                        let total = (n != 1).then_some(40 * MIB);
                        sink.event(&progress(step, mib * MIB, total));
                    }
                    if n == 2 {
                        sink.event(&Event::StepFailed {
                            step: step.clone(),
                            took_ms: 30,
                            error: "disk full".to_owned(),
                        });
                    } else {
                        sink.event(&Event::StepSucceeded {
                            step: step.clone(),
                            took_ms: 30,
                            summary: Some("loaded".to_owned()),
                        });
                    }
                });
            }
        });
        // Events about steps the view never saw start must not panic either.
        sink.event(&progress("ghost", 1, Some(2)));
        sink.event(&Event::StepSucceeded {
            step: "ghost".to_owned(),
            took_ms: 1,
            summary: None,
        });
        sink.event(&Event::RunFinished {
            run_id: "r1".to_owned(),
            outcome: "failed".to_owned(),
            took_ms: 50,
            downtime_ms: Some(20),
            succeeded: 2,
            failed: 1,
            not_started: 0,
        });
        sink.finish();
    }

    #[test]
    fn plain_and_json_sinks_write_whole_lines_from_several_threads() {
        let buffer = SharedBuffer::default();
        drive_concurrently(&PlainLines::new(buffer.clone(), Style::plain()));
        let text = buffer.text();
        assert_eq!(
            text.lines().filter(|l| l.contains(" start ")).count(),
            3,
            "{text}"
        );
        assert!(
            text.contains("FAIL  node[10.0.0.2].load-image (30ms): disk full"),
            "{text}"
        );
        // Byte lines of the step with totals: at most one per tenth.
        let bytes_lines = text
            .lines()
            .filter(|l| l.contains("bytes node[10.0.0.0]"))
            .count();
        assert!(bytes_lines <= 10, "{text}");

        let buffer = SharedBuffer::default();
        drive_concurrently(&JsonLines::new(buffer.clone()));
        let text = buffer.text();
        for line in text.lines() {
            let value: Value = serde_json::from_str(line).expect("whole JSON lines");
            assert!(value["type"].is_string());
        }
        // 1 run start + 3 * (start + 41 progress + end) + 2 ghost + 1 run end.
        assert_eq!(text.lines().count(), 1 + 3 * 43 + 2 + 1);
    }

    #[test]
    fn every_live_template_parses() {
        for color in [false, true] {
            for width in [0, 12, MAX_PREFIX_WIDTH] {
                let templates = Templates::new(color, width);
                for template in [&templates.header, &templates.spinner, &templates.bytes_bar] {
                    assert!(
                        ProgressStyle::with_template(template).is_ok(),
                        "`{template}` does not parse"
                    );
                }
            }
        }
    }

    #[test]
    fn live_view_on_a_hidden_target_takes_concurrent_events() {
        let view = LiveView::new(ProgressDrawTarget::hidden(), Style::plain());
        drive_concurrently(&view);
        assert!(lock(&view.state).running.is_empty());
        assert!(lock(&view.state).header.is_none());
    }

    /// A terminal that records everything written to it.
    #[derive(Debug, Default, Clone)]
    struct RecordingTerminal(Arc<Mutex<String>>);

    impl TermLike for RecordingTerminal {
        fn width(&self) -> u16 {
            100
        }
        fn height(&self) -> u16 {
            8
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, line: &str) -> std::io::Result<()> {
            let mut text = lock(&self.0);
            text.push_str(line);
            text.push('\n');
            Ok(())
        }
        fn write_str(&self, part: &str) -> std::io::Result<()> {
            lock(&self.0).push_str(part);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            // Each drawn line starts with a clear: one line of the transcript.
            lock(&self.0).push('\n');
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn live_view_prints_finished_steps_above_the_bars_and_draws_byte_bars() {
        let terminal = RecordingTerminal::default();
        let view = LiveView::new(
            ProgressDrawTarget::term_like(Box::new(terminal.clone())),
            Style::plain(),
        );
        view.event(&run_started());
        view.event(&started("node[10.0.0.2].load-image"));
        view.event(&progress(
            "node[10.0.0.2].load-image",
            40 * MIB,
            Some(80 * MIB),
        ));
        // The draw rate limit may skip a draw; a printed line forces one.
        view.event(&Event::Note {
            step: None,
            message: "halfway".to_owned(),
        });
        view.event(&Event::StepSucceeded {
            step: "node[10.0.0.2].load-image".to_owned(),
            took_ms: 1_200,
            summary: Some("loaded oms:4.3.1".to_owned()),
        });
        view.event(&Event::StepFailed {
            step: "node[10.0.0.3].start-new".to_owned(),
            took_ms: 400,
            error: "port 8088 is in use".to_owned(),
        });
        view.finish();
        let text = lock(&terminal.0).clone();
        assert!(text.contains("! halfway"), "{text}");
        assert!(
            text.lines()
                .any(|line| line.contains("node[10.0.0.2].load-image  ")
                    && line.contains("[===============>              ] 40.0 MiB/80.0 MiB")),
            "{text}"
        );
        assert!(
            text.contains("apply run 20261125T120000Z-1a2b of prod"),
            "{text}"
        );
        assert!(
            text.contains("✓ node[10.0.0.2].load-image  1.2s  loaded oms:4.3.1"),
            "{text}"
        );
        assert!(
            text.contains("✗ node[10.0.0.3].start-new  400ms: port 8088 is in use"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "no colour without colour: {text:?}");
    }
}
