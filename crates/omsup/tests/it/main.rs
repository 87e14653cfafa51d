//! The `omsup` binary, run for real: what users see on stdout and stderr, and the exit codes.

mod apply;
mod apply_scenarios;
mod journal;
mod lint;
mod plan;
mod rollback;
mod support;
