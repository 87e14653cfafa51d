//! Drives the steps of one run (apply, resume, rollback) through the scheduler, journaling each
//! step: the intent, with what the step captured beforehand, is durable *before* the step acts;
//! the outcome (its typed output, or the error) after. Emits progress events and honours
//! failpoints.
//!
//! The runner knows nothing of what a step does: it drives any [`Executor`] (forward or undo)
//! over [`Step`]s of that executor's kind. The downtime window is the plan's data: it opens
//! when the first step marked `downtime` starts and closes when the last one ends.
//!
//! After SIGINT or SIGTERM ([`crate::interrupt`]) no step begins: the scheduler's next steps
//! are refused before their intent and reported as not started, while running ones finish.
//!
//! Failpoints (tests only): `OMSUP_FAILPOINTS=before:STEP,after:STEP` kills the process with
//! SIGKILL right before the step's intent is written (`before`), or right after its side
//! effect and before its outcome is journaled (`after`: the step is left in flight, the worst
//! case for `resume`). `omsup rehearse` honours `before:` for its own steps (`rehearse.init`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use omsup_engine::outputs::Capture;
use omsup_engine::{Kind, Step, StepId};
use omsup_exec::executor::{Executor, StepError};
use omsup_exec::scheduler::run_dag;
use omsup_journal::{RunState, RunWriter, StepState};
use serde::{Deserialize, Serialize};

use crate::progress::{Event, ProgressSink};

/// The environment variable holding the failpoints.
pub const FAILPOINTS_VAR: &str = "OMSUP_FAILPOINTS";

/// What the runner journals with a step's intent: the step itself (so the journal alone says
/// what was begun) and what it captured before its first attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(deserialize = "K: Kind"))]
pub struct IntentPayload<K> {
    pub step: Step<K>,
    pub captured: Option<Capture>,
    /// The capture failed: the step acted on nothing, and the next attempt captures again.
    pub capture_failed: bool,
}

/// Why a step failed, from its typed error: the message, its causes and a hint, kept apart
/// until the CLI renders them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step: StepId,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl StepFailure {
    pub(crate) fn from_error(error: &StepError) -> Self {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        Self {
            step: error.step().clone(),
            message: error.to_string(),
            causes,
            hint: error.hint().map(str::to_owned),
        }
    }

    /// A step stopped because the journal could not record it.
    fn journal(step: &StepId, message: String) -> Self {
        Self {
            step: step.clone(),
            message,
            causes: Vec::new(),
            hint: None,
        }
    }

    /// The message and a `caused by:` line per cause (the journal's and the events' text).
    pub fn text(&self) -> String {
        let mut text = self.message.clone();
        for cause in &self.causes {
            text.push_str(&format!("\ncaused by: {cause}"));
        }
        text
    }

    pub(crate) fn redact(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mask = |text: &mut String| *text = text.replace(secret, "***");
        mask(&mut self.message);
        self.causes.iter_mut().for_each(mask);
        if let Some(hint) = &mut self.hint {
            mask(hint);
        }
    }
}

/// How the run went.
#[derive(Debug, Default)]
pub struct RunReport {
    pub succeeded: Vec<StepId>,
    pub failed: Vec<StepFailure>,
    pub not_started: Vec<StepId>,
    /// A journal write that failed: the run stopped because it could not keep its promise.
    pub journal_error: Option<String>,
    pub took: Duration,
    /// From the start of the first downtime step to the end of the last one, when both ran in
    /// this process.
    pub downtime: Option<Duration>,
    /// SIGINT or SIGTERM stopped the scheduling: `not_started` were left for `resume`.
    pub interrupted: bool,
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

    /// Kills the process when `before:STEP` names `step` (`omsup rehearse`'s steps, which are
    /// not driven by a [`Runner`]).
    pub fn before(&self, step: &StepId) {
        self.hit(Moment::Before, step);
    }

    fn hit(&self, moment: Moment, step: &StepId) {
        if self
            .0
            .iter()
            .any(|(m, s)| *m == moment && s == step.as_str())
        {
            let when = match moment {
                Moment::Before => "before",
                Moment::After => "after",
            };
            anstream::eprintln!("failpoint: killing omsup {when} step `{step}`");
            // As if killed: no destructor runs, the lock row and the journal stay as they are.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            std::process::abort();
        }
    }
}

/// What an earlier attempt of the run left (resume): the steps it finished, whose outputs go
/// back to the executor and which do not run again, and the captures of the steps it began.
#[derive(Debug, Default)]
pub struct Earlier {
    pub done: BTreeSet<StepId>,
    pub captured: BTreeMap<StepId, Capture>,
}

impl Earlier {
    /// Reads `run`'s succeeded steps (recording their outputs with `executor`) and captures;
    /// an output or capture that does not read as its type is an error naming the step.
    pub fn read<X: Executor>(run: &RunState, executor: &X) -> Result<Self, String> {
        let mut done = BTreeSet::new();
        for record in run.with_state(StepState::Succeeded) {
            if let Some(output) = &record.output {
                let output: <X::Kind as Kind>::Output = serde_json::from_value(output.clone())
                    .map_err(|error| {
                        format!(
                            "the journaled output of step `{}` is unreadable: {error}",
                            record.step_id
                        )
                    })?;
                executor.record(record.step_id.clone(), output);
            }
            done.insert(record.step_id.clone());
        }
        let mut captured = BTreeMap::new();
        for record in run.steps.values() {
            // Steps without an intent payload of this shape (none yet) captured nothing.
            let Ok(intent) =
                serde_json::from_value::<IntentPayload<X::Kind>>(record.intent_payload.clone())
            else {
                continue;
            };
            if let (false, Some(capture)) = (intent.capture_failed, intent.captured) {
                captured.insert(record.step_id.clone(), capture);
            }
        }
        Ok(Self { done, captured })
    }
}

/// The run's settings.
pub struct Runner<'a> {
    pub writer: &'a RunWriter,
    pub progress: &'a dyn ProgressSink,
    pub parallelism: usize,
    pub failpoints: Failpoints,
    /// Secrets to mask in failure messages before they are journaled or shown (a log tail a
    /// step quotes could hold one).
    pub redact: Vec<String>,
}

impl Runner<'_> {
    /// Runs `steps` except those `earlier` finished, reusing the captures it journaled.
    pub async fn run<X: Executor>(
        &self,
        steps: &[Step<X::Kind>],
        earlier: &Earlier,
        executor: &X,
    ) -> RunReport {
        let started = Instant::now();
        let journal_error: Mutex<Option<String>> = Mutex::new(None);
        let window: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));
        let failures: Mutex<Vec<StepFailure>> = Mutex::new(Vec::new());
        // Steps the scheduler handed over after an interrupt: refused before their intent.
        let held_back: Mutex<BTreeSet<StepId>> = Mutex::new(BTreeSet::new());
        let (journal_error_ref, window_ref, failures_ref, held_back_ref) =
            (&journal_error, &window, &failures, &held_back);

        let report = run_dag(steps, &earlier.done, self.parallelism, |step| {
            let prior = earlier.captured.get(&step.id).cloned();
            async move {
                if crate::interrupt::requested() {
                    held_back_ref
                        .lock()
                        .expect("held back")
                        .insert(step.id.clone());
                    return Err(());
                }
                let step_started = Instant::now();
                self.failpoints.hit(Moment::Before, &step.id);
                let captured = match prior {
                    Some(value) => Ok(Some(value)),
                    None => executor.capture(step).await,
                };
                let (captured, capture_error) = match captured {
                    Ok(value) => (value, None),
                    Err(error) => (None, Some(error)),
                };
                // A failed capture acted on nothing: the next attempt captures again.
                let payload = IntentPayload {
                    step: step.clone(),
                    captured: captured.clone(),
                    capture_failed: capture_error.is_some(),
                };
                let payload = serde_json::to_value(&payload).expect("an intent serializes");
                let kind = step.kind.name();
                let journal_failed = |message: String| -> Result<(), ()> {
                    *journal_error_ref.lock().expect("journal error") = Some(message.clone());
                    failures_ref
                        .lock()
                        .expect("failures")
                        .push(StepFailure::journal(&step.id, message));
                    Err(())
                };
                let journal_started = Instant::now();
                if let Err(error) = self.writer.intent(step.id.as_str(), kind, payload).await {
                    return journal_failed(format!(
                        "cannot journal the intent of `{}`: {error}",
                        step.id
                    ));
                }
                let mut journal = journal_started.elapsed();
                self.progress.event(&Event::StepStarted {
                    step: step.id.to_string(),
                    kind: kind.to_owned(),
                    node: step.kind.node().map(str::to_owned),
                });
                if step.downtime {
                    let mut window = window_ref.lock().expect("window");
                    window.0 = Some(window.0.map_or(step_started, |t| t.min(step_started)));
                }
                let result = match capture_error {
                    Some(error) => Err(error),
                    None => executor.execute(step, captured.as_ref()).await,
                };
                self.failpoints.hit(Moment::After, &step.id);
                let took_ms = step_started.elapsed().as_millis() as u64;
                match result {
                    Ok(output) => {
                        let summary = <X::Kind as Kind>::summary(&output);
                        let output = serde_json::to_value(&output).expect("an output serializes");
                        let journal_started = Instant::now();
                        if let Err(error) = self.writer.succeeded(step.id.as_str(), output).await {
                            return journal_failed(format!(
                                "cannot journal the outcome of `{}`: {error}",
                                step.id
                            ));
                        }
                        journal += journal_started.elapsed();
                        if step.downtime {
                            let now = Instant::now();
                            let mut window = window_ref.lock().expect("window");
                            window.1 = Some(window.1.map_or(now, |t| t.max(now)));
                        }
                        self.progress.event(&Event::StepSucceeded {
                            step: step.id.to_string(),
                            took_ms,
                            journal_us: journal.as_micros() as u64,
                            summary,
                        });
                        Ok(())
                    }
                    Err(error) => {
                        let mut failure = StepFailure::from_error(&error);
                        for secret in &self.redact {
                            failure.redact(secret);
                        }
                        let details = serde_json::to_value(&failure).expect("a failure serializes");
                        if let Err(error) = self
                            .writer
                            .failed(step.id.as_str(), &failure.text(), details)
                            .await
                        {
                            *journal_error_ref.lock().expect("journal error") = Some(format!(
                                "cannot journal the failure of `{}`: {error}",
                                step.id
                            ));
                        }
                        self.progress.event(&Event::StepFailed {
                            step: step.id.to_string(),
                            took_ms,
                            error: failure.text(),
                        });
                        failures_ref.lock().expect("failures").push(failure);
                        Err(())
                    }
                }
            }
        })
        .await;
        let (opened, closed) = *window.lock().expect("window");
        let journal_error = journal_error.into_inner().expect("journal error");
        let failures = failures.into_inner().expect("failures");
        // A step refused after the interrupt is not a failure: it never began.
        let held_back = held_back.into_inner().expect("held back");
        let mut not_started = report.not_started;
        not_started.extend(
            report
                .failed
                .iter()
                .filter(|(id, ())| held_back.contains(id))
                .map(|(id, ())| id.clone()),
        );
        // In the order the scheduler saw them fail.
        let failed = report
            .failed
            .iter()
            .filter_map(|(id, ())| failures.iter().find(|f| &f.step == id).cloned())
            .collect();
        let interrupted = crate::interrupt::requested() && !not_started.is_empty();
        RunReport {
            succeeded: report.succeeded,
            failed,
            not_started,
            interrupted,
            journal_error,
            took: started.elapsed(),
            downtime: match (opened, closed) {
                (Some(opened), Some(closed)) if closed >= opened => Some(closed - opened),
                _ => None,
            },
        }
    }
}
