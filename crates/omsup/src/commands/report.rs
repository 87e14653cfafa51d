//! `omsup report [--run ID] [--out FILE]`: one run of the journal (the last one by default) as
//! a self-contained HTML page ([`crate::render::timeline`]): steps on a time axis by lane,
//! every attempt (retries, interruptions), the downtime window, HA off/on, backup sizes.
//! Reads the journal only; needs no service.
//!
//! Exit codes: 0 written, 1 the journal or the run cannot be read, 64 usage.

use std::collections::BTreeMap;
use std::path::PathBuf;

use omsup_engine::StepId;
use omsup_engine::outputs::StepOutput;
use omsup_journal::time::human_duration;
use omsup_journal::{EventKind, Journal, JournalEvent, RunId, RunKind, RunState, Timestamp};

use crate::cli::ReportArgs;
use crate::commands::apply::ApplyDocument;
use crate::commands::common::{journal_error, open_existing_journal, runtime};
use crate::commands::rollback::RollbackDocument;
use crate::exit_codes;
use crate::render::timeline::{
    Attempt, AttemptOutcome, Marker, Span, Timeline, TimelineRow, render_timeline_html,
};
use crate::report::CliError;
use crate::run::run_document;
use crate::style::Style;

pub fn run(args: &ReportArgs, _style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(async {
        let journal =
            open_existing_journal(args.file.as_deref(), args.state.state_dir.as_deref()).await?;
        let deployment = journal.deployment().to_owned();
        let run = match &args.run {
            Some(id) => journal
                .run(&RunId::new(id.clone()))
                .await
                .map_err(journal_error)?,
            None => journal
                .last_run()
                .await
                .map_err(journal_error)?
                .ok_or_else(|| {
                    CliError::new(format!("the journal of `{deployment}` holds no run yet"))
                })?,
        };
        let timeline = timeline_of(&journal, &run).await?;
        let out = args.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!("omsup-{deployment}-{}.html", run.info.run_id))
        });
        std::fs::write(&out, render_timeline_html(&timeline)).map_err(|error| {
            CliError::new(format!("cannot write the report `{}`", out.display()))
                .with_cause(error.to_string())
        })?;
        anstream::println!("{}", out.display());
        Ok(exit_codes::SUCCESS)
    })
}

/// Where a step sits in its run's plan.
struct Placement {
    lane: usize,
    in_downtime: bool,
}

/// The run's steps, lanes and downtime flags, from the document journaled with it.
async fn placements(
    journal: &Journal,
    run: &RunState,
) -> Result<BTreeMap<String, Placement>, CliError> {
    let run_id = &run.info.run_id;
    let steps: Vec<(String, usize, bool)> = match run.info.kind {
        RunKind::Apply => run_document::<ApplyDocument>(journal, run_id)
            .await?
            .plan
            .steps
            .into_iter()
            .map(|s| (s.id.to_string(), s.lane, s.downtime))
            .collect(),
        RunKind::Rollback => run_document::<RollbackDocument>(journal, run_id)
            .await?
            .rollback
            .steps
            .into_iter()
            .map(|s| (s.id.to_string(), s.lane, s.downtime))
            .collect(),
    };
    Ok(steps
        .into_iter()
        .map(|(id, lane, in_downtime)| (id, Placement { lane, in_downtime }))
        .collect())
}

async fn timeline_of(journal: &Journal, run: &RunState) -> Result<Timeline, CliError> {
    let info = &run.info;
    let events = journal.events(&info.run_id).await.map_err(journal_error)?;
    let placements = placements(journal, run).await?;
    let start = info.started_at;
    let ms = |at: Timestamp| at.duration_since(start).as_millis() as u64;
    let end = info
        .finished_at
        .or_else(|| events.last().map(|e| e.at))
        .unwrap_or(start);

    let mut rows: BTreeMap<String, TimelineRow> = BTreeMap::new();
    for planned in &info.planned_steps {
        let placement = placements.get(planned.step_id.as_str());
        rows.insert(
            planned.step_id.as_str().to_owned(),
            TimelineRow {
                step: planned.step_id.as_str().to_owned(),
                kind: planned.step_kind.clone(),
                lane: placement.map_or(0, |p| p.lane),
                in_downtime: placement.is_some_and(|p| p.in_downtime),
                attempts: Vec::new(),
                detail: None,
            },
        );
    }
    let mut downtime: Option<Span> = None;
    let mut markers = Vec::new();
    for event in &events {
        let Some(row) = rows.get_mut(event.step_id.as_str()) else {
            continue;
        };
        let at = ms(event.at);
        match event.kind {
            EventKind::Intent => row.attempts.push(Attempt {
                number: event.attempt,
                start_ms: at,
                end_ms: None,
                outcome: AttemptOutcome::Running,
                error: None,
            }),
            EventKind::Succeeded | EventKind::Failed => {
                if let Some(attempt) = row.attempts.iter_mut().rev().find(|a| a.end_ms.is_none()) {
                    attempt.end_ms = Some(at);
                    if event.kind == EventKind::Failed {
                        let failure: FailedPayload =
                            serde_json::from_value(event.payload.clone()).unwrap_or_default();
                        attempt.outcome = if failure.interrupted {
                            AttemptOutcome::Interrupted
                        } else {
                            AttemptOutcome::Failed
                        };
                        attempt.error = failure.error;
                    } else {
                        attempt.outcome = AttemptOutcome::Succeeded;
                    }
                }
                if event.kind == EventKind::Succeeded {
                    row.detail = detail_of(event);
                    if let Some(label) = ha_marker(&row.step) {
                        markers.push(Marker {
                            at_ms: at,
                            label: label.to_owned(),
                        });
                    }
                }
            }
        }
        if row.in_downtime {
            let first = row.attempts.first().map_or(at, |a| a.start_ms);
            downtime = Some(match downtime {
                None => Span {
                    start_ms: first,
                    end_ms: at,
                },
                Some(span) => Span {
                    start_ms: span.start_ms.min(first),
                    end_ms: span.end_ms.max(at),
                },
            });
        }
    }
    let mut facts = vec![
        ("deployment".to_owned(), info.deployment.clone()),
        ("outcome".to_owned(), info.outcome.as_str().to_owned()),
        ("started".to_owned(), info.started_at.to_rfc3339()),
        (
            "took".to_owned(),
            human_duration(end.duration_since(info.started_at)),
        ),
        (
            "started by".to_owned(),
            format!(
                "{} on {} (pid {})",
                info.started_by, info.started_on_host, info.started_pid
            ),
        ),
    ];
    if let Some(window) = downtime {
        facts.push((
            "downtime window".to_owned(),
            human_duration(std::time::Duration::from_millis(
                window.end_ms.saturating_sub(window.start_ms),
            )),
        ));
    }
    if let Some(undoes) = &info.undoes {
        facts.push(("undoes run".to_owned(), undoes.to_string()));
    }
    if info.resume_count > 0 {
        facts.push(("resumed".to_owned(), format!("{} times", info.resume_count)));
    }
    let mut rows: Vec<TimelineRow> = rows.into_values().collect();
    rows.sort_by_key(|r| (r.lane, r.attempts.first().map_or(u64::MAX, |a| a.start_ms)));
    Ok(Timeline {
        title: format!("{} run {}", info.kind.as_str(), info.run_id),
        facts,
        rows,
        downtime,
        markers,
        total_ms: ms(end),
    })
}

/// A `Failed` event's payload, as far as the report needs it.
#[derive(Debug, Default, serde::Deserialize)]
struct FailedPayload {
    #[serde(default)]
    error: Option<String>,
    /// Closed by `resume` because the attempt was cut off (see `RunWriter::interrupted`).
    #[serde(default)]
    interrupted: bool,
}

/// `HA off` / `HA on` for the steps that switch HA.
fn ha_marker(step: &str) -> Option<&'static str> {
    if StepId::ha_off() == step || StepId::undo_ha_off() == step {
        Some("HA off")
    } else if StepId::ha_restore() == step || StepId::undo_ha_restore() == step {
        Some("HA on")
    } else {
        None
    }
}

/// What a succeeded step produced, one line: a backup's size and checksum.
fn detail_of(event: &JournalEvent) -> Option<String> {
    let Ok(StepOutput::Backup(manifest)) = serde_json::from_value(event.payload.clone()) else {
        return None;
    };
    Some(format!(
        "dump {}, sha256 {}…",
        omsup_engine::diff::human_bytes(manifest.size_bytes),
        &manifest.sha256[..12.min(manifest.sha256.len())]
    ))
}
