//! The omsup engine: diff the observed world against the plan file and derive the step DAG.
//!
//! Pure: no Docker, no SQL, no terminal (ARCHITECTURE.md). Inputs are [`omsup_model::PlanFile`]
//! and [`observed::ObservedWorld`]; outputs are plain data ([`steps::UpgradePlan`]) that the
//! CLI renders and the executors run.

pub mod container;
pub mod diff;
pub mod init;
pub mod observed;
pub mod outputs;
pub mod rollback;
pub mod step;
pub mod steps;
pub mod synthetic;

pub use omsup_model::StepId;
pub use step::{Kind, Step};
pub use steps::{Compensation, FactChange, SavedPlan, StepKind, UpgradePlan, plan};
