//! Docker endpoints as the plan names them: `unix:///path`, `tcp://host:port`, `ssh://user@host`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a node's Docker daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DockerEndpoint {
    /// A local Unix socket, e.g. `unix:///var/run/docker.sock`.
    Unix { path: PathBuf },
    /// TCP, with TLS when the node names `tls` files (Docker's convention is port 2376).
    Tcp { host: String, port: u16 },
    /// Docker over SSH (`docker system dial-stdio` on the far side), e.g. `ssh://admin@10.0.0.2`.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

/// Why an endpoint string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointParseError {
    #[error(
        "unsupported Docker endpoint scheme in `{input}`: expected `unix://`, `tcp://` or `ssh://`"
    )]
    Scheme { input: String },
    #[error(
        "a `unix://` endpoint needs an absolute socket path, like `unix:///var/run/docker.sock`"
    )]
    UnixPath,
    #[error("a `tcp://` endpoint needs `host:port`, like `tcp://10.0.0.2:2376`")]
    TcpAddress,
    #[error("an `ssh://` endpoint needs a host, like `ssh://admin@10.0.0.2`")]
    SshHost,
}

impl FromStr for DockerEndpoint {
    type Err = EndpointParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if let Some(path) = input.strip_prefix("unix://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(EndpointParseError::UnixPath);
            }
            return Ok(Self::Unix { path: path.into() });
        }
        if let Some(rest) = input.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or(EndpointParseError::TcpAddress)?;
            let port = port.parse().map_err(|_| EndpointParseError::TcpAddress)?;
            if host.is_empty() || host.contains('/') || port == 0 {
                return Err(EndpointParseError::TcpAddress);
            }
            return Ok(Self::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        if let Some(rest) = input.strip_prefix("ssh://") {
            let rest = rest.trim_end_matches('/');
            let (user, host_port) = match rest.split_once('@') {
                Some((user, host_port)) if !user.is_empty() => (Some(user.to_owned()), host_port),
                Some(_) => return Err(EndpointParseError::SshHost),
                None => (None, rest),
            };
            let (host, port) = match host_port.rsplit_once(':') {
                Some((host, port)) => (
                    host,
                    Some(port.parse().map_err(|_| EndpointParseError::SshHost)?),
                ),
                None => (host_port, None),
            };
            if host.is_empty() || host.contains('/') {
                return Err(EndpointParseError::SshHost);
            }
            return Ok(Self::Ssh {
                user,
                host: host.to_owned(),
                port,
            });
        }
        Err(EndpointParseError::Scheme {
            input: input.to_owned(),
        })
    }
}

impl fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix { path } => write!(f, "unix://{}", path.display()),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Ssh { user, host, port } => {
                f.write_str("ssh://")?;
                if let Some(user) = user {
                    write!(f, "{user}@")?;
                }
                f.write_str(host)?;
                if let Some(port) = port {
                    write!(f, ":{port}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_scheme() {
        for text in [
            "unix:///var/run/docker.sock",
            "tcp://10.0.0.3:2376",
            "ssh://admin@10.0.0.2",
            "ssh://10.0.0.2:2222",
        ] {
            let endpoint: DockerEndpoint = text.parse().unwrap();
            assert_eq!(endpoint.to_string(), text);
        }
    }

    #[test]
    fn refuses_malformed_endpoints() {
        for text in [
            "http://x:1",
            "unix://relative.sock",
            "tcp://host",
            "tcp://:2376",
            "ssh://",
            "ssh://@h",
            "/var/run/docker.sock",
        ] {
            assert!(
                text.parse::<DockerEndpoint>().is_err(),
                "{text} must be refused"
            );
        }
    }
}
