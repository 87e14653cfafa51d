//! Free space on a node's Docker data root, as far as the Docker API shows it: `docker info`
//! names the data root but not its free space, so the running OMS container is asked (`df -Pk /`
//! in it: its root file system is an overlay on the data root, and `df` reports the file
//! system beneath). An exec reads; it changes nothing.

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::READ_TIMEOUT;

/// Free bytes under the data root, or `None` when the container cannot be asked.
pub(crate) async fn data_root_free_bytes(docker: &Docker, container: &str) -> Option<u64> {
    let ask = async {
        let exec = docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(vec!["df", "-Pk", "/"]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(false),
                    ..Default::default()
                },
            )
            .await
            .ok()?;
        let mut output = String::new();
        if let Ok(StartExecResults::Attached {
            output: mut stream, ..
        }) = docker.start_exec(&exec.id, None).await
        {
            while let Some(Ok(chunk)) = stream.next().await {
                output.push_str(&chunk.to_string());
            }
        }
        available_bytes(&output)
    };
    tokio::time::timeout(READ_TIMEOUT, ask).await.ok().flatten()
}

/// The `Available` column (1 KiB blocks) of `df -Pk`'s one file system, in bytes.
fn available_bytes(df: &str) -> Option<u64> {
    let line = df.lines().nth(1)?;
    let blocks: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(blocks.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_available_column_of_posix_df() {
        let df = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n\
                  overlay          102626232  52345678  45000000      54% /\n";
        assert_eq!(available_bytes(df), Some(45_000_000 * 1024));
        assert_eq!(available_bytes("df: not found\n"), None);
        assert_eq!(available_bytes(""), None);
    }
}
