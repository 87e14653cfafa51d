//! What failed when a node's Docker daemon was not reached: the host (nothing answers at its
//! address), the transport (ssh refused the key or the host key, TLS rejected a certificate),
//! or the daemon (the host answers, its `dockerd` does not). Read from a request's error chain
//! by type, so messages name the real cause instead of "Error in the hyper legacy client".

use std::error::Error as StdError;
use std::fmt;

use crate::ssh::SshConnectError;

/// Which part of the way to a node's daemon failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLayer {
    /// Nothing answered at the node's address (down, unreachable, link cut, no answer in time).
    Host,
    /// SSH refused the connection, the key or the host key, or TLS refused a certificate.
    Transport,
    /// The host answered, its Docker daemon did not (stopped, or `docker` missing over SSH).
    Daemon,
}

/// A request that never reached the daemon, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFailure {
    pub layer: LinkLayer,
    /// The underlying messages (ssh's, the TLS library's, the OS's), joined by `: `.
    pub detail: String,
}

impl fmt::Display for LinkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = match self.layer {
            LinkLayer::Host => "the node's host did not answer",
            LinkLayer::Transport => "the transport (SSH or TLS) refused the connection",
            LinkLayer::Daemon => "the node's Docker daemon did not answer",
        };
        write!(f, "{layer}: {}", self.detail)
    }
}

impl StdError for LinkFailure {}

impl LinkFailure {
    /// What the operator should check.
    pub fn hint(&self) -> &'static str {
        match self.layer {
            LinkLayer::Host => {
                "is the node up and its address reachable from this machine (routes, firewalls)?"
            }
            LinkLayer::Transport => {
                "over SSH: is the key (the node's `ssh.identity`, or your ssh config) authorised on the node, and its host key in the known hosts? over TLS: did the node's CA (`tls.ca`) sign the daemon's certificate for this address, and does the daemon accept the client certificate?"
            }
            LinkLayer::Daemon => {
                "is `dockerd` running on the node? over SSH the node needs the `docker` client and `DOCKER_HOST` pointing at its daemon (for `docker system dial-stdio`)"
            }
        }
    }

    /// A request that ran out of time without an answer.
    pub fn timed_out(limit: std::time::Duration) -> Self {
        Self {
            layer: LinkLayer::Host,
            detail: format!("no answer within {} s", limit.as_secs()),
        }
    }
}

/// Why connecting to a daemon failed: a link failure, or the daemon's own refusal (an API
/// version it does not speak, say), which names the daemon.
pub fn connect_failure(
    cause: &crate::observe::ConnectCause<bollard::errors::Error>,
    endpoint: &omsup_model::DockerEndpoint,
) -> LinkFailure {
    match cause {
        crate::observe::ConnectCause::TimedOut(limit) => LinkFailure::timed_out(*limit),
        crate::observe::ConnectCause::Failed(error) => {
            let failure = link_failure(error).unwrap_or_else(|| LinkFailure {
                layer: LinkLayer::Daemon,
                detail: error.to_string(),
            });
            // A TLS daemon that refuses the client's certificate closes the connection after
            // the handshake: the client sees it closed before any answer, as if the daemon
            // went away. A daemon that is down refuses the TCP connection instead.
            let closed_before_answer = failure.layer == LinkLayer::Daemon
                && !matches!(error, bollard::errors::Error::IOError { .. })
                && !failure.detail.contains("connect error");
            if closed_before_answer && matches!(endpoint, omsup_model::DockerEndpoint::Tcp { .. }) {
                return LinkFailure {
                    layer: LinkLayer::Transport,
                    detail: format!(
                        "the daemon closed the TLS connection before answering (is the client certificate, `tls.cert`, signed by a CA the daemon trusts?): {}",
                        failure.detail
                    ),
                };
            }
            failure
        }
    }
}

/// `Some` when `error` means the daemon was not reached (`None`: it answered, even with an
/// error status).
pub fn link_failure(error: &bollard::errors::Error) -> Option<LinkFailure> {
    use bollard::errors::Error as Bollard;
    match error {
        Bollard::DockerResponseServerError { .. }
        | Bollard::JsonDataError { .. }
        | Bollard::JsonSerdeError { .. }
        | Bollard::DockerStreamError { .. }
        | Bollard::DockerContainerWaitError { .. } => return None,
        Bollard::SocketNotFoundError(path) => {
            return Some(LinkFailure {
                layer: LinkLayer::Daemon,
                detail: format!("no socket at `{path}`"),
            });
        }
        // Transparent: its source is the io error's own, so read it here.
        Bollard::IOError { err } => {
            return io_layer(err.kind()).map(|layer| LinkFailure {
                layer,
                detail: err.to_string(),
            });
        }
        Bollard::RequestTimeoutError => {
            return Some(LinkFailure {
                layer: LinkLayer::Host,
                detail: "the request got no answer in time".to_owned(),
            });
        }
        _ => {}
    }
    let mut layer = None;
    let mut details: Vec<String> = Vec::new();
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(ssh) = cause.downcast_ref::<SshConnectError>() {
            layer = layer.or(Some(ssh_layer(ssh)));
        } else if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            // TLS failures come as io errors wrapping io errors wrapping the rustls error.
            let mut inner: &(dyn StdError + 'static) = io;
            while let Some(next) = inner
                .downcast_ref::<std::io::Error>()
                .and_then(|e| e.get_ref())
            {
                inner = next;
            }
            if inner.downcast_ref::<rustls::Error>().is_some() {
                layer = layer.or(Some(LinkLayer::Transport));
                details.push(format!("TLS: {io}"));
                source = None;
                continue;
            }
            layer = layer.or(io_layer(io.kind()));
        } else if cause.downcast_ref::<rustls::Error>().is_some() {
            layer = layer.or(Some(LinkLayer::Transport));
        } else if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            // Over SSH, a stream that closes before the answer is `docker system dial-stdio`
            // ending: the daemon (or the `docker` client) is missing on the node.
            if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
                layer = layer.or(Some(LinkLayer::Daemon));
            }
        }
        let wrapper = matches!(
            cause.downcast_ref::<Bollard>(),
            Some(Bollard::HyperLegacyError { .. })
        ) || cause
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some();
        let text = cause.to_string();
        if !wrapper && !details.iter().any(|d| d.contains(&text)) {
            details.push(text);
        }
        source = cause.source();
    }
    let layer = layer?;
    Some(LinkFailure {
        layer,
        detail: details.join(": "),
    })
}

fn ssh_layer(error: &SshConnectError) -> LinkLayer {
    match error {
        SshConnectError::Login { source, .. } => {
            // Nothing answered at the address; anything else (refused port, refused key or
            // host key) is the SSH transport.
            let text = source.to_string();
            let host_down = [
                "timed out",
                "No route to host",
                "Network is unreachable",
                "Could not resolve hostname",
                "Connection reset",
                "Broken pipe",
            ];
            if host_down.iter().any(|m| text.contains(m)) {
                LinkLayer::Host
            } else {
                LinkLayer::Transport
            }
        }
        SshConnectError::DialStdio { .. } => LinkLayer::Daemon,
    }
}

fn io_layer(kind: std::io::ErrorKind) -> Option<LinkLayer> {
    use std::io::ErrorKind as K;
    match kind {
        // The host answered: nothing listens where the daemon should.
        K::ConnectionRefused | K::NotFound | K::PermissionDenied => Some(LinkLayer::Daemon),
        K::TimedOut
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::AddrNotAvailable => Some(LinkLayer::Host),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Some(LinkLayer::Host)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_answer_is_not_a_link_failure() {
        let answered = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: oms".into(),
        };
        assert_eq!(link_failure(&answered), None);
    }

    #[test]
    fn a_refused_unix_socket_is_the_daemon_and_a_missing_route_the_host() {
        let refused = bollard::errors::Error::IOError {
            err: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        let failure = link_failure(&refused).expect("a link failure");
        assert_eq!(failure.layer, LinkLayer::Daemon);
        assert_eq!(failure.detail, "refused");
        let unreachable = bollard::errors::Error::IOError {
            err: std::io::Error::new(std::io::ErrorKind::HostUnreachable, "no route to host"),
        };
        assert_eq!(
            link_failure(&unreachable).map(|f| f.layer),
            Some(LinkLayer::Host)
        );
    }
}
