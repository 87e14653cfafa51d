//! Observers ([`observe`]) and step executors: everything that touches the real world (Docker daemons
//! through bollard, the meta database through sqlx, the dump and restore clients).
//!
//! Knows nothing of clap or terminals (ARCHITECTURE.md).

pub mod apply;
pub mod backup;
pub mod docker_actions;
pub mod docker_spec;
pub mod executor;
pub mod health;
pub mod link;
pub mod meta_actions;
pub mod node_package;
pub mod observe;
pub mod rehearsal;
pub mod scheduler;
pub mod secrets;
pub mod ssh;
pub mod time;
pub mod undo;
