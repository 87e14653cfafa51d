//! The `omsup` binary, run for real: what users see on stdout and stderr, and the exit codes.

mod lint;
mod plan;
mod support;
