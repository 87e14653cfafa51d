//! The human rendering of a plan, for review in a terminal or a merge request.
//!
//! Layout, top to bottom:
//!
//! 1. a title (`Upgrade `oms-hz`: 4.2.8-CE -> 4.2.9-CE`) and the symbol legend;
//! 2. one block per node, region, database and for HA, with Terraform-like symbols (`+` create,
//!    `-` destroy, `~` change, `=` unchanged, `!` blocked) and `before -> after`; each node that
//!    is upgraded shows the old container's own settings against the new container's spec,
//!    exactly as `start-new` creates it (image, environment, labels, host mounts, restart
//!    policy, log options, ulimits, limits, ...), as a unified diff (`similar`), so a changed
//!    mount, a lost setting or a missing `IS_UPGRADE` cannot hide;
//! 3. the preflight findings (`error[code] subject: message` and `hint:`);
//! 4. the steps in topological order, by lane (`[lane N]`: the steps of one lane depend only
//!    on earlier lanes and may run in parallel), each with what it changes and what it waits
//!    for, and a `┃` gutter on the steps inside the downtime window;
//! 5. the summary line: `Plan: N steps on M nodes; downtime window: K steps`, or
//!    `No changes. The deployment runs <version> everywhere.`
//!
//! Plain text without colour; [`Style`] adds ANSI colour only when it is on.

use std::fmt::Write as _;

use omsup_engine::UpgradePlan;
use omsup_engine::container::ContainerSpec;
use omsup_engine::diff::{DatabaseChange, DatabaseRole, NodeChange, NodeState, human_bytes};
use omsup_engine::steps::{InitScope, Step, StepKind};
use omsup_model::Severity;
use similar::TextDiff;

use crate::style::Style;

/// How many dependencies a step line names before it says "and N more".
const DEPENDENCIES_SHOWN: usize = 3;

/// The gutter of a step inside the downtime window.
const DOWNTIME_GUTTER: &str = "┃";

/// Renders `plan` for a human (see the module doc for the layout).
pub fn render_plan_human(plan: &UpgradePlan, style: &Style) -> String {
    let mut out = String::new();
    render_title(&mut out, plan, style);
    for node in &plan.diff.nodes {
        render_node(&mut out, plan, node, style);
    }
    render_regions(&mut out, plan, style);
    for database in &plan.diff.databases {
        render_database(&mut out, database, style);
    }
    render_ha(&mut out, plan, style);
    render_findings(&mut out, plan, style);
    render_steps(&mut out, plan, style);
    render_summary(&mut out, plan, style);
    out
}

#[derive(Clone, Copy)]
enum Symbol {
    Create,
    Destroy,
    Change,
    Unchanged,
    Blocked,
}

impl Symbol {
    fn paint(self, style: &Style) -> String {
        match self {
            Self::Create => style.green("+"),
            Self::Destroy => style.red("-"),
            Self::Change => style.yellow("~"),
            Self::Unchanged => style.dim("="),
            Self::Blocked => style.red("!"),
        }
    }
}

fn version_or_unknown(version: Option<omsup_model::OmsVersion>) -> String {
    version.map_or_else(|| "an unknown version".to_owned(), |v| v.to_string())
}

fn render_title(out: &mut String, plan: &UpgradePlan, style: &Style) {
    let diff = &plan.diff;
    let title = match diff.from {
        Some(from) => format!("Upgrade `{}`: {from} -> {}", plan.deployment, diff.to),
        None => format!("Upgrade `{}` to {}", plan.deployment, diff.to),
    };
    let _ = writeln!(out, "{}", style.bold(&title));
    let _ = writeln!(
        out,
        "{}\n",
        style.dim("Symbols: + create, - destroy, ~ change, = unchanged, ! blocked")
    );
}

fn render_node(out: &mut String, plan: &UpgradePlan, node: &NodeChange, style: &Style) {
    let heading = format!("node {} (region {})", node.ip, node.region);
    let subject = format!("node[{}]", node.ip);
    // The node's own findings, under its heading (all of them, with hints, under Preflight).
    let findings: String = plan
        .diff
        .findings
        .iter()
        .filter(|f| f.subject == subject)
        .map(|f| {
            let label = match f.severity {
                Severity::Error => style.red(&format!("error[{}]", f.code)),
                Severity::Warning => style.yellow(&format!("warning[{}]", f.code)),
            };
            format!(
                "      {} {label} {}\n",
                Symbol::Blocked.paint(style),
                f.message
            )
        })
        .collect();
    match node.state {
        NodeState::Upgraded => {
            let _ = writeln!(
                out,
                "  {} {}: `{}` already runs {}\n",
                Symbol::Unchanged.paint(style),
                style.bold(&heading),
                node.container,
                node.image_after
            );
        }
        NodeState::Blocked => {
            let _ = writeln!(
                out,
                "  {} {}: cannot be planned\n{findings}",
                Symbol::Blocked.paint(style),
                style.bold(&heading)
            );
        }
        NodeState::NeedsUpgrade => {
            let _ = writeln!(
                out,
                "  {} {}",
                Symbol::Change.paint(style),
                style.bold(&heading)
            );
            out.push_str(&findings);
            if node.load_image {
                let _ = writeln!(
                    out,
                    "      {} image {}: loaded from the package",
                    Symbol::Create.paint(style),
                    node.image_after
                );
            } else {
                let _ = writeln!(
                    out,
                    "      {} image {}: already loaded",
                    Symbol::Unchanged.paint(style),
                    node.image_after
                );
            }
            let kept = node.kept_as.as_deref().unwrap_or("(a kept name)");
            let _ = writeln!(
                out,
                "      {} container {} -> {}: stopped, kept for rollback",
                Symbol::Change.paint(style),
                node.container,
                kept
            );
            let Some(new) = plan.new_container(&node.ip) else {
                out.push('\n');
                return;
            };
            let _ = writeln!(
                out,
                "      {} container {}: {} with the old container's own settings, {} host mount{}",
                Symbol::Create.paint(style),
                new.name,
                new.image,
                new.binds.len(),
                if new.binds.len() == 1 { "" } else { "s" }
            );
            render_container_diff(out, node, new, style);
            out.push('\n');
        }
    }
}

/// The old container's own settings against the new one's spec, exactly as `start-new`
/// creates it, as a unified diff indented under the node. What the images set themselves
/// (environment, labels) is not shown: it comes with each image.
fn render_container_diff(out: &mut String, node: &NodeChange, new: &ContainerSpec, style: &Style) {
    let text = |spec: Option<&ContainerSpec>| -> String {
        spec.map(|spec| {
            spec.lines()
                .into_iter()
                .map(|line| line.text + "\n")
                .collect()
        })
        .unwrap_or_default()
    };
    let before = text(node.container_before.as_ref());
    let after = text(Some(new));
    let old_label = format!("{} (now)", node.container);
    let new_label = format!("{} (new)", new.name);
    let diff = TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(usize::MAX / 4)
        .header(&old_label, &new_label)
        .to_string();
    for line in diff.lines() {
        let painted = if line.starts_with("+++") || line.starts_with("---") {
            style.bold(line)
        } else if line.starts_with('+') {
            style.green(line)
        } else if line.starts_with('-') {
            style.red(line)
        } else if line.starts_with("@@") {
            style.cyan(line)
        } else {
            line.to_owned()
        };
        let _ = writeln!(out, "          {painted}");
    }
    let _ = writeln!(
        out,
        "          {}",
        style.dim("(the environment and labels each image sets itself are not shown)")
    );
}

/// Per region: the heartbeat prune and how init runs there (once, or on each node).
fn render_regions(out: &mut String, plan: &UpgradePlan, style: &Style) {
    let mut regions: Vec<&str> = Vec::new();
    for node in &plan.diff.nodes {
        if !regions.contains(&node.region.as_str()) {
            regions.push(&node.region);
        }
    }
    for region in regions {
        let nodes: Vec<&NodeChange> = plan
            .diff
            .nodes
            .iter()
            .filter(|n| n.region == region)
            .collect();
        let prune = plan.steps.iter().find(
            |s| matches!(&s.kind, StepKind::PruneHeartbeats { region: r, .. } if r == region),
        );
        let inits: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| match &s.kind {
                StepKind::Init {
                    scope: InitScope::Region(r),
                    ..
                } => r == region,
                StepKind::Init {
                    scope: InitScope::Node(ip),
                    ..
                } => nodes.iter().any(|n| &n.ip == ip),
                _ => false,
            })
            .collect();
        if prune.is_none() && inits.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "  {} {}",
            Symbol::Change.paint(style),
            style.bold(&format!("region {region}"))
        );
        if let Some(StepKind::PruneHeartbeats { database, .. }) = prune.map(|s| &s.kind) {
            let rows = plan
                .diff
                .databases
                .iter()
                .find(|d| &d.name == database)
                .and_then(|d| d.heartbeat_rows)
                .map_or(String::new(), |rows| format!(" (about {rows} rows)"));
            let _ = writeln!(
                out,
                "      {} {database}.heatbeat_sequence: rows below max(id) deleted{rows}",
                Symbol::Destroy.paint(style)
            );
        }
        for init in &inits {
            let StepKind::Init { scope, run_on } = &init.kind else {
                continue;
            };
            let why = match scope {
                InitScope::Region(_) => {
                    let cm_nodes = nodes
                        .first()
                        .map(|n| n.cm_nodes.join(", "))
                        .unwrap_or_default();
                    format!(
                        "once for the region, on {run_on} (every node has cm_nodes [{cm_nodes}])"
                    )
                }
                InitScope::Node(ip) => {
                    let cm_nodes = nodes
                        .iter()
                        .find(|n| &n.ip == ip)
                        .map(|n| n.cm_nodes.join(", "))
                        .unwrap_or_default();
                    format!(
                        "on node {ip} (its cm_nodes [{cm_nodes}] differ from the region's other nodes)"
                    )
                }
            };
            let _ = writeln!(out, "      {} init {why}", Symbol::Change.paint(style));
        }
        out.push('\n');
    }
}

fn render_database(out: &mut String, database: &DatabaseChange, style: &Style) {
    let role = match &database.role {
        DatabaseRole::Rm => "rm".to_owned(),
        DatabaseRole::Cm => "cm".to_owned(),
        DatabaseRole::CmHb { region } => format!("cm_hb of {region}"),
    };
    let migrates = database.schema_before != Some(database.schema_after);
    if !database.backup && !migrates {
        let _ = writeln!(
            out,
            "  {} {}: {role}, schema {}\n",
            Symbol::Unchanged.paint(style),
            style.bold(&format!("database {}", database.name)),
            database.schema_after
        );
        return;
    }
    let _ = writeln!(
        out,
        "  {} {} ({role}, {})",
        Symbol::Change.paint(style),
        style.bold(&format!("database {}", database.name)),
        human_bytes(database.size_bytes)
    );
    if database.backup {
        let _ = writeln!(
            out,
            "      {} backup: dumped before any new container starts, checksummed",
            Symbol::Create.paint(style)
        );
    }
    if migrates {
        let _ = writeln!(
            out,
            "      {} schema: {} -> {} (by init)",
            Symbol::Change.paint(style),
            version_or_unknown(database.schema_before),
            database.schema_after
        );
    }
    out.push('\n');
}

fn render_ha(out: &mut String, plan: &UpgradePlan, style: &Style) {
    let Some(ha) = &plan.diff.ha else {
        return;
    };
    if !ha.turn_off && !ha.restore {
        let _ = writeln!(
            out,
            "  {} {}: enable stays {}\n",
            Symbol::Unchanged.paint(style),
            style.bold("ha.config"),
            ha.enable_before
        );
        return;
    }
    let _ = writeln!(
        out,
        "  {} {}",
        Symbol::Change.paint(style),
        style.bold("ha.config")
    );
    let during = if ha.turn_off {
        " -> false during the upgrade"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "      {} enable: {}{during} -> {} after it",
        Symbol::Change.paint(style),
        ha.enable_before,
        ha.enable_after
    );
    if ha.restore && ha.enable_after {
        let _ = writeln!(
            out,
            "      {} refetchStoreIntervalMin: raised above T2 - T1 (in minutes) unless perceiveStoreClientCheckpoint is true",
            Symbol::Change.paint(style)
        );
    }
    out.push('\n');
}

fn render_findings(out: &mut String, plan: &UpgradePlan, style: &Style) {
    if plan.diff.findings.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}", style.bold("Preflight:"));
    let mut findings: Vec<_> = plan.diff.findings.iter().collect();
    // Errors first; otherwise in the order the engine found them.
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for finding in findings {
        let label = match finding.severity {
            Severity::Error => style.red(&format!("error[{}]", finding.code)),
            Severity::Warning => style.yellow(&format!("warning[{}]", finding.code)),
        };
        let _ = writeln!(out, "  {label} {}: {}", finding.subject, finding.message);
        if let Some(hint) = &finding.hint {
            let _ = writeln!(out, "    {} {hint}", style.cyan("hint:"));
        }
    }
    out.push('\n');
}

fn render_steps(out: &mut String, plan: &UpgradePlan, style: &Style) {
    if plan.steps.is_empty() {
        return;
    }
    let lanes = plan.lanes();
    let _ = writeln!(
        out,
        "{} {}",
        style.bold(&format!(
            "Steps ({} in {} lanes; the steps of one lane may run in parallel):",
            plan.steps.len(),
            lanes.len()
        )),
        style.dim(&format!("{DOWNTIME_GUTTER} marks the downtime window"))
    );
    let id_width = plan
        .steps
        .iter()
        .map(|s| s.id.as_str().chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    let lane_width = format!("[lane {}]", lanes.len()).len();
    for (index, steps) in lanes.iter().enumerate() {
        let lane_label = format!("[lane {}]", index + 1);
        for (position, step) in steps.iter().enumerate() {
            let gutter = if step.downtime {
                style.yellow(DOWNTIME_GUTTER)
            } else {
                " ".to_owned()
            };
            let label = if position == 0 {
                lane_label.as_str()
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {gutter} {label:<lane_width$} {:<id_width$}  {}",
                step.id, step.changes
            );
            if !step.depends_on.is_empty() {
                let _ = writeln!(
                    out,
                    "  {gutter} {:<lane_width$} {}",
                    "",
                    style.dim(&format!("  after {}", dependencies(step)))
                );
            }
        }
    }
    if let (Some(first), Some(last)) = (
        plan.steps.iter().find(|s| s.downtime),
        plan.steps.iter().rev().find(|s| s.downtime),
    ) {
        let _ = writeln!(
            out,
            "  {} downtime window: {} steps, from {} to {}",
            style.yellow(DOWNTIME_GUTTER),
            plan.downtime_steps(),
            first.id,
            last.id
        );
    }
    out.push('\n');
}

/// `a, b and c`, or `a, b, c and 4 more`.
fn dependencies(step: &Step) -> String {
    let shown: Vec<&str> = step
        .depends_on
        .iter()
        .take(DEPENDENCIES_SHOWN)
        .map(omsup_engine::StepId::as_str)
        .collect();
    let rest = step.depends_on.len() - shown.len();
    match (shown.as_slice(), rest) {
        ([only], 0) => (*only).to_owned(),
        (shown, 0) => {
            let (last, init) = shown.split_last().expect("at least two");
            format!("{} and {last}", init.join(", "))
        }
        (shown, rest) => format!("{} and {rest} more", shown.join(", ")),
    }
}

fn render_summary(out: &mut String, plan: &UpgradePlan, style: &Style) {
    let errors = plan.blocking_findings().count();
    let line = if plan.steps.is_empty() && errors == 0 {
        format!(
            "No changes. The deployment runs {} everywhere.",
            plan.diff.to
        )
    } else if plan.steps.is_empty() {
        format!(
            "Plan: no steps until the {errors} preflight error{} above {} fixed.",
            if errors == 1 { "" } else { "s" },
            if errors == 1 { "is" } else { "are" }
        )
    } else {
        let nodes = plan.nodes_touched();
        let mut line = format!(
            "Plan: {} steps on {nodes} node{}; downtime window: {} steps",
            plan.steps.len(),
            if nodes == 1 { "" } else { "s" },
            plan.downtime_steps()
        );
        if errors > 0 {
            let _ = write!(
                line,
                " (apply refuses it until the {errors} preflight error{} above {} fixed)",
                if errors == 1 { "" } else { "s" },
                if errors == 1 { "is" } else { "are" }
            );
        }
        line
    };
    let _ = writeln!(out, "{}", style.bold(&line));
}
