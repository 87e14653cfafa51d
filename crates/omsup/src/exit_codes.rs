//! Every exit code omsup uses, in one place (documented in `omsup --help`).

/// Success; for `plan --detailed-exitcode`: nothing to do.
pub const SUCCESS: u8 = 0;
/// An error: findings at error level (`lint`), a failed step, an unreachable service.
pub const FAILURE: u8 = 1;
/// Usage error (bad flags or arguments) or a file that cannot be read (`lint`).
pub const USAGE: u8 = 2;
/// `plan --detailed-exitcode`: the plan has changes (as Terraform users expect).
pub const PLAN_HAS_CHANGES: u8 = 2;
/// Refused before touching anything: stale saved plan, lock held, no confirmation.
pub const REFUSED: u8 = 3;

/// The table shown at the end of `omsup --help`.
pub const HELP_TABLE: &str = "\
Exit codes:
  0  success (plan --detailed-exitcode: no changes)
  1  error: lint findings at error level, a failed step, an unreachable service
  2  usage error or unreadable file (plan --detailed-exitcode: the plan has changes)
  3  refused before touching anything: stale saved plan, lock held, no confirmation";
