//! Ctrl-C and SIGTERM during `apply`, `resume` and `rollback`, as Terraform handles them: the
//! first signal stops the scheduling of new steps while the running ones finish (each bounded
//! by its own timeout) and are journaled; the command then releases the lock and exits with
//! [`exit_codes::INTERRUPTED`], saying what was done and the command that continues. A second
//! SIGINT stops the process at once ([`exit_codes::INTERRUPTED_AT_ONCE`]): the journal keeps
//! every intent, so `resume` closes the steps left in flight and runs them again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{SignalKind, signal};

use crate::exit_codes;
use crate::progress::{ProgressSink, note};
use crate::report::CliError;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static LISTENING: AtomicBool = AtomicBool::new(false);
/// The run's progress sink once the run started ([`install`]); before it, nothing has changed.
static RUN_SINK: Mutex<Option<Arc<dyn ProgressSink>>> = Mutex::new(None);

/// True once SIGINT or SIGTERM arrived: start no new step.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The error a command returns when a signal arrived before its run began (while planning or
/// at the question): nothing was changed, and the caller releases the lock as on any error.
pub fn stopped_before_the_run() -> CliError {
    CliError::new("interrupted before the run began: nothing was changed")
        .with_hint("the lock is released; run the command again when ready")
        .with_exit_code(exit_codes::INTERRUPTED)
}

/// `Err` when a signal arrived: call between the lock and the run's first step.
pub fn check_before_the_run() -> Result<(), CliError> {
    if requested() {
        Err(stopped_before_the_run())
    } else {
        Ok(())
    }
}

/// From the lock on: SIGINT and SIGTERM no longer kill omsup (which would leave the lock
/// behind); the command stops at its next check ([`check_before_the_run`], the question) with
/// nothing changed. Call inside the runtime; calling it again does nothing.
pub fn listen() {
    if LISTENING.swap(true, Ordering::SeqCst) {
        return;
    }
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
            REQUESTED.store(true, Ordering::SeqCst);
            let sink = RUN_SINK.lock().expect("sink lock").clone();
            let Some(progress) = sink else {
                // Before the run: the command stops at its next check (or its question).
                if interrupts == 1 {
                    eprintln!(
                        "\n{name} received: stopping before anything is changed. Press Ctrl-C \
                         again to stop at once."
                    );
                    continue;
                }
                eprintln!(
                    "{name} again: stopping at once. Nothing was changed; if `omsup status` \
                     still shows this command's lock, `--force-unlock` with its id takes it."
                );
                std::process::exit(i32::from(exit_codes::INTERRUPTED_AT_ONCE));
            };
            if interrupts == 1 {
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

/// The run begins: what the signals say goes to `progress` as notes (see the module doc).
pub fn install(progress: Arc<dyn ProgressSink>) {
    *RUN_SINK.lock().expect("sink lock") = Some(progress);
    listen();
}
