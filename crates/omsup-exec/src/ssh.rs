//! Docker over SSH: one `ssh` master per connection (openssh), and on it `docker system
//! dial-stdio`, which speaks the Docker API to the daemon the node's `DOCKER_HOST` names.
//!
//! Our own connector rather than bollard's: bollard hands `user@host:port` to ssh as the
//! destination, so an endpoint with a port (`ssh://root@10.0.0.2:2222`) failed with "Could not
//! resolve hostname 10.0.0.2:2222". Here the user and the port go to ssh as options, and the
//! node's `ssh` files (identity, known hosts) from the plan are honoured.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bollard::{BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use omsup_model::plan::SshFiles;

/// How long ssh may take to open the TCP connection to the node.
const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive probes: a cut link is noticed after three unanswered ones.
const SSH_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Where and how ssh logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

impl SshTarget {
    pub fn new(
        user: Option<String>,
        host: String,
        port: Option<u16>,
        files: Option<&SshFiles>,
    ) -> Self {
        Self {
            user,
            host,
            port,
            identity: files.and_then(|f| f.identity.clone()),
            known_hosts: files.and_then(|f| f.known_hosts.clone()),
        }
    }

    /// The endpoint as the plan spells it, for messages.
    pub fn endpoint(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("ssh://{user}{}{port}", self.host)
    }

    /// A session on the node for omsup's own commands (the image package's `stat` and
    /// `docker load`); close it when done.
    pub async fn session(&self) -> Result<openssh::Session, SshConnectError> {
        let master = self
            .builder()
            .launch_master(&self.host)
            .await
            .map_err(|source| SshConnectError::Login {
                endpoint: self.endpoint(),
                source,
            })?;
        Ok(openssh::Session::new_process_mux(master))
    }

    /// The session options: user and port as ssh options, never inside the destination;
    /// batch mode (never a prompt); with a known-hosts file, strict host key checking.
    fn builder(&self) -> openssh::SessionBuilder {
        let mut builder = openssh::SessionBuilder::default();
        if let Some(user) = &self.user {
            builder.user(user.clone());
        }
        if let Some(port) = self.port {
            builder.port(port);
        }
        if let Some(identity) = &self.identity {
            builder.keyfile(identity);
        }
        if let Some(known_hosts) = &self.known_hosts {
            builder
                .user_known_hosts_file(known_hosts)
                .known_hosts_check(openssh::KnownHosts::Strict);
        }
        // A master whose omsup was killed (no chance to close it) exits once idle.
        builder
            .connect_timeout(SSH_CONNECT_TIMEOUT)
            .server_alive_interval(SSH_ALIVE_INTERVAL)
            .control_persist(openssh::ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(30).expect("not zero"),
            ));
        builder
    }
}

/// Why an SSH connection to a node failed: logging in, or starting `docker system dial-stdio`
/// once logged in. The message names the endpoint; the source is ssh's own error.
#[derive(Debug, thiserror::Error)]
pub enum SshConnectError {
    #[error("ssh to `{endpoint}` failed")]
    Login {
        endpoint: String,
        #[source]
        source: openssh::Error,
    },
    #[error("`docker system dial-stdio` on `{endpoint}` did not start")]
    DialStdio {
        endpoint: String,
        #[source]
        source: openssh::Error,
    },
}

/// A Docker client whose every connection is `ssh ... docker system dial-stdio`.
pub fn connect_with_ssh(target: SshTarget, request_timeout_secs: u64) -> Docker {
    let address = target.endpoint();
    let client = Arc::new(Client::builder(TokioExecutor::new()).build(SshConnector {
        target: Arc::new(target),
    }));
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = Arc::clone(&client);
            async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(address),
        request_timeout_secs,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("a custom transport is always accepted")
}

#[derive(Clone)]
struct SshConnector {
    target: Arc<SshTarget>,
}

impl tower_service::Service<hyper::Uri> for SshConnector {
    type Response = SshStream;
    type Error = SshConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<SshStream, SshConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let target = Arc::clone(&self.target);
        Box::pin(async move {
            let endpoint = target.endpoint();
            let session = Arc::new(target.session().await?);
            let mut child = session
                .arc_command("docker")
                .arg("system")
                .arg("dial-stdio")
                .stdin(openssh::Stdio::piped())
                .stdout(openssh::Stdio::piped())
                .spawn()
                .await
                .map_err(|source| SshConnectError::DialStdio {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            let stdin = child.stdin().take().expect("stdin is piped");
            let stdout = child.stdout().take().expect("stdout is piped");
            Ok(SshStream {
                stdin: Some(TokioIo::new(stdin)),
                stdout: TokioIo::new(stdout),
                _child: child,
            })
        })
    }
}

/// One `docker system dial-stdio` process: its stdout is the daemon's side of the stream.
struct SshStream {
    _child: openssh::Child<Arc<openssh::Session>>,
    stdin: Option<TokioIo<openssh::ChildStdin>>,
    stdout: TokioIo<openssh::ChildStdout>,
}

impl SshStream {
    fn stdin(self: Pin<&mut Self>) -> io::Result<Pin<&mut TokioIo<openssh::ChildStdin>>> {
        self.get_mut()
            .stdin
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

impl hyper::rt::Read for SshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdout).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stdin()?.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().stdin()?.poll_shutdown(cx))?;
        self.get_mut().stdin = None;
        Poll::Ready(Ok(()))
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omsup_model::DockerEndpoint;

    fn target(endpoint: &str) -> SshTarget {
        let Ok(DockerEndpoint::Ssh { user, host, port }) = endpoint.parse() else {
            panic!("{endpoint} is an ssh endpoint");
        };
        SshTarget::new(user, host, port, None)
    }

    #[test]
    fn the_port_and_user_go_to_ssh_as_options_not_in_the_host_name() {
        let with_port = target("ssh://root@10.0.0.2:2222");
        let builder = with_port.builder();
        assert_eq!(with_port.host, "10.0.0.2");
        assert_eq!(builder.get_port(), Some("2222"));
        assert_eq!(builder.get_user(), Some("root"));
        assert_eq!(with_port.endpoint(), "ssh://root@10.0.0.2:2222");

        let plain = target("ssh://node-2.example");
        assert_eq!(plain.host, "node-2.example");
        assert_eq!(plain.builder().get_port(), None);
        assert_eq!(plain.builder().get_user(), None);
        assert_eq!(plain.endpoint(), "ssh://node-2.example");
    }
}
