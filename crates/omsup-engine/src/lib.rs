//! The omsup engine: diff the observed world against the plan file and derive the step DAG.
//!
//! Pure: no Docker, no SQL, no terminal (ARCHITECTURE.md). Inputs are [`omsup_model::PlanFile`]
//! and [`observed::ObservedWorld`]; outputs are plain data ([`steps::UpgradePlan`]) that the
//! CLI renders and the executors run.

pub mod diff;
pub mod observed;
pub mod rollback;
pub mod steps;
pub mod synthetic;

pub use steps::{Compensation, FactChange, SavedPlan, Step, StepKind, UpgradePlan, plan};
