//! `GET /oms/health` on a node (`data.healthy`), the check OMS documents and obd polls, and
//! the one online check of forward and undo runs ([`verify_online`]).
//!
//! A real HTTP/1.1 client (hyper: status codes, chunked answers), over HTTPS when the node's
//! running container mounts a certificate at [`CERT_MOUNT`]: OMS's nginx then serves HTTPS
//! only. The plan's `[health] tls_verify` says what the node must present: by default the
//! very certificate its container mounts (read through Docker, whoever signed it); with
//! `"ca"` a chain to `ca_file` that names the node's IP; with `"off"` anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use omsup_engine::StepId;
use omsup_model::PlanFile;
use omsup_model::plan::{HealthCheck, TlsVerify};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sqlx::MySqlPool;

use crate::executor::{Failure, StepError};

/// The port OMS serves `/oms/health` on when nothing says otherwise (config.yaml's
/// `nginx_server_port`, observed per node, wins).
pub const HEALTH_PORT: u16 = omsup_engine::diff::DEFAULT_HEALTH_PORT;

/// Where an OMS container's HTTPS certificate is mounted; with it, health is HTTPS only.
pub use omsup_engine::init::HTTPS_CERT_MOUNT as CERT_MOUNT;

/// How long one probe may take, connection and TLS handshake included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest health answer read (real ones are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where and how one node answers `/oms/health`.
#[derive(Clone)]
pub struct HealthEndpoint {
    ip: String,
    port: u16,
    /// `None`: plain HTTP.
    tls: Option<Arc<ClientConfig>>,
}

/// Why a probe got no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {}", tls_detail(.0))]
    Tls(std::io::Error),
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("answered HTTP {0}")]
    Status(hyper::StatusCode),
    #[error("the answer is not the documented JSON (`data.healthy`): {0}")]
    Body(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The TLS library's reason, with our own verifier's message rather than its debug form.
fn tls_detail(error: &std::io::Error) -> String {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            other.0.to_string()
        }
        _ => error.to_string(),
    }
}

/// Why a node's health endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot inspect `{container}`: {source}")]
    Inspect {
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot read the certificate `{container}` mounts at {CERT_MOUNT}: {detail}")]
    MountedCertificate { container: String, detail: String },
    #[error("cannot read `health.ca_file` {path}: {detail}")]
    CaFile { path: String, detail: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// What an HTTPS health answer's certificate must be.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Exactly this certificate (the one the node's container mounts).
    Exactly(CertificateDer<'static>),
    /// A chain to one of these roots that names the node's address.
    Roots(Arc<RootCertStore>),
    /// Anything (`tls_verify = "off"`): the handshake is still checked, the certificate not.
    Anything,
}

impl Trust {
    /// The roots of a PEM file (`health.ca_file`).
    pub fn roots_from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("no certificate in it".to_owned());
        }
        Ok(Self::Roots(Arc::new(roots)))
    }

    /// The first certificate of a PEM file (the server's own; a chain follows it).
    pub fn exactly_from_pem(pem: &[u8]) -> Result<Self, String> {
        CertificateDer::from_pem_slice(pem)
            .map(Self::Exactly)
            .map_err(|e| format!("no PEM certificate in it: {e}"))
    }

    fn client_config(self) -> Result<Arc<ClientConfig>, SetupError> {
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        let tls_error = |e: &dyn std::fmt::Display| SetupError::Tls(e.to_string());
        let verifier: Arc<dyn ServerCertVerifier> = match self {
            Self::Roots(roots) => {
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| tls_error(&e))?
            }
            Self::Exactly(cert) => Arc::new(Pinned {
                expected: Some(cert),
                algorithms: provider.signature_verification_algorithms,
            }),
            Self::Anything => Arc::new(Pinned {
                expected: None,
                algorithms: provider.signature_verification_algorithms,
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Accepts exactly one certificate (or, without one, any), whoever signed it and whatever it
/// names: the deployment's own certificate is often self-signed for a name that is not the
/// node's IP. The handshake signature is always verified, so the server holds its key.
#[derive(Debug)]
struct Pinned {
    expected: Option<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The server presented another certificate than the one its container mounts.
#[derive(Debug, thiserror::Error)]
#[error("the node presented a certificate other than the one its container mounts at {CERT_MOUNT}")]
struct NotTheMountedCertificate;

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.expected {
            Some(expected) if expected.as_ref() != end_entity.as_ref() => Err(
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                    rustls::OtherError(Arc::new(NotTheMountedCertificate)),
                )),
            ),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl HealthEndpoint {
    /// `http://<ip>:<port>/oms/health`.
    pub fn http(ip: &str, port: u16) -> Self {
        Self {
            ip: ip.to_owned(),
            port,
            tls: None,
        }
    }

    /// `https://<ip>:<port>/oms/health`, trusting `trust`.
    pub fn https(ip: &str, port: u16, trust: Trust) -> Result<Self, SetupError> {
        Ok(Self {
            ip: ip.to_owned(),
            port,
            tls: Some(trust.client_config()?),
        })
    }

    /// How `container` on node `ip` answers: over HTTPS when the container mounts a
    /// certificate at [`CERT_MOUNT`], trusting what `check` says; else over HTTP.
    pub async fn of_container(
        docker: &Docker,
        container: &str,
        ip: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<Self, SetupError> {
        let inspect = docker
            .inspect_container(container, None)
            .await
            .map_err(|source| SetupError::Inspect {
                container: container.to_owned(),
                source,
            })?;
        let mounts_certificate = inspect
            .mounts
            .iter()
            .flatten()
            .any(|mount| mount.destination.as_deref() == Some(CERT_MOUNT));
        if !mounts_certificate {
            return Ok(Self::http(ip, port));
        }
        let trust = match check.tls_verify {
            TlsVerify::Off => Trust::Anything,
            TlsVerify::Ca => {
                let path = check.ca_file.as_deref().unwrap_or(std::path::Path::new(""));
                let ca_error = |detail: String| SetupError::CaFile {
                    path: path.display().to_string(),
                    detail,
                };
                let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
                Trust::roots_from_pem(&pem).map_err(ca_error)?
            }
            TlsVerify::DeploymentCert => {
                let cert_error = |detail: String| SetupError::MountedCertificate {
                    container: container.to_owned(),
                    detail,
                };
                let pem = crate::observe::download_file(docker, container, CERT_MOUNT)
                    .await
                    .map_err(|e| cert_error(e.to_string()))?;
                Trust::exactly_from_pem(&pem).map_err(cert_error)?
            }
        };
        Self::https(ip, port, trust)
    }

    pub fn ip(&self) -> &str {
        &self.ip
    }

    fn authority(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }

    /// `http://...` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/oms/health", self.authority())
    }

    /// `data.healthy` of a 2xx JSON answer, within two seconds.
    pub async fn probe(&self) -> Result<bool, ProbeError> {
        tokio::time::timeout(PROBE_TIMEOUT, self.probe_unbounded())
            .await
            .map_err(|_| ProbeError::Timeout(PROBE_TIMEOUT))?
    }

    async fn probe_unbounded(&self) -> Result<bool, ProbeError> {
        let tcp = tokio::net::TcpStream::connect((self.ip.as_str(), self.port))
            .await
            .map_err(ProbeError::Connect)?;
        let authority = self.authority();
        let (status, body) = match &self.tls {
            None => get(tcp, &authority).await?,
            Some(config) => {
                let name = ServerName::try_from(self.ip.clone()).map_err(|e| {
                    ProbeError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(ProbeError::Tls)?;
                get(tls, &authority).await?
            }
        };
        if !status.is_success() {
            return Err(ProbeError::Status(status));
        }
        let answer: HealthResponse =
            serde_json::from_slice(&body).map_err(|e| ProbeError::Body(e.to_string()))?;
        Ok(answer.data.healthy)
    }
}

/// Aborts the connection task when the exchange ends or is given up (timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One `GET /oms/health` over `io`: the status and the whole body (chunked or not).
async fn get<S>(io: S, authority: &str) -> Result<(hyper::StatusCode, Bytes), ProbeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let request = hyper::Request::get("/oms/health")
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .expect("a constant request is valid");
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| ProbeError::Body(e.to_string()))?
        .to_bytes();
    Ok((status, body))
}

/// The part of the `/oms/health` answer omsup reads.
#[derive(serde::Deserialize)]
struct HealthResponse {
    data: HealthData,
}

#[derive(serde::Deserialize)]
struct HealthData {
    healthy: bool,
}

/// How often [`verify_online`] looks again.
const ONLINE_POLL: Duration = Duration::from_millis(200);

/// Every node of the plan file's health endpoint, as its running container serves it
/// ([`HealthEndpoint::of_container`]), on `health_port(ip)`.
async fn endpoints(
    dockers: &BTreeMap<String, Docker>,
    plan_file: &PlanFile,
    step: &StepId,
    health_port: impl Fn(&str) -> u16,
) -> Result<Vec<HealthEndpoint>, StepError> {
    let mut endpoints = Vec::new();
    for (_, node) in plan_file.nodes() {
        let docker = dockers.get(&node.ip).ok_or_else(|| {
            StepError::other(step, format!("no Docker connection for node {}", node.ip))
        })?;
        let endpoint = HealthEndpoint::of_container(
            docker,
            &node.container,
            &node.ip,
            health_port(&node.ip),
            &plan_file.health,
        )
        .await
        .map_err(|e| {
            StepError::failed(
                step,
                Failure::HealthSetup {
                    node: node.ip.clone(),
                    detail: e.to_string(),
                },
            )
        })?;
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

/// Polls until every node of the plan file is ONLINE in `cm.host` and answers `/oms/health`
/// healthy (on `health_port(ip)`, over HTTP or HTTPS as its container serves it), all at once,
/// within `[timeouts] online`; returns how long it took. Used by `online.verify` and
/// `undo.online.verify`.
pub async fn verify_online(
    pool: &MySqlPool,
    dockers: &BTreeMap<String, Docker>,
    plan_file: &PlanFile,
    step: &StepId,
    health_port: impl Fn(&str) -> u16,
) -> Result<Duration, StepError> {
    let endpoints = endpoints(dockers, plan_file, step, health_port).await?;
    let timeout = plan_file.timeouts.online.as_duration();
    let started = Instant::now();
    let cm = &plan_file.meta_db.cm;
    let query = format!("SELECT CAST(ip AS CHAR), CAST(host_status AS CHAR) FROM `{cm}`.host");
    loop {
        let statuses: BTreeMap<String, String> =
            sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(query.clone()))
                .fetch_all(pool)
                .await
                .map(|rows| rows.into_iter().collect())
                .unwrap_or_default();
        let mut waiting = Vec::new();
        for endpoint in &endpoints {
            let ip = endpoint.ip();
            let status = statuses.get(ip).map_or("not registered", String::as_str);
            let health = match endpoint.probe().await {
                Ok(true) => None,
                Ok(false) => Some("not healthy".to_owned()),
                Err(error) => Some(format!("{}: {error}", endpoint.url())),
            };
            if status != "ONLINE" || health.is_some() {
                let health = health.as_deref().unwrap_or("healthy");
                waiting.push(format!("{ip} ({status}, {health})"));
            }
        }
        if waiting.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            return Err(StepError::other(
                step,
                format!(
                    "not ONLINE and healthy within {timeout:?}: {}",
                    waiting.join(", ")
                ),
            ));
        }
        tokio::time::sleep(ONLINE_POLL).await;
    }
}
