//! The image package when it is already on every node (`[image] package_on = "nodes"`): looked
//! at and loaded there, over the node's `ssh://` endpoint, so that a package of gigabytes never
//! crosses the network from the operator's machine again. A `unix://` node is this machine:
//! its package is read and streamed like the operator's.
//!
//! On the node, omsup runs `bash` with a fixed script and the path as an argument (never
//! spliced into the script): `stat` to observe, and `dd status=progress | docker load` to
//! load, whose byte counts on stderr become progress.

use std::path::Path;

use bollard::Docker;
use omsup_engine::observed::ObservedPackage;
use omsup_model::plan::Node;
use omsup_model::{DockerEndpoint, PlanFile};
use tokio::io::AsyncReadExt;

use crate::docker_actions::{self, DockerActionError};
use crate::ssh::SshTarget;

/// Prints the size, then `readable` when it is; exits 3 when there is no such file.
const OBSERVE_SCRIPT: &str = r#"[ -f "$1" ] || exit 3; stat -L -c %s -- "$1" || exit 4; [ -r "$1" ] && echo readable; exit 0"#;

/// Streams the file into the node's `docker load`; fails unless both ends succeeded.
const LOAD_SCRIPT: &str = r#"dd if="$1" bs=4M status=progress | docker load; s=("${PIPESTATUS[@]}"); [ "${s[0]}" = 0 ] && [ "${s[1]}" = 0 ]"#;

/// The SSH login for a node whose endpoint is `ssh://`.
fn ssh_target(node: &Node) -> Option<SshTarget> {
    match node.docker.parse::<DockerEndpoint>().ok()? {
        DockerEndpoint::Ssh { user, host, port } => {
            Some(SshTarget::new(user, host, port, node.ssh.as_ref()))
        }
        _ => None,
    }
}

/// The package on `node`, when the plan says it is on the nodes; `None` otherwise. A node
/// that cannot be asked (no SSH) reports a package that does not exist.
pub async fn observe(plan: &PlanFile, node: &Node) -> Option<ObservedPackage> {
    if plan.image.package_on != omsup_model::plan::PackageLocation::Nodes {
        return None;
    }
    let path = &plan.image.package;
    let missing = ObservedPackage {
        exists: false,
        readable: false,
        size_bytes: 0,
    };
    let Some(target) = ssh_target(node) else {
        let path = path.clone();
        return Some(
            tokio::task::spawn_blocking(move || crate::observe::operator::observe_package(&path))
                .await
                .unwrap_or(missing),
        );
    };
    let Ok(session) = target.session().await else {
        return Some(missing);
    };
    let output = session
        .command("bash")
        .arg("-c")
        .arg(OBSERVE_SCRIPT)
        .arg("omsup")
        .arg(path.display().to_string())
        .output()
        .await;
    let _ = session.close().await;
    let Ok(output) = output else {
        return Some(missing);
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    match (output.status.success(), lines.next().map(str::parse::<u64>)) {
        (true, Some(Ok(size_bytes))) => Some(ObservedPackage {
            exists: true,
            readable: lines.any(|line| line == "readable"),
            size_bytes,
        }),
        _ => Some(missing),
    }
}

/// Loads the package that is on `node` into its daemon (`docker` reaches the same daemon);
/// skips the load when the tag is there. `on_progress` gets the bytes read so far.
pub async fn load(
    plan: &PlanFile,
    node: &Node,
    docker: &Docker,
    on_progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<String, DockerActionError> {
    let path = &plan.image.package;
    let tag = &plan.image.tag;
    let Some(target) = ssh_target(node) else {
        return docker_actions::load_image(docker, path, tag, on_progress).await;
    };
    if let Ok(image) = docker.inspect_image(tag).await {
        return Ok(image.id.unwrap_or_default());
    }
    let on_node = |reason: String| DockerActionError::LoadOnNode {
        path: path.clone(),
        endpoint: target.endpoint(),
        reason,
    };
    let session = target
        .session()
        .await
        .map_err(|error| on_node(with_causes(&error)))?;
    let result = run_load(&session, path, on_progress).await.map_err(on_node);
    let _ = session.close().await;
    result?;
    match docker.inspect_image(tag).await {
        Ok(image) => Ok(image.id.unwrap_or_default()),
        Err(_) => Err(DockerActionError::TagMissingAfterLoad {
            path: path.clone(),
            tag: tag.clone(),
        }),
    }
}

/// Runs [`LOAD_SCRIPT`], turning dd's byte counts into progress; the error is the last lines
/// the node printed.
async fn run_load(
    session: &openssh::Session,
    path: &Path,
    on_progress: impl Fn(u64),
) -> Result<(), String> {
    let mut child = session
        .command("bash")
        .arg("-c")
        .arg(LOAD_SCRIPT)
        .arg("omsup")
        .arg(path.display().to_string())
        .stdin(openssh::Stdio::null())
        .stdout(openssh::Stdio::null())
        .stderr(openssh::Stdio::piped())
        .spawn()
        .await
        .map_err(|error| format!("cannot start `docker load` there: {error}"))?;
    let mut stderr = child.stderr().take().expect("stderr is piped");
    let mut said = String::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stderr
            .read(&mut buffer)
            .await
            .map_err(|error| format!("lost the node's output: {error}"))?;
        if read == 0 {
            break;
        }
        said.push_str(&String::from_utf8_lossy(&buffer[..read]));
        if let Some(bytes) = last_byte_count(&said) {
            on_progress(bytes);
        }
        // Keep only the tail: dd repeats its progress line every second.
        if said.len() > 16 * 1024 {
            said.drain(..said.len() - 4096);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|error| format!("lost `docker load` there: {error}"))?;
    if status.success() {
        return Ok(());
    }
    let tail: Vec<&str> = said
        .split(['\r', '\n'])
        .filter(|line| !line.trim().is_empty() && last_byte_count(line).is_none())
        .collect();
    Err(format!(
        "`docker load` failed there ({status}): {}",
        tail[tail.len().saturating_sub(3)..].join("; ")
    ))
}

/// An error and its sources on one line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The newest `N bytes ... copied` count in dd's output.
fn last_byte_count(text: &str) -> Option<u64> {
    text.rsplit(['\r', '\n']).find_map(|line| {
        let (count, rest) = line.trim().split_once(' ')?;
        rest.starts_with("bytes")
            .then(|| count.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dd_progress_lines_become_byte_counts() {
        let said = "4194304 bytes (4.2 MB, 4.0 MiB) copied, 1 s, 4.2 MB/s\r\
                    12582912 bytes (13 MB, 12 MiB) copied, 2 s, 6.3 MB/s\r";
        assert_eq!(last_byte_count(said), Some(12_582_912));
        let done = "3+1 records in\n3+1 records out\n13869056 bytes (14 MB, 13 MiB) copied, 2.1 s, 6.6 MB/s\n";
        assert_eq!(last_byte_count(done), Some(13_869_056));
        assert_eq!(
            last_byte_count("dd: failed to open 'x': No such file"),
            None
        );
        assert_eq!(last_byte_count(""), None);
    }
}
