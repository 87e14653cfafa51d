//! Fuzz targets for omsup's readers of untrusted bytes: the plan file (parse, schema, lint and
//! the rendering of every finding), a node's `config.yaml` (the archive Docker returns and the
//! YAML in it) and the journal's replay (decoding stored event rows and folding them into a
//! run's state). Each target must neither panic nor hang on any input.
//!
//! The same functions serve twice: `cargo xtask fuzz` runs them under libFuzzer (the
//! cargo-fuzz package in `fuzz/`, outside the workspace), and this crate's test replays the
//! corpus in `corpus/<target>/` as an ordinary test of the normal suite.

use omsup::diagnostics::{line_column, render_github, render_human};
use omsup::style::{ColorChoice, Style};
use omsup_journal::{EventColumns, JournalEvent, RunId, RunInfo, RunKind, RunOutcome, StepState};

/// One fuzz target: its name (the corpus folder and the cargo-fuzz binary) and its function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: [Target; 3] = [
    Target {
        name: "plan_file",
        run: plan_file,
    },
    Target {
        name: "config_yaml",
        run: config_yaml,
    },
    Target {
        name: "journal_replay",
        run: journal_replay,
    },
];

/// A plan file: `lint_source` (TOML parse, schema, semantic checks), then every finding
/// rendered as a snippet, a GitHub annotation and a line/column, as `omsup lint` does.
pub fn plan_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let linted = omsup_model::lint::lint_source(text);
    let style = Style::detect(ColorChoice::Never);
    for finding in &linted.findings {
        if let Some(span) = &finding.span {
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "a span outside the file: {span:?} of {} bytes",
                text.len()
            );
            let _ = line_column(text, span.start);
            let _ = line_column(text, span.end);
        }
        let human = render_human("fuzz.toml", text, finding, &style);
        assert!(human.contains(finding.code), "{human}");
        let _ = render_github("fuzz.toml", text, finding);
    }
}

/// A node's `config.yaml`: as the tar archive Docker's archive API returns, and as the YAML
/// itself (the reduction that keeps the keys the engine needs and drops the password).
pub fn config_yaml(data: &[u8]) {
    if let Ok(file) = omsup_exec::observe::single_file_from_tar(data) {
        let _ = omsup_exec::observe::parse_config_yaml(&file);
    }
    let _ = omsup_exec::observe::parse_config_yaml(data);
}

/// The journal's replay: each line `seq|step_id|step_kind|event|attempt|at|payload` is one
/// stored event row (the payload may hold `|`); rows are decoded as the journal decodes its
/// table, the decodable ones replayed, and the resulting state queried as `status` does.
pub fn journal_replay(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut events: Vec<JournalEvent> = Vec::new();
    for line in text.lines() {
        let mut columns = line.splitn(7, '|');
        let (
            Some(seq),
            Some(step_id),
            Some(step_kind),
            Some(event),
            Some(attempt),
            Some(at),
            Some(payload),
        ) = (
            columns.next(),
            columns.next(),
            columns.next(),
            columns.next(),
            columns.next(),
            columns.next(),
            columns.next(),
        )
        else {
            continue;
        };
        let (Ok(seq), Ok(attempt)) = (seq.trim().parse::<i64>(), attempt.trim().parse::<i64>())
        else {
            continue;
        };
        if let Ok(event) = JournalEvent::from_columns(EventColumns {
            run_id: "fuzz-run",
            seq,
            step_id,
            step_kind,
            event,
            attempt,
            at,
            payload,
        }) {
            events.push(event);
        }
    }
    let Some(first) = events.first() else {
        return;
    };
    let info = RunInfo {
        run_id: RunId::new("fuzz-run"),
        kind: RunKind::Apply,
        undoes: None,
        deployment: "fuzz".to_owned(),
        plan_fingerprint: String::new(),
        plan_file_path: "fuzz.toml".into(),
        plan_file_sha256: String::new(),
        planned_steps: Vec::new(),
        started_by: "fuzz".to_owned(),
        started_on_host: "fuzz".to_owned(),
        started_pid: 0,
        omsup_version: String::new(),
        started_at: first.at,
        finished_at: None,
        outcome: RunOutcome::Running,
        resume_count: 0,
        last_resumed_at: None,
    };
    let Ok(state) = omsup_journal::event::replay(info, &events) else {
        return;
    };
    assert_eq!(state.last_seq, events.len() as u64);
    let _ = state.steps_done();
    let _ = state.in_flight().count();
    for record in state.steps.values() {
        let _ = record.duration();
        let _ = state.output_of(record.step_id.as_str());
        assert_eq!(state.state_of(record.step_id.as_str()), Some(record.state));
    }
    for wanted in [StepState::InFlight, StepState::Succeeded, StepState::Failed] {
        let _ = state.with_state(wanted).count();
    }
}
