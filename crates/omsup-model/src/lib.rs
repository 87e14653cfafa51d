//! The omsup plan model: the plan file's types, versions, durations, Docker endpoints, the
//! upgrade path rules, and the checks `lint` and `plan` share.
//!
//! Pure data and pure checks: this crate knows nothing of Docker, SQL or terminals (see
//! ARCHITECTURE.md). Everything else builds on it.

pub mod duration;
pub mod endpoint;
pub mod findings;
pub mod lint;
pub mod plan;
pub mod step_id;
pub mod upgrade;
pub mod validate;
pub mod version;

pub use duration::HumanDuration;
pub use endpoint::DockerEndpoint;
pub use findings::{FieldPath, Finding, Severity};
pub use plan::PlanFile;
pub use step_id::StepId;
pub use version::OmsVersion;
