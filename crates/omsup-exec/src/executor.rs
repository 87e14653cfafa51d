//! The one interface the runner drives forward and undo steps through ([`Executor`],
//! implemented by [`crate::apply::ApplyContext`] and [`crate::undo::UndoContext`]), and why a
//! step fails ([`StepError`]: typed, with its causes and a hint, until the CLI renders it).

use std::future::Future;

use omsup_engine::outputs::Capture;
use omsup_engine::{Kind, Step, StepId};

use crate::{backup, docker_actions, meta_actions};

/// Runs the steps of one kind against the world.
pub trait Executor {
    type Kind: Kind;

    /// Reads, without changing anything, what the step must remember from before it acts
    /// (journaled with its intent, and handed to every later attempt); `None` when nothing.
    fn capture(
        &self,
        step: &Step<Self::Kind>,
    ) -> impl Future<Output = Result<Option<Capture>, StepError>>;

    /// Runs the step (observe, act, verify) and records its output for later steps.
    /// `captured` is what [`Executor::capture`] returned before the step's first attempt.
    fn execute(
        &self,
        step: &Step<Self::Kind>,
        captured: Option<&Capture>,
    ) -> impl Future<Output = Result<<Self::Kind as Kind>::Output, StepError>>;

    /// Records the output of a step an earlier attempt finished (resume).
    fn record(&self, id: StepId, output: <Self::Kind as Kind>::Output);
}

/// Why a step failed. Carries no secret.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("step `{step}` failed")]
    Docker {
        step: StepId,
        #[source]
        source: Box<docker_actions::DockerActionError>,
    },
    #[error("step `{step}` failed")]
    Meta {
        step: StepId,
        #[source]
        source: meta_actions::MetaActionError,
    },
    #[error("step `{step}` failed")]
    Backup {
        step: StepId,
        #[source]
        source: Box<backup::BackupError>,
    },
    #[error("step `{step}` failed: {failure}")]
    Failed { step: StepId, failure: Failure },
}

/// What went wrong in a step when no lower-level error says it.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Other(String),
    #[error(
        "`docker_init.sh` in `{container}` on node {node} exited with {exit_code}; its last lines:\n{tail}"
    )]
    InitFailed {
        container: String,
        node: String,
        exit_code: i64,
        tail: String,
    },
    #[error(
        "`docker_init.sh` in `{container}` on node {node} exited 0, but its log does not end with `{}`: the initialization did not finish; its last lines:\n{tail}",
        crate::docker_actions::INIT_COMPLETED
    )]
    InitIncomplete {
        container: String,
        node: String,
        tail: String,
    },
    #[error("the old container of node {node} ({container}) is gone: nothing to start")]
    OldContainerGone { node: String, container: String },
    #[error("cannot check the health of node {node}: {detail}")]
    HealthSetup { node: String, detail: String },
    #[error(
        "refusing to restore `{database}`: the OMS container `{container}` on node {node} is running and writes to the meta databases"
    )]
    RestoreUnderLiveOms {
        database: String,
        container: String,
        node: String,
    },
}

impl StepError {
    pub fn other(step: &StepId, message: impl Into<String>) -> Self {
        Self::Failed {
            step: step.clone(),
            failure: Failure::Other(message.into()),
        }
    }

    pub fn failed(step: &StepId, failure: Failure) -> Self {
        Self::Failed {
            step: step.clone(),
            failure,
        }
    }

    pub fn docker(step: &StepId) -> impl Fn(docker_actions::DockerActionError) -> Self {
        let step = step.clone();
        move |source| Self::Docker {
            step: step.clone(),
            source: Box::new(source),
        }
    }

    pub fn meta(step: &StepId) -> impl Fn(meta_actions::MetaActionError) -> Self {
        let step = step.clone();
        move |source| Self::Meta {
            step: step.clone(),
            source,
        }
    }

    pub fn backup(step: &StepId) -> impl Fn(backup::BackupError) -> Self {
        let step = step.clone();
        move |source| Self::Backup {
            step: step.clone(),
            source: Box::new(source),
        }
    }

    /// The step that failed.
    pub fn step(&self) -> &StepId {
        match self {
            Self::Docker { step, .. }
            | Self::Meta { step, .. }
            | Self::Backup { step, .. }
            | Self::Failed { step, .. } => step,
        }
    }

    /// What the operator can do about it, when the failure knows better than "fix the cause,
    /// then resume".
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Failed {
                failure: Failure::InitFailed { .. } | Failure::InitIncomplete { .. },
                ..
            } => Some(
                "read /home/admin/logs/docker_init.log on the node, fix the cause, then `omsup resume` (or `omsup rollback`)",
            ),
            Self::Failed {
                failure: Failure::OldContainerGone { .. },
                ..
            } => Some("recreate it by hand from the backup's version, or run `omsup apply` again"),
            Self::Failed {
                failure: Failure::RestoreUnderLiveOms { .. },
                ..
            } => Some("stop it first, then `omsup resume`"),
            Self::Failed {
                failure: Failure::HealthSetup { .. },
                ..
            } => Some(
                "the node's container mounts an HTTPS certificate at /etc/pki/nginx/oms_server.crt, so its health is checked over HTTPS: check the certificate, or say how to trust it in the plan's `[health]` (`tls_verify`, `ca_file`), then `omsup resume`",
            ),
            _ => None,
        }
    }
}
