//! The sinks' tests: plain lines and their throttle, JSON Lines, the live view on a hidden and
//! a recording terminal, and all three under concurrent events.

use std::io::Write;
use std::sync::Arc;

use indicatif::TermLike;
use omsup_journal::Timestamp;
use serde_json::Value;

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
                journal_us: 0,
                summary: Some("kept the old container as oms-omsup-4.2.8".to_owned()),
            },
        ),
        (
            9_100,
            Event::StepSucceeded {
                step: load.to_owned(),
                took_ms: 8_100,
                journal_us: 0,
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
                error: "cannot start container `oms`\ncaused by: port 8088 is in use".to_owned(),
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
    assert!(
        painted.contains("\x1b[1m\x1b[31mFAIL \x1b[0m"),
        "{painted:?}"
    );
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
        r#"{"type":"run_started","at":"2026-11-25T12:00:00.000Z","format_version":2,"run_id":"20261125T120000Z-1a2b","kind":"apply","deployment":"prod","steps":["node[10.0.0.2].stop-old","node[10.0.0.2].load-image","node[10.0.0.3].start-new"],"already_done":[]}"#
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
            journal_us: 0,
            summary: None,
        },
        at(1_500),
    );
    assert_eq!(
        succeeded,
        r#"{"type":"step_succeeded","at":"2026-11-25T12:00:01.500Z","format_version":2,"step":"s","took_ms":1200,"journal_us":0,"summary":null}"#
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
                        journal_us: 0,
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
        journal_us: 0,
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
        journal_us: 0,
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
