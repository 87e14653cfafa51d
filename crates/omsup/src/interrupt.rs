//! Ctrl-C and SIGTERM during `apply`, `resume` and `rollback`, as Terraform handles them: the
//! first signal stops the scheduling of new steps while the running ones finish (each bounded
//! by its own timeout) and are journaled; the command then releases the lock and exits with
//! [`exit_codes::INTERRUPTED`], saying what was done and the command that continues. A second
//! SIGINT stops the process at once ([`exit_codes::INTERRUPTED_AT_ONCE`]): the journal keeps
//! every intent, so `resume` closes the steps left in flight and runs them again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};

use crate::exit_codes;
use crate::progress::{ProgressSink, note};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// True once SIGINT or SIGTERM arrived: start no new step.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Listens for SIGINT and SIGTERM for the rest of the process (call inside the runtime, once
/// the command is about to change something). Replaces the default action (death). What it
/// says goes to `progress` as notes.
pub fn install(progress: Arc<dyn ProgressSink>) {
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for SIGINT/SIGTERM: Ctrl-C will stop omsup at once");
        return;
    };
    tokio::spawn(async move {
        let mut interrupts = 0;
        loop {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            interrupts += 1;
            if interrupts == 1 {
                REQUESTED.store(true, Ordering::SeqCst);
                note(
                    progress.as_ref(),
                    format!(
                        "{name} received: starting no new step; the running steps finish (each \
                         within its timeout) and are journaled. Press Ctrl-C again to stop at once."
                    ),
                );
            } else {
                note(
                    progress.as_ref(),
                    format!(
                        "{name} again: stopping at once. The journal keeps the run: `omsup resume` \
                         continues it (steps cut off now run again)."
                    ),
                );
                progress.finish();
                std::process::exit(i32::from(exit_codes::INTERRUPTED_AT_ONCE));
            }
        }
    });
}
