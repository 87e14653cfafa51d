//! The `omsup` binary, run for real: what users see on stdout and stderr, and the exit codes.

mod apply;
mod apply_scenarios;
mod cli;
mod init;
mod interrupt;
mod journal;
mod lint;
mod new_container;
mod plan;
mod random_kill;
mod records;
mod rehearse;
mod report;
mod rollback;
mod shared_state;
mod support;
mod transports;
