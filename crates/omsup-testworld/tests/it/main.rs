//! The simulator's contract and the services' promises, checked against real Docker daemons
//! and a real MariaDB.
//!
//! Each test deploys a world of its own (unique databases, container name and IPs), so the
//! tests run in parallel. They need `cargo xtask services` and `cargo xtask sim-images`, and
//! fail with that hint when either is missing.

mod contract;
mod services;
