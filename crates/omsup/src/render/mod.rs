//! Renderers of an [`omsup_engine::UpgradePlan`]: human text, versioned JSON, and DOT.
//!
//! The engine's plan is plain data; everything about how it looks lives here (the only crate
//! that knows terminals). Each renderer returns a `String` and never prints, so snapshot tests
//! pin the exact output. Colour comes only from [`crate::style::Style`] (off with `NO_COLOR`,
//! off when not a terminal).
//!
//! - [`human::render_plan_human`]: grouped by node, region, database and HA, Terraform-like
//!   symbols, unified diffs of each container, the steps by lane with the downtime window, the
//!   preflight findings and the summary line.
//! - [`json::render_plan_json`]: `--format json`, a versioned output type documented in
//!   [`json`] (never the engine's internal types).
//! - [`dot::render_dot`]: `omsup graph`, the DAG as Graphviz DOT.
//! - [`timeline::render_timeline_html`]: `omsup report`, one journaled run as a self-contained
//!   HTML page (the only renderer of a run rather than a plan).

pub mod dot;
pub mod human;
pub mod json;
pub mod timeline;

pub use dot::render_dot;
pub use human::render_plan_human;
pub use json::{PlanOutput, render_plan_json};

#[cfg(test)]
mod tests;
