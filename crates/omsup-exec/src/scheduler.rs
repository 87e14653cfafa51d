//! Runs a DAG of steps in topological order, independent steps concurrently up to a limit.
//!
//! A step starts when every step it depends on has succeeded (or was already done before this
//! run). After the first failure no new step starts; the steps already running are allowed to
//! finish, so nothing is abandoned half-way; the report then says what succeeded, what failed
//! and what never started. The scheduler reads only the steps' ids and dependencies, forward
//! or undo alike: the caller passes a function that runs one step (and journals it).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use omsup_engine::{Step, StepId};

/// How a run of the graph ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScheduleReport<E> {
    /// In the order they finished.
    pub succeeded: Vec<StepId>,
    pub failed: Vec<(StepId, E)>,
    /// Steps that never started because something failed first (or a dependency failed).
    pub not_started: Vec<StepId>,
}

impl<E> ScheduleReport<E> {
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.not_started.is_empty()
    }
}

/// Runs `steps` (ids not in `already_done`) with at most `parallelism` at once.
///
/// `steps` must be acyclic and every dependency must be a step of the list or in
/// `already_done`; the engine guarantees both. A dependency on an unknown id is treated as
/// never satisfied, so its dependents are reported as not started rather than run early.
pub async fn run_dag<'s, K, E, F, Fut>(
    steps: &'s [Step<K>],
    already_done: &BTreeSet<StepId>,
    parallelism: usize,
    mut run_step: F,
) -> ScheduleReport<E>
where
    F: FnMut(&'s Step<K>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let parallelism = parallelism.max(1);
    let mut done: BTreeSet<StepId> = already_done.clone();
    let mut pending: BTreeMap<&StepId, &Step<K>> = steps
        .iter()
        .filter(|step| !already_done.contains(&step.id))
        .map(|step| (&step.id, step))
        .collect();
    // File order among steps that are ready at the same time: keeps runs reproducible.
    let order: Vec<&StepId> = steps.iter().map(|step| &step.id).collect();
    let mut report = ScheduleReport {
        succeeded: Vec::new(),
        failed: Vec::new(),
        not_started: Vec::new(),
    };
    let mut running = FuturesUnordered::new();

    loop {
        if report.failed.is_empty() {
            let ready: Vec<&StepId> = order
                .iter()
                .copied()
                .filter(|id| {
                    pending
                        .get(id)
                        .is_some_and(|step| step.depends_on.iter().all(|dep| done.contains(dep)))
                })
                .collect();
            for id in ready {
                if running.len() >= parallelism {
                    break;
                }
                let step = pending.remove(id).expect("a pending step");
                let future = run_step(step);
                let owned = id.clone();
                running.push(async move { (owned, future.await) });
            }
        }
        match running.next().await {
            Some((id, Ok(()))) => {
                done.insert(id.clone());
                report.succeeded.push(id);
            }
            Some((id, Err(error))) => report.failed.push((id, error)),
            None => break,
        }
    }
    report.not_started = order
        .iter()
        .filter(|id| pending.contains_key(*id))
        .map(|id| (*id).clone())
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn step(id: &str, deps: &[&str]) -> Step<()> {
        Step {
            id: id.into(),
            kind: (),
            depends_on: deps.iter().map(|d| (*d).into()).collect(),
            changes: String::new(),
            downtime: false,
            lane: 0,
        }
    }

    /// a → {b, c} → d, with a log of (event, id) to check ordering and concurrency.
    fn diamond() -> Vec<Step<()>> {
        vec![
            step("a", &[]),
            step("b", &["a"]),
            step("c", &["a"]),
            step("d", &["b", "c"]),
        ]
    }

    #[tokio::test]
    async fn runs_in_dependency_order_and_in_parallel_where_allowed() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = diamond();
        let report = run_dag::<_, (), _, _>(&steps, &BTreeSet::new(), 4, |step| {
            let (log, id) = (log.clone(), step.id.clone());
            async move {
                log.lock().unwrap().push(format!("start {id}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                log.lock().unwrap().push(format!("end {id}"));
                Ok(())
            }
        })
        .await;
        assert!(report.is_success());
        let log = log.lock().unwrap().clone();
        assert_eq!(log[0..2], ["start a", "end a"]);
        assert_eq!(
            log[2..4],
            ["start b", "start c"],
            "b and c overlap: {log:?}"
        );
        assert_eq!(log.last().unwrap(), "end d");
    }

    #[tokio::test]
    async fn parallelism_one_runs_strictly_one_at_a_time() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = diamond();
        run_dag::<_, (), _, _>(&steps, &BTreeSet::new(), 1, |step| {
            let (log, id) = (log.clone(), step.id.clone());
            async move {
                log.lock().unwrap().push(format!("start {id}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                log.lock().unwrap().push(format!("end {id}"));
                Ok(())
            }
        })
        .await;
        let log = log.lock().unwrap().clone();
        for pair in log.chunks(2) {
            assert_eq!(pair[0].replace("start", "end"), pair[1], "{log:?}");
        }
    }

    #[tokio::test]
    async fn a_failure_lets_running_steps_finish_and_starts_nothing_new() {
        let steps = vec![
            step("a", &[]),
            step("slow", &["a"]),
            step("bad", &["a"]),
            step("after", &["slow"]),
        ];
        let report = run_dag(&steps, &BTreeSet::new(), 4, |step| async move {
            match step.id.as_str() {
                "bad" => Err("boom"),
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
        .await;
        assert_eq!(report.succeeded, ["a", "slow"]);
        assert_eq!(report.failed, [(StepId::new("bad"), "boom")]);
        assert_eq!(report.not_started, ["after"]);
    }

    #[tokio::test]
    async fn steps_already_done_are_not_run_again() {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let done = BTreeSet::from([StepId::new("a"), StepId::new("b")]);
        let steps = diamond();
        let report = run_dag::<_, (), _, _>(&steps, &done, 2, |step| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(step.id.to_string());
                Ok(())
            }
        })
        .await;
        assert!(report.is_success());
        assert_eq!(*ran.lock().unwrap(), ["c", "d"]);
    }
}
