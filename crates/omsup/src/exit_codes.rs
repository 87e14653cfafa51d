//! Every exit code omsup uses, in one place (documented in `omsup --help`, in each command's
//! `--help` and in the README).
//!
//! `plan --detailed-exitcode` keeps Terraform's meaning of 2 (the plan has changes), so a usage
//! error gets a code of its own: 64, sysexits' `EX_USAGE`. A script can tell a typo from a
//! pending upgrade.

/// Success; for `plan --detailed-exitcode`: nothing to do.
pub const SUCCESS: u8 = 0;
/// An error: findings at error level (`lint`), a failed step, an unreachable service.
pub const FAILURE: u8 = 1;
/// `plan --detailed-exitcode`: the plan has changes (as Terraform users expect).
pub const PLAN_HAS_CHANGES: u8 = 2;
/// Refused before touching anything: stale saved plan, lock held, no confirmation.
pub const REFUSED: u8 = 3;
/// Interrupted (SIGINT or SIGTERM): no new step was started, the running ones finished and
/// were journaled, the lock was released; `omsup resume` continues.
pub const INTERRUPTED: u8 = 4;
/// Usage error (bad flags or arguments) or a file that cannot be read (sysexits' `EX_USAGE`).
pub const USAGE: u8 = 64;
/// Stopped at once by a second SIGINT: steps may be left in flight (the journal keeps them,
/// `omsup resume` closes and runs them again); 128 + SIGINT, as shells report it.
pub const INTERRUPTED_AT_ONCE: u8 = 130;

/// One line of an exit-code table: the code and what it means for one command.
pub type Meaning = (u8, &'static str);

pub const SUCCESS_LINE: Meaning = (SUCCESS, "success");
pub const USAGE_LINE: Meaning = (
    USAGE,
    "usage error (bad flags or arguments) or a file that cannot be read",
);
pub const REFUSED_LINE: Meaning = (
    REFUSED,
    "refused before touching anything: stale saved plan, lock held, unfinished run, no confirmation, a changed plan file on resume",
);

pub const INTERRUPTED_LINE: Meaning = (
    INTERRUPTED,
    "interrupted (Ctrl-C, SIGTERM): running steps finished and were journaled, the lock released; `omsup resume` continues",
);
pub const INTERRUPTED_AT_ONCE_LINE: Meaning = (
    INTERRUPTED_AT_ONCE,
    "stopped at once by a second Ctrl-C; `omsup resume` continues",
);

/// The table shown at the end of `omsup --help`.
pub const ROOT: &[Meaning] = &[
    (SUCCESS, "success (plan --detailed-exitcode: no changes)"),
    (
        FAILURE,
        "error: lint findings at error level, a failed step, an unreachable service",
    ),
    (
        PLAN_HAS_CHANGES,
        "plan --detailed-exitcode: the plan has changes",
    ),
    REFUSED_LINE,
    INTERRUPTED_LINE,
    USAGE_LINE,
    INTERRUPTED_AT_ONCE_LINE,
];

/// `Exit codes:` and one indented line per code, for a `--help` text.
pub fn help_table(codes: &[Meaning]) -> String {
    let mut text = String::from("Exit codes:");
    for (code, meaning) in codes {
        text.push_str(&format!("\n  {code:<3} {meaning}"));
    }
    text
}
