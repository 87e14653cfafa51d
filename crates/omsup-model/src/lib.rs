//! The omsup plan model: the plan file's types, versions, durations and Docker endpoints.
//!
//! Pure data and pure checks: this crate knows nothing of Docker, SQL or terminals (see
//! ARCHITECTURE.md). Everything else builds on it.

pub mod duration;
pub mod endpoint;
pub mod plan;
pub mod version;

pub use duration::HumanDuration;
pub use endpoint::DockerEndpoint;
pub use plan::PlanFile;
pub use version::OmsVersion;
