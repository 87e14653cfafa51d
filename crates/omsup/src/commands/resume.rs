//! `omsup resume`: continue the deployment's unfinished run, an apply
//! ([`crate::commands::apply::resume_apply`]) or a rollback
//! ([`crate::commands::rollback::resume_rollback`]), under the deployment lock.
//!
//! Exit codes: 0 done (or nothing to resume), 1 a step failed, 3 refused before touching
//! anything (lock held, no confirmation, a changed plan file, a run journaled by another
//! release).

use std::sync::Arc;

use omsup_journal::{LockPurpose, RunKind, RunOutcome};

use crate::cli::ResumeArgs;
use crate::commands::common::{journal_error, open_existing_journal, runtime};
use crate::commands::{apply, rollback};
use crate::exit_codes;
use crate::progress::{ProgressSink, note, sink};
use crate::report::CliError;
use crate::run::{release, take_lock};
use crate::style::Style;

/// `omsup resume`
pub fn run_resume(args: &ResumeArgs, style: &Style) -> Result<u8, CliError> {
    runtime()?.block_on(resume(args, style))
}

async fn resume(args: &ResumeArgs, style: &Style) -> Result<u8, CliError> {
    let journal =
        open_existing_journal(args.file.as_deref(), args.state.state_dir.as_deref()).await?;
    let progress: Arc<dyn ProgressSink> = Arc::from(sink(args.format, style));
    let Some(run) = journal.unfinished_run().await.map_err(journal_error)? else {
        note(
            progress.as_ref(),
            format!(
                "Nothing to resume: the last run of deployment `{}` finished.",
                journal.deployment()
            ),
        );
        return Ok(exit_codes::SUCCESS);
    };
    let lock = take_lock(
        &journal,
        run.info.run_id.clone(),
        LockPurpose::Resume,
        args.force_unlock.as_deref(),
    )
    .await?;
    // Read again under the lock: the holder may have finished it in between.
    let outcome = match journal.run(&run.info.run_id).await.map_err(journal_error) {
        Ok(run) if run.info.outcome == RunOutcome::Succeeded => {
            note(
                progress.as_ref(),
                format!(
                    "Nothing to resume: run `{}` finished meanwhile.",
                    run.info.run_id
                ),
            );
            Ok(exit_codes::SUCCESS)
        }
        Ok(run) if run.info.kind == RunKind::Apply => {
            apply::resume_apply(args, style, &journal, &lock, run, progress).await
        }
        Ok(run) => rollback::resume_rollback(args, style, &journal, &lock, run, progress).await,
        Err(error) => Err(error),
    };
    release(lock).await;
    outcome
}
