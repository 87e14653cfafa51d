//! Read-only observers: what each node's Docker daemon, the meta database and the operator's
//! own machine look like right now, as an [`ObservedWorld`] for the engine.
//!
//! Every node, the meta database and the operator side are observed concurrently. Nothing that
//! cannot be reached stops the others: an unreachable part is data in the world (so `plan`
//! shows every problem at once) and an [`ObserveError`] in [`Observation::problems`] (with its
//! cause chain and a hint, for the CLI to render). Connections time out in seconds.

mod clients;
mod config_yaml;
pub mod discover;
mod docker;
pub(crate) use docker::download_file;
mod meta_db;
mod node_space;
pub(crate) mod operator;

use std::time::Duration;

use omsup_engine::observed::{MetaDbReach, ObservedClients, ObservedNode, ObservedWorld};
use omsup_model::PlanFile;

use crate::secrets::Secrets;

pub(crate) use config_yaml::scalar_text;
pub use config_yaml::{ConfigYamlError, parse_config_yaml, single_file_from_tar};
pub use docker::connect_docker;
pub(crate) use docker::download_config_yaml;

/// How long connecting to a Docker daemon or the meta database may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any single read (an inspect, a query, the config.yaml download) may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// What the observers saw, and what they could not see.
#[derive(Debug)]
pub struct Observation {
    pub world: ObservedWorld,
    /// Every part that could not be observed, in plan order (nodes, then the meta database).
    pub problems: Vec<ObserveError>,
}

/// A part of the world that could not be observed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("cannot parse the Docker endpoint `{endpoint}` of node {node}")]
    DockerEndpoint {
        node: String,
        endpoint: String,
        #[source]
        source: omsup_model::endpoint::EndpointParseError,
    },
    #[error("cannot reach the Docker daemon of node {node} at `{endpoint}`")]
    DockerUnreachable {
        node: String,
        endpoint: String,
        #[source]
        source: crate::link::LinkFailure,
    },
    #[error("cannot {what} on node {node}")]
    DockerRead {
        node: String,
        what: String,
        #[source]
        source: ConnectCause<bollard::errors::Error>,
    },
    #[error("cannot read config.yaml of container `{container}` on node {node}")]
    ConfigYaml {
        node: String,
        container: String,
        #[source]
        source: ConfigYamlError,
    },
    #[error("cannot reach the meta database at `{host}:{port}` as `{user}`")]
    MetaUnreachable {
        host: String,
        port: u16,
        user: String,
        #[source]
        source: ConnectCause<sqlx::Error>,
    },
    #[error("cannot read {what} in the meta database")]
    MetaRead {
        what: String,
        #[source]
        source: ConnectCause<sqlx::Error>,
    },
    #[error("`{0}` is not a valid database name")]
    DatabaseName(String),
}

/// The underlying failure: the library's error, or our own time limit.
#[derive(Debug, thiserror::Error)]
pub enum ConnectCause<E: std::error::Error + 'static> {
    #[error(transparent)]
    Failed(E),
    #[error("no answer within {} s", .0.as_secs())]
    TimedOut(Duration),
}

impl ObserveError {
    /// What the operator should check, for the `hint:` line.
    pub fn hint(&self) -> String {
        match self {
            Self::DockerEndpoint { .. } => {
                "a node's `docker` is `unix:///path`, `tcp://host:port` or `ssh://user@host`; run `omsup lint` on the plan file".into()
            }
            Self::DockerUnreachable {
                endpoint, source, ..
            } => format!(
                "{} try `docker -H {endpoint} info`, and check the node's `docker` (and `tls` or `ssh`) in the plan file",
                source.hint()
            ),
            Self::DockerRead { .. } => {
                "the daemon answered but refused a read; check its logs and the API version it speaks".into()
            }
            Self::ConfigYaml { .. } => {
                "the OMS container mounts its config at `/home/admin/conf/config.yaml`; check that mount".into()
            }
            Self::MetaUnreachable { .. } => {
                "is the meta DB reachable from this machine? check `[meta_db] host/port`, `user` and the password source".into()
            }
            Self::MetaRead { .. } => {
                "check that `[meta_db] user` may read the rm, cm and cm_hb databases and `information_schema`".into()
            }
            Self::DatabaseName(_) => {
                "database names are letters, digits, `_` and `$`; check `[meta_db] rm/cm` and each region's `cm_hb`".into()
            }
        }
    }

    /// The causes of this error, outermost first, leaving out a cause whose text the one
    /// before it already includes (some drivers repeat their source in their own message).
    pub fn causes(&self) -> Vec<String> {
        let mut causes: Vec<String> = Vec::new();
        let mut previous = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !previous.contains(&text) {
                causes.push(text.clone());
            }
            previous = text;
            source = cause.source();
        }
        causes
    }

    /// The causes on one line, joined by `: `: what [`ObservedWorld`] keeps in
    /// `Unreachable { error }` (the engine names the node or the database itself).
    pub fn cause_line(&self) -> String {
        let causes = self.causes();
        if causes.is_empty() {
            self.to_string()
        } else {
            causes.join(": ")
        }
    }
}

/// An error and its causes on one line, joined by `: `.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Runs `future` under `limit`, turning both failures into a [`ConnectCause`].
pub(crate) async fn within<T, E: std::error::Error + 'static>(
    limit: Duration,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, ConnectCause<E>> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(ConnectCause::Failed(error)),
        Err(_) => Err(ConnectCause::TimedOut(limit)),
    }
}

/// Observes everything the plan names, concurrently: each node's daemon, the meta database and
/// the operator side. Never fails as a whole; see [`Observation::problems`].
pub async fn observe(plan: &PlanFile, secrets: &Secrets) -> Observation {
    let nodes = futures_util::future::join_all(
        plan.nodes()
            .map(|(_region, node)| docker::observe_node(plan, node)),
    );
    // The clients are tried once the meta database answered (and said which options the dump
    // client needs against it).
    let meta = async {
        let (meta_db, problem) = meta_db::observe_meta_db(plan, &secrets.meta_password).await;
        let clients = match &meta_db {
            MetaDbReach::Reachable(db) => {
                clients::observe_clients(plan, secrets, db.column_statistics).await
            }
            MetaDbReach::Unreachable { .. } => ObservedClients::default(),
        };
        (meta_db, problem, clients)
    };
    let operator = operator::observe_operator_side(plan);
    let (nodes, (meta_db, meta_problem, clients), mut operator) =
        tokio::join!(nodes, meta, operator);
    operator.clients = clients;

    let mut problems = Vec::new();
    let mut observed_nodes = Vec::with_capacity(nodes.len());
    for (node, node_problems) in nodes {
        observed_nodes.push(node);
        problems.extend(node_problems);
    }
    problems.extend(meta_problem);
    Observation {
        world: ObservedWorld {
            nodes: observed_nodes,
            meta_db,
            operator,
        },
        problems,
    }
}

/// Shared by the node observer: a node with the problems met observing it.
pub(crate) type NodeObservation = (ObservedNode, Vec<ObserveError>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_daemon_names_the_node_the_endpoint_and_the_cause() {
        let problem = ObserveError::DockerUnreachable {
            node: "10.0.0.2".into(),
            endpoint: "unix:///nowhere.sock".into(),
            source: crate::link::connect_failure(
                &ConnectCause::Failed(bollard::errors::Error::SocketNotFoundError(
                    "/nowhere.sock".into(),
                )),
                &"unix:///nowhere.sock".parse().unwrap(),
            ),
        };
        assert_eq!(
            problem.to_string(),
            "cannot reach the Docker daemon of node 10.0.0.2 at `unix:///nowhere.sock`"
        );
        assert_eq!(
            problem.causes(),
            ["the node's Docker daemon did not answer: no socket at `/nowhere.sock`"]
        );
        assert!(
            problem
                .hint()
                .contains("docker -H unix:///nowhere.sock info")
        );
    }

    #[test]
    fn a_timeout_is_a_cause_in_seconds() {
        let problem = ObserveError::MetaUnreachable {
            host: "10.0.0.1".into(),
            port: 2883,
            user: "oms".into(),
            source: ConnectCause::TimedOut(CONNECT_TIMEOUT),
        };
        assert_eq!(problem.cause_line(), "no answer within 5 s");
        assert!(problem.hint().contains("`[meta_db] host/port`"));
    }
}
