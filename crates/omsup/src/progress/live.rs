//! The live view (`--format human` on a terminal): an indicatif `MultiProgress` with a header,
//! a spinner or bytes bar per running step, and finished steps as lines above the bars.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use omsup_engine::diff::human_bytes;

use super::{Event, ProgressSink, indent_continuation, lock, note_text, took};
use crate::style::Style;

/// How often spinners and elapsed times move.
const TICK: Duration = Duration::from_millis(120);
/// Step names are padded to the longest one, up to this width.
const MAX_PREFIX_WIDTH: usize = 48;

/// The live view on a terminal: a header bar, one bar per running step, finished steps as
/// permanent lines above.
pub struct LiveView {
    multi: MultiProgress,
    style: Style,
    pub(super) state: Mutex<LiveState>,
}

#[derive(Default)]
pub(super) struct LiveState {
    pub(super) header: Option<ProgressBar>,
    /// The header's text without counts, e.g. `apply run 2026... of prod`.
    header_text: String,
    failed: usize,
    prefix_width: usize,
    pub(super) running: HashMap<String, RunningStep>,
}

pub(super) struct RunningStep {
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
                ..
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
    use super::*;

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
}
