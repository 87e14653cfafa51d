//! The upgrade's changes on a node's Docker daemon: load the image package, stop the old
//! container and keep it under another name, create and start the new one exactly as the plan
//! specifies it, wait for readiness by polling, and run the init script through Docker exec.
//!
//! Each action reads the container's state first, so repeating it is harmless; none sleeps
//! blindly: every wait is a poll bounded by a timeout from the plan file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ImportImageOptionsBuilder, LogsOptionsBuilder,
    RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use omsup_engine::container::{ContainerSpec, MissingOldValue};

pub use omsup_engine::container::{LABEL_RUN_ID, LABEL_STEP_ID};
/// The line OMS logs when it has started (obd waits for it too).
pub const READY_LOG_LINE: &str = "OMS service start successfully";
/// The message `docker_init.sh` prints when the old version has no `oms_version` record.
pub const INIT_VERSION_TOO_OLD: &str = "Version before 4.1.1 is not allowed to upgrade";
/// The line a successful `docker_init.sh` ends its log with.
pub const INIT_COMPLETED: &str = "[Completed] All initialization steps are executed";

#[derive(Debug, thiserror::Error)]
pub enum DockerActionError {
    #[error("{what} `{container}`")]
    Docker {
        what: &'static str,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The request never reached the daemon: the container is not the problem, the way to the
    /// node is.
    #[error("{what} `{container}`: the node's Docker daemon was not reached")]
    Unreachable {
        what: &'static str,
        container: String,
        #[source]
        source: crate::link::LinkFailure,
    },
    #[error("cannot read image package `{}`", path.display())]
    Package {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the image package `{}` on the node `{endpoint}`: {reason}", path.display())]
    LoadOnNode {
        path: std::path::PathBuf,
        endpoint: String,
        reason: String,
    },
    #[error("loading `{}` did not yield the tag `{tag}`", path.display())]
    TagMissingAfterLoad {
        path: std::path::PathBuf,
        tag: String,
    },
    #[error(
        "container `{container}` exited before it was ready (exit code {exit_code}); last log lines:\n{log_tail}"
    )]
    ExitedBeforeReady {
        container: String,
        exit_code: i64,
        log_tail: String,
    },
    #[error(
        "container `{container}` was not ready after {waited:?}: the log never said `{READY_LOG_LINE}`"
    )]
    NotReadyInTime { container: String, waited: Duration },
    #[error(
        "`docker_init.sh` in `{container}` did not finish within {timeout:?}; omsup ended it \
         ({ended} processes signalled) so that `omsup resume` runs it again"
    )]
    InitTimedOut {
        container: String,
        timeout: Duration,
        /// How many of the init's processes omsup signalled to end it.
        ended: usize,
    },
    #[error(
        "`docker_init.sh` in `{container}` did not finish within {timeout:?}, and omsup could not \
         end it: {reason}"
    )]
    InitNotEnded {
        container: String,
        timeout: Duration,
        reason: String,
    },
    #[error(
        "a container named `{container}` exists and was not created by this run (its run label is {found})"
    )]
    NotOurs { container: String, found: String },
    #[error("cannot create container `{container}`")]
    OldValueMissing {
        container: String,
        #[source]
        source: MissingOldValue,
    },
    #[error(
        "the supervisor components of `{container}` were not all RUNNING after {waited:?} (`supervisorctl status`: {not_running}); init was not started"
    )]
    ComponentsNotRunning {
        container: String,
        waited: Duration,
        not_running: String,
    },
}

/// The error of a Docker request about `container`: [`DockerActionError::Unreachable`] when it
/// never reached the daemon.
pub fn docker_error(
    what: &'static str,
    container: &str,
) -> impl FnOnce(bollard::errors::Error) -> DockerActionError {
    let container = container.to_owned();
    move |source| match crate::link::link_failure(&source) {
        Some(failure) => DockerActionError::Unreachable {
            what,
            container,
            source: failure,
        },
        None => DockerActionError::Docker {
            what,
            container,
            source,
        },
    }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Streams a `docker save` tarball into the daemon; returns the loaded image's id.
/// Skips the load when the tag is already there. `on_progress` gets bytes sent so far.
pub async fn load_image(
    docker: &Docker,
    package: &Path,
    tag: &str,
    on_progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<String, DockerActionError> {
    if let Ok(image) = docker.inspect_image(tag).await {
        return Ok(image.id.unwrap_or_default());
    }
    let file =
        tokio::fs::File::open(package)
            .await
            .map_err(|source| DockerActionError::Package {
                path: package.to_owned(),
                source,
            })?;
    let mut sent = 0u64;
    let body =
        tokio_util::io::ReaderStream::with_capacity(file, 1024 * 1024).map_ok(move |chunk| {
            sent += chunk.len() as u64;
            on_progress(sent);
            chunk
        });
    let mut responses = docker.import_image_stream(
        ImportImageOptionsBuilder::default().quiet(true).build(),
        body,
        None,
    );
    while let Some(response) = responses.next().await {
        response.map_err(docker_error(
            "cannot load the image package into the daemon for",
            tag,
        ))?;
    }
    match docker.inspect_image(tag).await {
        Ok(image) => Ok(image.id.unwrap_or_default()),
        Err(_) => Err(DockerActionError::TagMissingAfterLoad {
            path: package.to_owned(),
            tag: tag.to_owned(),
        }),
    }
}

/// What stopping found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutcome {
    pub container_id: String,
    /// False when the container was already stopped.
    pub was_running: bool,
    /// When it stopped (now, or when Docker says it finished).
    pub stopped_at: SystemTime,
}

/// Stops `name` (SIGTERM, then SIGKILL after `timeout`), unless it is already stopped.
pub async fn stop_container(
    docker: &Docker,
    name: &str,
    timeout: Duration,
) -> Result<StopOutcome, DockerActionError> {
    let inspect = docker
        .inspect_container(name, None)
        .await
        .map_err(docker_error("cannot inspect container", name))?;
    let container_id = inspect.id.unwrap_or_default();
    let was_running = inspect
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false);
    if was_running {
        let seconds = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        docker
            .stop_container(
                name,
                Some(StopContainerOptionsBuilder::default().t(seconds).build()),
            )
            .await
            .map_err(docker_error("cannot stop container", name))?;
    }
    // Already stopped: when Docker says it finished (the outage began then, not now).
    let finished_at = inspect
        .state
        .as_ref()
        .and_then(|state| state.finished_at.as_deref())
        .and_then(docker_time)
        .filter(|t| t.as_second() > 0)
        .map(SystemTime::from);
    Ok(StopOutcome {
        container_id,
        was_running,
        stopped_at: match finished_at {
            Some(finished) if !was_running => finished.min(SystemTime::now()),
            _ => SystemTime::now(),
        },
    })
}

/// Renames `from` to `to` unless `to` already exists (an earlier attempt did it).
pub async fn rename_container(
    docker: &Docker,
    from: &str,
    to: &str,
) -> Result<(), DockerActionError> {
    if docker.inspect_container(to, None).await.is_ok() {
        return Ok(());
    }
    docker
        .rename_container(
            from,
            RenameContainerOptionsBuilder::default().name(to).build(),
        )
        .await
        .map_err(docker_error("cannot rename container", from))
}

/// The run id a container is labelled with, if omsup created it.
pub fn run_label(container: &bollard::models::ContainerInspectResponse) -> Option<&str> {
    container
        .config
        .as_ref()?
        .labels
        .as_ref()?
        .get(LABEL_RUN_ID)
        .map(String::as_str)
}

/// Creates `spec`'s container, exactly, unless this run already did (a container with the
/// name and this run's label: a resumed step). `old_env` is the old container's environment,
/// as inspected now: the secret-looking values the spec copies from it. Returns its id and
/// whether it was created now. A container with the name that this run did not create is an
/// error, never reused.
pub async fn create_container(
    docker: &Docker,
    spec: &ContainerSpec,
    run_id: &str,
    old_env: &BTreeMap<String, String>,
) -> Result<(String, bool), DockerActionError> {
    if let Ok(existing) = docker.inspect_container(&spec.name, None).await {
        return match run_label(&existing) {
            Some(run) if run == run_id => Ok((existing.id.unwrap_or_default(), false)),
            found => Err(DockerActionError::NotOurs {
                container: spec.name.clone(),
                found: found.map_or_else(|| "absent".to_owned(), |run| format!("`{run}`")),
            }),
        };
    }
    let env = spec
        .create_env(old_env)
        .map_err(|source| DockerActionError::OldValueMissing {
            container: spec.name.clone(),
            source,
        })?;
    let body = crate::docker_spec::create_body(spec, env, spec.create_labels(run_id));
    let created = docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name(&spec.name)
                    .build(),
            ),
            body,
        )
        .await
        .map_err(docker_error("cannot create container", &spec.name))?;
    Ok((created.id, true))
}

/// Sets `name`'s restart policy (`None`: Docker's `no`). The old container kept for rollback
/// gets `no`, or a host reboot would start it next to the new one (same host ports, same
/// store); rollback gives it back the policy it had.
pub async fn set_restart_policy(
    docker: &Docker,
    name: &str,
    policy: Option<&omsup_engine::container::RestartPolicy>,
) -> Result<(), DockerActionError> {
    docker
        .update_container(
            name,
            bollard::models::ContainerUpdateBody {
                restart_policy: Some(crate::docker_spec::restart_policy(policy)),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_error(
            "cannot set the restart policy of container",
            name,
        ))
}

/// Starts `name` unless it is running.
pub async fn start_container(docker: &Docker, name: &str) -> Result<(), DockerActionError> {
    let inspect = docker
        .inspect_container(name, None)
        .await
        .map_err(docker_error("cannot inspect container", name))?;
    if inspect.state.and_then(|s| s.running).unwrap_or(false) {
        return Ok(());
    }
    docker
        .start_container(name, None)
        .await
        .map_err(docker_error("cannot start container", name))
}

/// Removes `name` if it exists (rollback of a new container).
pub async fn remove_container(docker: &Docker, name: &str) -> Result<bool, DockerActionError> {
    match docker.remove_container(name, None).await {
        Ok(()) => Ok(true),
        Err(error) if is_not_found(&error) => Ok(false),
        Err(source) => Err(docker_error("cannot remove container", name)(source)),
    }
}

/// The last `lines` lines of the container's output.
pub async fn log_tail(docker: &Docker, name: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    logs_text(docker, name, options).await
}

async fn logs_text(
    docker: &Docker,
    name: &str,
    options: bollard::query_parameters::LogsOptions,
) -> String {
    let chunks: Vec<_> = docker.logs(name, Some(options)).collect().await;
    chunks
        .into_iter()
        .filter_map(Result::ok)
        .map(|chunk| chunk.to_string())
        .collect()
}

/// The last `lines` lines of the container's output, without those logged before
/// `started_at` (Docker's RFC 3339 UTC timestamp of the container's current start).
async fn log_tail_since_start(
    docker: &Docker,
    name: &str,
    lines: usize,
    started_at: &str,
) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .tail(&lines.to_string())
        .build();
    let text = logs_text(docker, name, options).await;
    let start = docker_time(started_at);
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(stamp, _)| docker_time(stamp) >= start)
        .map(|(_, line)| format!("{line}\n"))
        .collect()
}

/// A timestamp as Docker writes it (RFC 3339, to the nanosecond, trailing zeros of the
/// fraction dropped); `None` when it is not one (Docker's zero time reads as a valid one).
fn docker_time(stamp: &str) -> Option<jiff::Timestamp> {
    stamp.parse().ok()
}

/// Polls until the container's log says [`READY_LOG_LINE`]; fails at once when the container
/// exits (with its last log lines) and when `timeout` passes.
pub async fn wait_ready(
    docker: &Docker,
    name: &str,
    timeout: Duration,
) -> Result<Duration, DockerActionError> {
    wait_ready_inner(docker, name, timeout, false).await
}

/// [`wait_ready`], counting only the log lines written since the container's current start: a
/// container started again (rollback's old container) still has the ready line of its earlier
/// run in its log, and that line must not count. Compares Docker's own timestamps
/// (nanoseconds), since a stop and a restart can fall within one second.
pub async fn wait_ready_after_start(
    docker: &Docker,
    name: &str,
    timeout: Duration,
) -> Result<Duration, DockerActionError> {
    wait_ready_inner(docker, name, timeout, true).await
}

async fn wait_ready_inner(
    docker: &Docker,
    name: &str,
    timeout: Duration,
    since_current_start: bool,
) -> Result<Duration, DockerActionError> {
    let started = Instant::now();
    // Short, capped polls: every poll interval past the ready line is downtime.
    let mut interval = Duration::from_millis(100);
    loop {
        let inspect = docker
            .inspect_container(name, None)
            .await
            .map_err(docker_error("cannot inspect container", name))?;
        let state = inspect.state.unwrap_or_default();
        let logs = match state.started_at.as_deref() {
            Some(started_at) if since_current_start => {
                log_tail_since_start(docker, name, 200, started_at).await
            }
            _ => log_tail(docker, name, 200).await,
        };
        if logs.contains(READY_LOG_LINE) && state.running.unwrap_or(false) {
            return Ok(started.elapsed());
        }
        // A container with a restart policy (kept from the old one) that exits is restarted
        // by Docker: `restarting` (between its attempts, which back off) is the same failure
        // as `exited`.
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        if state.restarting == Some(true) || (!state.running.unwrap_or(false) && status == "exited")
        {
            return Err(DockerActionError::ExitedBeforeReady {
                container: name.to_owned(),
                exit_code: state.exit_code.unwrap_or(-1),
                log_tail: crate::backup::last_lines(&logs, 10),
            });
        }
        if started.elapsed() >= timeout {
            return Err(DockerActionError::NotReadyInTime {
                container: name.to_owned(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 3 / 2).min(Duration::from_millis(400));
    }
}

/// What `docker_init.sh` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    pub exit_code: i64,
    /// Its combined output, at most the last 64 KiB.
    pub output: String,
    pub took: Duration,
}

impl InitOutcome {
    /// Exited 0 *and* its log ends with [`INIT_COMPLETED`], as the runbooks judge it.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && self.completed()
    }

    /// The last line of its output is [`INIT_COMPLETED`].
    pub fn completed(&self) -> bool {
        self.output
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .is_some_and(|line| line.contains(INIT_COMPLETED))
    }

    /// True when init refused because the old version has no (or too old an) `oms_version`.
    pub fn needs_version_remedy(&self) -> bool {
        !self.succeeded() && self.output.contains(INIT_VERSION_TOO_OLD)
    }
}

/// Runs `bash /root/docker_init.sh` in the container and waits for it, up to `timeout`.
pub async fn run_init(
    docker: &Docker,
    container: &str,
    timeout: Duration,
) -> Result<InitOutcome, DockerActionError> {
    let started = Instant::now();
    // An attempt killed mid-init leaves its exec running inside the container (Docker does not
    // stop an exec when its client goes away): wait for that one instead of starting a second
    // migration of the same schemas next to it.
    if let Some(running) = running_init(docker, container).await? {
        return wait_for_exec(docker, container, &running, started, timeout).await;
    }
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec!["bash", "/root/docker_init.sh"]),
                env: Some(vec![INIT_MARKER]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_error("cannot run `docker_init.sh` in", container))?;
    let collect = async {
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(docker_error("cannot run `docker_init.sh` in", container))?
        {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(docker_error(
                    "lost the output of `docker_init.sh` in",
                    container,
                ))?;
                output.push_str(&chunk.to_string());
                if output.len() > 128 * 1024 {
                    let cut = output.len() - 64 * 1024;
                    let cut = (cut..output.len())
                        .find(|i| output.is_char_boundary(*i))
                        .unwrap_or(cut);
                    output.drain(..cut);
                }
            }
        }
        Ok::<_, DockerActionError>(output)
    };
    let output = match tokio::time::timeout(timeout, collect).await {
        Ok(output) => output?,
        Err(_) => return Err(end_init(docker, container, timeout).await),
    };
    let inspect = docker.inspect_exec(&exec.id).await.map_err(docker_error(
        "cannot read the exit code of `docker_init.sh` in",
        container,
    ))?;
    Ok(InitOutcome {
        exit_code: inspect.exit_code.unwrap_or(-1),
        output,
        took: started.elapsed(),
    })
}

/// The id of a `docker_init.sh` exec still running in `container`, if any.
async fn running_init(
    docker: &Docker,
    container: &str,
) -> Result<Option<String>, DockerActionError> {
    let inspect = docker
        .inspect_container(container, None)
        .await
        .map_err(docker_error("cannot inspect container", container))?;
    for id in inspect.exec_ids.unwrap_or_default() {
        let Ok(exec) = docker.inspect_exec(&id).await else {
            continue;
        };
        let is_init = exec.process_config.is_some_and(|p| {
            p.arguments
                .unwrap_or_default()
                .iter()
                .chain(p.entrypoint.iter())
                .any(|a| a.contains("docker_init.sh"))
        });
        if exec.running == Some(true) && is_init {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Polls an exec an earlier attempt started until it ends; its output went to that attempt.
async fn wait_for_exec(
    docker: &Docker,
    container: &str,
    id: &str,
    started: Instant,
    timeout: Duration,
) -> Result<InitOutcome, DockerActionError> {
    loop {
        let exec = docker.inspect_exec(id).await.map_err(docker_error(
            "cannot follow the running `docker_init.sh` in",
            container,
        ))?;
        if exec.running != Some(true) {
            // Its output went to the attempt that started it; its log file has the end.
            return Ok(InitOutcome {
                exit_code: exec.exit_code.unwrap_or(-1),
                output: init_log_tail(docker, container).await?,
                took: started.elapsed(),
            });
        }
        if started.elapsed() >= timeout {
            return Err(end_init(docker, container, timeout).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Set in the environment of every `docker_init.sh` omsup starts; every process the init
/// spawns inherits it, so a second exec can find them all (Docker has no call that ends an
/// exec, and the exec's own pid is only known in the host's pid namespace).
const INIT_MARKER: &str = "OMSUP_INIT_EXEC=1";

/// Signals (`$1`: TERM or KILL) every process in the container whose environment holds
/// [`INIT_MARKER`], and prints how many. POSIX sh, `tr` and `grep`: in OMS images and busybox.
const END_INIT_SCRIPT: &str = r#"n=0
for p in /proc/[0-9]*; do
  if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx 'OMSUP_INIT_EXEC=1'; then
    kill -s "$1" "${p#/proc/}" 2>/dev/null && n=$((n + 1))
  fi
done
echo "$n""#;

/// Ends a timed-out init: SIGTERM to each of its processes, then SIGKILL to what is left
/// after 5 s, and waits until Docker no longer reports an init exec running. Returns the
/// error the step fails with ([`DockerActionError::InitTimedOut`], naming how many processes
/// were signalled, or [`DockerActionError::InitNotEnded`]).
async fn end_init(docker: &Docker, container: &str, timeout: Duration) -> DockerActionError {
    let not_ended = |reason: String| DockerActionError::InitNotEnded {
        container: container.to_owned(),
        timeout,
        reason,
    };
    let mut ended = 0;
    for signal in ["TERM", "KILL"] {
        match signal_init(docker, container, signal).await {
            Ok(count) => ended = ended.max(count),
            Err(error) => return not_ended(error.to_string()),
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match running_init(docker, container).await {
                Ok(None) => {
                    return DockerActionError::InitTimedOut {
                        container: container.to_owned(),
                        timeout,
                        ended,
                    };
                }
                Ok(Some(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(Some(_)) => break,
                Err(error) => return not_ended(error.to_string()),
            }
        }
    }
    not_ended("it was still running 5 s after SIGKILL".to_owned())
}

/// Runs [`END_INIT_SCRIPT`] with `signal` in `container`; returns how many processes it signalled.
async fn signal_init(
    docker: &Docker,
    container: &str,
    signal: &str,
) -> Result<usize, DockerActionError> {
    let (_, output) = exec_text(
        docker,
        container,
        vec!["sh", "-c", END_INIT_SCRIPT, "omsup-end-init", signal],
        "cannot end `docker_init.sh` in",
    )
    .await?;
    Ok(output.trim().parse().unwrap_or(0))
}

/// Runs `cmd` in `container` and returns its exit code and combined output (short commands
/// only: the output is held in memory). `what` names the action in an error.
async fn exec_text(
    docker: &Docker,
    container: &str,
    cmd: Vec<&str>,
    what: &'static str,
) -> Result<(i64, String), DockerActionError> {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(docker_error(what, container))?;
    let mut output = String::new();
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = docker
        .start_exec(&exec.id, None)
        .await
        .map_err(docker_error(what, container))?
    {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(docker_error(what, container))?;
            output.push_str(&chunk.to_string());
        }
    }
    let inspect = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(docker_error(what, container))?;
    Ok((inspect.exit_code.unwrap_or(-1), output))
}

/// The supervisor components `supervisorctl status` lists that are not RUNNING, as
/// `name STATE` (empty when all run), or `None` when the container has no `supervisorctl`.
pub async fn components_not_running(
    docker: &Docker,
    container: &str,
) -> Result<Option<Vec<String>>, DockerActionError> {
    let (code, output) = exec_text(
        docker,
        container,
        vec!["supervisorctl", "status"],
        "cannot run `supervisorctl status` in",
    )
    .await?;
    // 126/127: the shell found no `supervisorctl`; Docker's own "executable file not found"
    // fails the exec with 126/127 as well.
    if matches!(code, 126 | 127) {
        return Ok(None);
    }
    let mut not_running = Vec::new();
    let mut listed = 0;
    for line in output.lines() {
        let mut words = line.split_whitespace();
        let (Some(component), Some(state)) = (words.next(), words.next()) else {
            continue;
        };
        if component.contains("://") {
            // `unix:///tmp/supervisor.sock no such file`: supervisord is not up yet.
            not_running.push(line.trim().to_owned());
            continue;
        }
        listed += 1;
        if state != "RUNNING" {
            not_running.push(format!("{component} {state}"));
        }
    }
    if listed == 0 && not_running.is_empty() {
        not_running.push("`supervisorctl status` listed no component".to_owned());
    }
    Ok(Some(not_running))
}

/// Polls `supervisorctl status` until every component is RUNNING (what the upgrade guides
/// wait for before `docker_init.sh`), at 100 ms growing to 400 ms, for at most `timeout`.
/// A container without `supervisorctl` is not waited for (logged). Returns how long it waited.
pub async fn wait_components_running(
    docker: &Docker,
    container: &str,
    timeout: Duration,
) -> Result<Duration, DockerActionError> {
    let started = Instant::now();
    let mut interval = Duration::from_millis(100);
    loop {
        let not_running = match components_not_running(docker, container).await? {
            None => {
                tracing::warn!(
                    container,
                    "no `supervisorctl` in the container: init runs without waiting for its components"
                );
                return Ok(started.elapsed());
            }
            Some(not_running) => not_running,
        };
        if not_running.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            return Err(DockerActionError::ComponentsNotRunning {
                container: container.to_owned(),
                waited: started.elapsed(),
                not_running: not_running.join(", "),
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 3 / 2).min(Duration::from_millis(400));
    }
}

/// The last lines of the newest `/home/admin/logs/docker_init*.log` in `container` (for an
/// init whose output went to an earlier attempt).
async fn init_log_tail(docker: &Docker, container: &str) -> Result<String, DockerActionError> {
    let (_, output) = exec_text(
        docker,
        container,
        vec![
            "sh",
            "-c",
            "tail -n 20 \"$(ls -t /home/admin/logs/docker_init*.log | head -n 1)\"",
        ],
        "cannot read the init log in",
    )
    .await?;
    Ok(output)
}

/// Connects to every node's Docker daemon; the error names the node.
pub async fn connect_dockers(
    plan_file: &omsup_model::PlanFile,
) -> Result<BTreeMap<String, Docker>, String> {
    let mut dockers = BTreeMap::new();
    for (_, node) in plan_file.nodes() {
        let docker =
            connect_node_docker(node, &plan_file.timeouts, &format!("node {}", node.ip)).await?;
        dockers.insert(node.ip.clone(), docker);
    }
    Ok(dockers)
}

/// Connects to `node`'s daemon (its endpoint, TLS and SSH files) for actions; the error names
/// it as `what` (`node 10.0.0.2`, `the rehearsal host`).
pub async fn connect_node_docker(
    node: &omsup_model::plan::Node,
    timeouts: &omsup_model::plan::Timeouts,
    what: &str,
) -> Result<Docker, String> {
    let endpoint: omsup_model::endpoint::DockerEndpoint =
        node.docker
            .parse()
            .map_err(|e: omsup_model::endpoint::EndpointParseError| {
                format!("{what}: `docker = {:?}`: {e}", node.docker)
            })?;
    let docker = crate::observe::connect_docker(&endpoint, node)
        .await
        .map_err(|cause| {
            let failure = crate::link::connect_failure(&cause, &endpoint);
            format!(
                "cannot reach the Docker daemon of {what} at `{}`: {failure}",
                node.docker
            )
        })?;
    Ok(docker.with_timeout(action_request_timeout(timeouts)))
}

/// How long one Docker request of an action may take. Observation uses short request
/// timeouts; actions wait on the daemon for as long as the plan allows (a stop answers only
/// when the container has stopped, an image load when the package is in), so their requests
/// are bounded by the plan's longest timeout plus a margin, and at least half an hour for
/// image loads of several GiB.
pub fn action_request_timeout(timeouts: &omsup_model::plan::Timeouts) -> std::time::Duration {
    let longest = [
        timeouts.stop,
        timeouts.readiness,
        timeouts.init,
        timeouts.online,
    ]
    .iter()
    .map(|t| t.as_duration())
    .max()
    .unwrap_or_default();
    (longest + std::time::Duration::from_secs(60)).max(std::time::Duration::from_secs(1800))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_timestamps_sort_by_time_whatever_their_fraction_length() {
        let start = docker_time("2026-11-25T09:45:25.26897Z");
        assert!(start.is_some());
        assert!(docker_time("2026-11-25T09:45:25.2689Z") < start);
        assert!(docker_time("2026-11-25T09:45:25.268970001Z") > start);
        assert!(docker_time("2026-11-25T09:45:25.3Z") > start);
        assert!(docker_time("2026-11-25T09:45:25Z") < start);
        assert_eq!(docker_time("2026-11-25T09:45:25.26897Z"), start);
    }

    #[test]
    fn init_outcome_recognises_the_version_refusal() {
        let refused = InitOutcome {
            exit_code: 1,
            output: format!("x\n{INIT_VERSION_TOO_OLD}\n"),
            took: Duration::ZERO,
        };
        assert!(refused.needs_version_remedy());
        let other = InitOutcome {
            exit_code: 1,
            output: "disk full".into(),
            took: Duration::ZERO,
        };
        assert!(!other.needs_version_remedy());
    }

    #[test]
    fn init_succeeds_only_when_it_exits_0_and_its_log_ends_with_the_completed_line() {
        let outcome = |exit_code, output: &str| InitOutcome {
            exit_code,
            output: output.to_owned(),
            took: Duration::ZERO,
        };
        assert!(outcome(0, &format!("[Step 3] ok\n{INIT_COMPLETED}\n\n")).succeeded());
        assert!(!outcome(0, "[Step 3] creating resource tags\n").succeeded());
        assert!(!outcome(0, &format!("{INIT_COMPLETED}\n[ERROR] late failure\n")).succeeded());
        assert!(!outcome(1, &format!("{INIT_COMPLETED}\n")).succeeded());
    }
}
