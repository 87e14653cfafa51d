//! Synthetic plan files and observed worlds (the engine's own `synthetic` module), parsed.

pub use omsup_engine::synthetic::{container, node_mut, world};
use omsup_model::PlanFile;

/// A plan with `regions` regions of `nodes` nodes each, 4.2.9 target.
pub fn plan(regions: usize, nodes: usize) -> PlanFile {
    toml::from_str(&omsup_engine::synthetic::plan_toml(regions, nodes)).expect("a valid plan")
}
