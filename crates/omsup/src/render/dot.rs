//! `omsup graph`: the step DAG as Graphviz DOT (`omsup graph -f plan.toml | dot -Tsvg`).
//!
//! Steps are boxes labelled with their id and lane; an edge runs from a dependency to the step
//! that waits for it; the steps inside the downtime window sit in a `cluster_downtime`
//! subgraph, filled in amber. Graphviz ranks each step by its longest path from `preflight`,
//! which is its lane, so parallel steps line up without `rank=same` (which would fight the
//! cluster when one lane mixes steps inside and outside the window).
//! Every id is a quoted, escaped DOT string.

use std::fmt::Write as _;

use omsup_engine::UpgradePlan;

/// Renders the plan's steps as a DOT digraph (an empty graph when there are no steps).
pub fn render_dot(plan: &UpgradePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "digraph {} {{",
        quote(&format!("omsup plan {}", plan.deployment))
    );
    out.push_str("  rankdir=LR;\n");
    out.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n");
    out.push_str("  edge [color=\"#555555\"];\n");
    let step_node = |out: &mut String, indent: &str, step: &omsup_engine::Step| {
        let label = format!("{}\nlane {}", step.id, step.lane + 1);
        let fill = if step.downtime { "#ffe4b3" } else { "#ffffff" };
        let _ = writeln!(
            out,
            "{indent}{} [label={}, tooltip={}, fillcolor=\"{fill}\"];",
            quote(step.id.as_str()),
            quote(&label),
            quote(&step.changes)
        );
    };
    let downtime: Vec<_> = plan.steps.iter().filter(|s| s.downtime).collect();
    if !downtime.is_empty() {
        out.push_str("  subgraph cluster_downtime {\n");
        let _ = writeln!(
            out,
            "    label={};",
            quote(&format!("downtime window ({} steps)", downtime.len()))
        );
        out.push_str("    style=\"rounded,dashed\";\n    color=\"#d08000\";\n");
        for step in &downtime {
            step_node(&mut out, "    ", step);
        }
        out.push_str("  }\n");
    }
    for step in plan.steps.iter().filter(|s| !s.downtime) {
        step_node(&mut out, "  ", step);
    }
    for step in &plan.steps {
        for dependency in &step.depends_on {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quote(dependency.as_str()),
                quote(step.id.as_str())
            );
        }
    }
    out.push_str("}\n");
    out
}

/// A DOT quoted string: `"` and `\` escaped, newlines as `\n`.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}
