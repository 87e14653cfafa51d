//! The test world: real services (MariaDB, one host per node with its own Docker daemon, SSH and
//! TLS endpoints), the OMS simulator's
//! images, and deployed OMS worlds, for omsup's tests, the demo and the benchmarks.
//!
//! Nothing here is a mock: a world is simulator containers on real daemons writing into a
//! real MariaDB. Tests that need it fail loudly (see [`Error::ServicesMissing`]) when the
//! services are not running, with the command that starts them.

pub mod hosts;
pub mod services;
pub mod world;

pub use world::{ConfigStyle, OperatorSettings, RegionSpec, World, WorldNode, WorldSpec};

/// What can go wrong bringing the test world up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the test services are not running: {0}\nhint: run `cargo xtask services` (and `cargo xtask sim-images`)"
    )]
    ServicesMissing(String),
    #[error(
        "{what} failed\ncaused by: {log_tail}\nhint: fix the cause shown above, then run `cargo xtask services` again"
    )]
    ServiceFailed { what: String, log_tail: String },
    #[error("{what}")]
    Docker {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{what}")]
    Sql {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("init failed on node {node}:\n{output}")]
    Init { node: String, output: String },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("cannot seed the world: {0}")]
    Seed(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: String, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
