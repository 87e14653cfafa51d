//! `omsup report`: one run as a self-contained HTML page (inline CSS and SVG, no script, nothing
//! fetched at view time). The steps sit on a time axis, grouped by lane; every attempt is a
//! bar (green succeeded, red failed, orange interrupted, grey still running), the downtime
//! window is a band behind them, and HA off/on are marked on the axis. A table below lists
//! each step's attempts, duration, outcome and what it produced (backup sizes, errors).
//!
//! [`Timeline`] is plain data built by `commands/report.rs` from the journal; this renderer
//! only draws it, so tests can pin it on synthetic runs.

use std::fmt::Write as _;

/// One run, ready to draw. Times are milliseconds since the run started.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// `apply run 20261201-…` (the page title and heading).
    pub title: String,
    /// Header facts, in order: deployment, outcome, started, by whom, downtime...
    pub facts: Vec<(String, String)>,
    /// In the order drawn: by lane, then by first start.
    pub rows: Vec<TimelineRow>,
    /// The downtime window, when the run opened it.
    pub downtime: Option<Span>,
    /// Moments worth a vertical line: `HA off`, `HA on`.
    pub markers: Vec<Marker>,
    /// The length of the axis (the run's end, or its last event).
    pub total_ms: u64,
}

/// `[start, end)` in milliseconds since the run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub at_ms: u64,
    pub label: String,
}

/// One step: a row of the chart and of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub step: String,
    pub kind: String,
    pub lane: usize,
    pub in_downtime: bool,
    pub attempts: Vec<Attempt>,
    /// What the step produced, one line (`dump 1.2 MiB, sha256 ab12…`), if anything.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub start_ms: u64,
    /// `None` while the attempt is still running (or was cut off and never closed).
    pub end_ms: Option<u64>,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    Interrupted,
    Running,
}

impl AttemptOutcome {
    fn name(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Running => "running",
        }
    }
}

const LABEL_WIDTH: u64 = 300;
const CHART_WIDTH: u64 = 860;
const ROW_HEIGHT: u64 = 22;
const LANE_GAP: u64 = 8;
const AXIS_HEIGHT: u64 = 34;

/// The whole page.
pub fn render_timeline_html(timeline: &Timeline) -> String {
    let mut page = String::new();
    let title = escape(&timeline.title);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>omsup — {title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>omsup — {title}</h1>\n<dl class=\"facts\">\n"
    );
    for (name, value) in &timeline.facts {
        let _ = writeln!(page, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(value));
    }
    page.push_str("</dl>\n");
    page.push_str(&chart(timeline));
    page.push_str(&table(timeline));
    page.push_str("</body>\n</html>\n");
    page
}

fn chart(timeline: &Timeline) -> String {
    let total = timeline.total_ms.max(1);
    let x = |ms: u64| LABEL_WIDTH + ms.min(total) * CHART_WIDTH / total;
    let rows = &timeline.rows;
    let lanes = rows.windows(2).filter(|w| w[0].lane != w[1].lane).count() as u64 + 1;
    let height = AXIS_HEIGHT + rows.len() as u64 * ROW_HEIGHT + lanes * LANE_GAP + 10;
    let width = LABEL_WIDTH + CHART_WIDTH + 20;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"steps on a time axis\">"
    );
    if let Some(window) = timeline.downtime {
        let _ = writeln!(
            svg,
            "<rect class=\"downtime\" data-downtime-ms=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>downtime window: {}</title></rect>",
            window.end_ms.saturating_sub(window.start_ms),
            x(window.start_ms),
            AXIS_HEIGHT - 6,
            (x(window.end_ms) - x(window.start_ms)).max(1),
            height - AXIS_HEIGHT,
            seconds(window.end_ms.saturating_sub(window.start_ms))
        );
        let _ = writeln!(
            svg,
            "<text class=\"band-label\" x=\"{}\" y=\"{}\">downtime window {}</text>",
            x(window.start_ms) + 4,
            height - 4,
            seconds(window.end_ms.saturating_sub(window.start_ms))
        );
    }
    // The axis: ten ticks.
    for tick in 0..=10u64 {
        let ms = total * tick / 10;
        let _ = writeln!(
            svg,
            "<line class=\"tick\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/><text class=\"tick-label\" x=\"{0}\" y=\"12\">{3}</text>",
            x(ms),
            AXIS_HEIGHT - 6,
            height,
            seconds(ms)
        );
    }
    for marker in &timeline.markers {
        // Labels in the right half read leftwards, so none runs off the chart.
        let (anchor, dx) = if marker.at_ms * 2 > total {
            ("end", -3i64)
        } else {
            ("start", 3)
        };
        let _ = writeln!(
            svg,
            "<line class=\"marker\" x1=\"{0}\" x2=\"{0}\" y1=\"14\" y2=\"{1}\"/><text class=\"marker-label\" text-anchor=\"{anchor}\" x=\"{2}\" y=\"24\">{3}</text>",
            x(marker.at_ms),
            height,
            x(marker.at_ms) as i64 + dx,
            escape(&marker.label)
        );
    }
    let mut y = AXIS_HEIGHT;
    let mut lane = None;
    for row in rows {
        if lane != Some(row.lane) {
            if lane.is_some() {
                y += LANE_GAP;
            }
            lane = Some(row.lane);
            let _ = writeln!(
                svg,
                "<line class=\"lane\" x1=\"0\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>",
                width
            );
        }
        let step = escape(&row.step);
        let _ = writeln!(
            svg,
            "<g class=\"row\" data-step=\"{step}\" data-lane=\"{}\"><text class=\"step-label\" x=\"6\" y=\"{}\">lane {} · {step}</text>",
            row.lane,
            y + 15,
            row.lane
        );
        for attempt in &row.attempts {
            let end = attempt.end_ms.unwrap_or(total);
            let _ = writeln!(
                svg,
                "<rect class=\"bar {}\" data-attempt=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{step} attempt {}: {} after {}{}</title></rect>",
                attempt.outcome.name(),
                attempt.number,
                x(attempt.start_ms),
                y + 3,
                (x(end) - x(attempt.start_ms)).max(2),
                ROW_HEIGHT - 6,
                attempt.number,
                attempt.outcome.name(),
                seconds(end.saturating_sub(attempt.start_ms)),
                attempt
                    .error
                    .as_deref()
                    .map(|e| format!(": {}", escape(e)))
                    .unwrap_or_default()
            );
        }
        svg.push_str("</g>\n");
        y += ROW_HEIGHT;
    }
    svg.push_str("</svg>\n");
    svg
}

fn table(timeline: &Timeline) -> String {
    let mut html = String::from(
        "<table class=\"steps\">\n<thead><tr><th>lane</th><th>step</th><th>attempts</th><th>duration</th><th>outcome</th><th>details</th></tr></thead>\n<tbody>\n",
    );
    for row in &timeline.rows {
        let last = row.attempts.last();
        let outcome = last.map_or("not started", |a| a.outcome.name());
        let duration = last
            .and_then(|a| a.end_ms.map(|end| seconds(end.saturating_sub(a.start_ms))))
            .unwrap_or_default();
        let mut details: Vec<String> = row.detail.iter().map(|d| escape(d)).collect();
        for attempt in &row.attempts {
            if let Some(error) = &attempt.error {
                details.push(format!(
                    "attempt {} {}: {}",
                    attempt.number,
                    attempt.outcome.name(),
                    escape(error)
                ));
            }
        }
        let _ = writeln!(
            html,
            "<tr class=\"{outcome}{}\" data-step=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{duration}</td><td>{outcome}</td><td>{}</td></tr>",
            if row.in_downtime { " in-downtime" } else { "" },
            escape(&row.step),
            row.lane,
            escape(&row.step),
            row.attempts.len(),
            details.join("<br>")
        );
    }
    html.push_str("</tbody>\n</table>\n");
    html
}

/// `1.234 s`
fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// Text safe inside HTML elements and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 12px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 0 0 16px; }
dt { color: #666; } dd { margin: 0; }
svg.chart { border: 1px solid #ddd; background: #fff; }
.downtime { fill: #ffb347; fill-opacity: 0.25; }
.band-label { font-size: 11px; fill: #a05a00; }
.tick { stroke: #eee; } .tick-label { font-size: 10px; fill: #888; text-anchor: middle; }
.marker { stroke: #3366cc; stroke-dasharray: 4 3; } .marker-label { font-size: 11px; fill: #3366cc; }
.lane { stroke: #ccc; }
.step-label { font: 12px ui-monospace, monospace; fill: #333; }
.bar.succeeded { fill: #3c9a5f; } .bar.failed { fill: #d9534f; }
.bar.interrupted { fill: #f0ad4e; } .bar.running { fill: #999; }
table.steps { border-collapse: collapse; margin-top: 16px; }
table.steps th, table.steps td { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: left; vertical-align: top; }
tr.failed td { color: #b52b27; } tr.in-downtime td:first-child { border-left: 3px solid #ffb347; }
";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Timeline {
        let attempt = |number, start_ms, end_ms, outcome| Attempt {
            number,
            start_ms,
            end_ms,
            outcome,
            error: (outcome != AttemptOutcome::Succeeded).then(|| "<init> & \"tail\"".to_owned()),
        };
        Timeline {
            title: "apply run r1".into(),
            facts: vec![("deployment".into(), "oms-prod".into())],
            rows: vec![
                TimelineRow {
                    step: "preflight".into(),
                    kind: "preflight".into(),
                    lane: 0,
                    in_downtime: false,
                    attempts: vec![attempt(1, 0, Some(100), AttemptOutcome::Succeeded)],
                    detail: None,
                },
                TimelineRow {
                    step: "region[hz].init".into(),
                    kind: "init".into(),
                    lane: 1,
                    in_downtime: true,
                    attempts: vec![
                        attempt(1, 100, Some(600), AttemptOutcome::Interrupted),
                        attempt(2, 900, Some(1500), AttemptOutcome::Succeeded),
                    ],
                    detail: Some("schema 4.2.8 -> 4.2.9".into()),
                },
            ],
            downtime: Some(Span {
                start_ms: 100,
                end_ms: 1500,
            }),
            markers: vec![Marker {
                at_ms: 50,
                label: "HA off".into(),
            }],
            total_ms: 2000,
        }
    }

    #[test]
    fn every_step_and_attempt_is_drawn_and_text_is_escaped() {
        let html = render_timeline_html(&sample());
        assert_eq!(html.matches("<g class=\"row\"").count(), 2);
        assert_eq!(html.matches("<rect class=\"bar ").count(), 3);
        assert!(html.contains("class=\"bar interrupted\" data-attempt=\"1\""));
        assert!(html.contains("data-downtime-ms=\"1400\""));
        assert!(html.contains(">HA off</text>"));
        assert!(html.contains("&lt;init&gt; &amp; &quot;tail&quot;"));
        assert!(!html.contains("<init>"));
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "nothing fetched"
        );
    }
}
