//! The executors against the real test world (Docker daemons, MariaDB, simulator images).
//! Needs `cargo xtask services` and `cargo xtask sim-images`; fails loudly without them.

mod apply;
mod health;
mod rollback;
