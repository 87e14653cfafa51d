//! Drives the steps of one run (apply, resume, rollback) through the scheduler, journaling each
//! step: the intent, with what the step captured beforehand, is durable *before* the step acts;
//! the outcome (outputs, or the error) after. Emits progress events and honours failpoints.
//!
//! The runner knows nothing of what a step does: the caller passes `capture` (read-only facts
//! to remember before the first attempt) and `execute` (the side effect). Steps are identified
//! by their stable ids; the scheduler runs independent steps concurrently.
//!
//! Failpoints (tests only): `OMSUP_FAILPOINTS=before:STEP,after:STEP` kills the process with
//! SIGKILL right before the step's intent is written (`before`), or right after its side
//! effect and before its outcome is journaled (`after`: the step is left in flight, the worst
//! case for `resume`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use omsup_exec::scheduler::{ScheduledStep, run_dag};
use omsup_journal::RunWriter;
use serde_json::{Value, json};

use crate::progress::{Event, ProgressSink};

/// The environment variable holding the failpoints.
pub const FAILPOINTS_VAR: &str = "OMSUP_FAILPOINTS";

/// One step as the runner sees it.
#[derive(Debug, Clone)]
pub struct RunnerStep {
    pub id: String,
    /// The kind's short name (`stop-old`, `backup`...), journaled with each event.
    pub kind: String,
    pub node: Option<String>,
    pub depends_on: Vec<String>,
    /// The step itself, journaled in its intent (so the journal alone says what was begun).
    pub definition: Value,
}

/// Why a step failed: a message (with its causes) for humans and the journal.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub message: String,
    pub details: Value,
}

/// How the run went.
#[derive(Debug, Default)]
pub struct RunReport {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub not_started: Vec<String>,
    /// A journal write that failed: the run stopped because it could not keep its promise.
    pub journal_error: Option<String>,
    pub took: Duration,
    /// From the start of the first step marked as downtime start to the end of the last one
    /// marked as downtime end, when both ran in this process.
    pub downtime: Option<Duration>,
}

impl RunReport {
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.not_started.is_empty() && self.journal_error.is_none()
    }
}

/// Where a failpoint fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    Before,
    After,
}

/// The failpoints of this process, read once from [`FAILPOINTS_VAR`].
#[derive(Debug, Default, Clone)]
pub struct Failpoints(Vec<(Moment, String)>);

impl Failpoints {
    pub fn from_env() -> Self {
        let Ok(spec) = std::env::var(FAILPOINTS_VAR) else {
            return Self::default();
        };
        let points = spec
            .split(',')
            .filter_map(|item| {
                let (moment, step) = item.trim().split_once(':')?;
                let moment = match moment {
                    "before" => Moment::Before,
                    "after" => Moment::After,
                    _ => return None,
                };
                Some((moment, step.to_owned()))
            })
            .collect();
        Self(points)
    }

    fn hit(&self, moment: Moment, step: &str) {
        if self.0.iter().any(|(m, s)| *m == moment && s == step) {
            let when = match moment {
                Moment::Before => "before",
                Moment::After => "after",
            };
            eprintln!("failpoint: killing omsup {when} step `{step}`");
            // As if killed: no destructor runs, the lock row and the journal stay as they are.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            std::process::abort();
        }
    }
}

/// Which steps bound the downtime window (both optional).
#[derive(Debug, Clone, Default)]
pub struct DowntimeMarks {
    /// The window opens when the first of these starts.
    pub opens: BTreeSet<String>,
    /// It closes when the last of these ends.
    pub closes: BTreeSet<String>,
}

/// The run's settings.
pub struct Runner<'a> {
    pub writer: &'a RunWriter,
    pub progress: &'a dyn ProgressSink,
    pub parallelism: usize,
    pub failpoints: Failpoints,
    pub downtime: DowntimeMarks,
    /// Secrets to mask in failure messages before they are journaled or shown (a log tail a
    /// step quotes could hold one).
    pub redact: Vec<String>,
}

impl Runner<'_> {
    /// Runs `steps` except `already_done`. `captured` holds the captures of steps begun by an
    /// earlier attempt (resume): they are reused, never taken again.
    pub async fn run<C, CF, E, EF>(
        &self,
        steps: &[RunnerStep],
        already_done: &BTreeSet<String>,
        captured: &BTreeMap<String, Value>,
        capture: C,
        execute: E,
    ) -> RunReport
    where
        C: Fn(String) -> CF,
        CF: Future<Output = Result<Value, StepFailure>>,
        E: Fn(String, Value) -> EF,
        EF: Future<Output = Result<(Value, Option<String>), StepFailure>>,
    {
        let started = Instant::now();
        let scheduled: Vec<ScheduledStep> = steps
            .iter()
            .map(|step| ScheduledStep {
                id: step.id.clone(),
                depends_on: step.depends_on.clone(),
            })
            .collect();
        let by_id: BTreeMap<&str, &RunnerStep> =
            steps.iter().map(|step| (step.id.as_str(), step)).collect();
        let journal_error: Mutex<Option<String>> = Mutex::new(None);
        let window: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));
        let (capture, execute) = (&capture, &execute);
        let (journal_error_ref, window_ref) = (&journal_error, &window);

        let report = run_dag(&scheduled, already_done, self.parallelism, |id| {
            let step = by_id[id.as_str()];
            let prior = captured.get(&id).cloned();
            async move {
                let step_started = Instant::now();
                self.failpoints.hit(Moment::Before, &step.id);
                let captured = match prior {
                    Some(value) => Ok(value),
                    None => capture(step.id.clone()).await,
                };
                let (captured_value, capture_error) = match captured {
                    Ok(value) => (value, None),
                    Err(failure) => (Value::Null, Some(failure)),
                };
                // A failed capture acted on nothing: the next attempt captures again.
                let payload = json!({
                    "step": step.definition,
                    "captured": captured_value,
                    "capture_failed": capture_error.is_some(),
                });
                if let Err(error) = self.writer.intent(&step.id, &step.kind, payload).await {
                    let message = format!("cannot journal the intent of `{}`: {error}", step.id);
                    *journal_error_ref.lock().expect("journal error") = Some(message.clone());
                    return Err(message);
                }
                self.progress.event(&Event::StepStarted {
                    step: step.id.clone(),
                    kind: step.kind.clone(),
                    node: step.node.clone(),
                });
                if self.downtime.opens.contains(&step.id) {
                    let mut window = window_ref.lock().expect("window");
                    window.0 = Some(window.0.map_or(step_started, |t| t.min(step_started)));
                }
                let result = match capture_error {
                    Some(failure) => Err(failure),
                    None => execute(step.id.clone(), captured_value).await,
                };
                self.failpoints.hit(Moment::After, &step.id);
                let took_ms = step_started.elapsed().as_millis() as u64;
                match result {
                    Ok((output, summary)) => {
                        if let Err(error) = self.writer.succeeded(&step.id, output).await {
                            let message =
                                format!("cannot journal the outcome of `{}`: {error}", step.id);
                            *journal_error_ref.lock().expect("journal error") =
                                Some(message.clone());
                            return Err(message);
                        }
                        if self.downtime.closes.contains(&step.id) {
                            let now = Instant::now();
                            let mut window = window_ref.lock().expect("window");
                            window.1 = Some(window.1.map_or(now, |t| t.max(now)));
                        }
                        self.progress.event(&Event::StepSucceeded {
                            step: step.id.clone(),
                            took_ms,
                            summary,
                        });
                        Ok(())
                    }
                    Err(mut failure) => {
                        for secret in self.redact.iter().filter(|s| !s.is_empty()) {
                            failure.message = failure.message.replace(secret.as_str(), "***");
                        }
                        if let Err(error) = self
                            .writer
                            .failed(&step.id, &failure.message, failure.details.clone())
                            .await
                        {
                            *journal_error_ref.lock().expect("journal error") = Some(format!(
                                "cannot journal the failure of `{}`: {error}",
                                step.id
                            ));
                        }
                        self.progress.event(&Event::StepFailed {
                            step: step.id.clone(),
                            took_ms,
                            error: failure.message.clone(),
                        });
                        Err(failure.message)
                    }
                }
            }
        })
        .await;
        let (opened, closed) = *window.lock().expect("window");
        RunReport {
            succeeded: report.succeeded,
            failed: report.failed,
            not_started: report.not_started,
            journal_error: journal_error.into_inner().expect("journal error"),
            took: started.elapsed(),
            downtime: match (opened, closed) {
                (Some(opened), Some(closed)) if closed >= opened => Some(closed - opened),
                _ => None,
            },
        }
    }
}

/// `error` and its causes, one per line after the first (`caused by:` lines for the CLI).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    message
}
