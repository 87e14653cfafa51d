//! `GET /oms/health`: a tiny HTTP/1.1 responder (one request per connection, `Connection:
//! close`), which is all OMS health checks need.
//!
//! With a certificate and its key mounted at `/etc/pki/nginx/oms_server.crt` and `.key` it
//! serves HTTPS only, as OMS's nginx does: a plain-HTTP request gets nginx's `400 The plain
//! HTTP request was sent to HTTPS port`. Knobs, read on every request: `OMS_SIM_HEALTH_CHUNKED`
//! / `sim-health-chunked` (the answer in chunks, `Transfer-Encoding: chunked`, no
//! `Content-Length`), `OMS_SIM_HEALTH_STATUS` / `sim-health-status` (the status code to answer
//! with, e.g. `500`; the body stays the JSON answer, so a probe that ignores the status is
//! caught).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::Paths;

#[derive(Debug, Default)]
struct HealthState {
    ready: bool,
    healthy: bool,
    schema_version: Option<String>,
}

/// Health as the serve loop last saw it.
#[derive(Debug, Clone, Default)]
pub struct SharedHealth(Arc<Mutex<HealthState>>);

impl SharedHealth {
    pub fn set(&self, ready: bool, healthy: bool, schema_version: Option<String>) {
        let mut state = self.0.lock().expect("health lock is never poisoned");
        *state = HealthState {
            ready,
            healthy,
            schema_version,
        };
    }

    fn body(&self, version: &str) -> String {
        let state = self.0.lock().expect("health lock is never poisoned");
        serde_json::json!({
            "success": true,
            "data": {
                "healthy": state.ready && state.healthy,
                "version": version,
                "schemaVersion": state.schema_version,
            }
        })
        .to_string()
    }
}

/// The TLS acceptor when a certificate and its key are mounted (HTTPS only), else `None`
/// (plain HTTP). A certificate without its key, or files that do not parse, are an error: OMS's
/// nginx does not start either.
pub fn tls_acceptor(paths: &Paths) -> Result<Option<TlsAcceptor>, String> {
    let cert_path = paths.pki.join("oms_server.crt");
    let key_path = paths.pki.join("oms_server.key");
    if !cert_path.exists() && !key_path.exists() {
        return Ok(None);
    }
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("cannot serve HTTPS with {}: {e}", cert_path.display()))?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Serves `/oms/health` on `listener`, over TLS when `tls` is set.
pub async fn serve_health(
    listener: tokio::net::TcpListener,
    state: SharedHealth,
    version: String,
    paths: Paths,
    tls: Option<TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let answer = Answer {
            state: state.clone(),
            version: version.clone(),
            paths: paths.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                answer.serve(stream).await;
                return;
            };
            // A TLS connection starts with a handshake record (0x16); anything else is a
            // plain-HTTP request, which nginx answers with a 400 of its own.
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await.is_ok_and(|n| n == 1) && first[0] != 0x16 {
                plain_http_to_https_port(stream).await;
                return;
            }
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(5), tls.accept(stream)).await
            {
                answer.serve(stream).await;
            }
        });
    }
}

/// What one connection needs to answer.
struct Answer {
    state: SharedHealth,
    version: String,
    paths: Paths,
}

impl Answer {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let Some(request) = read_head(&mut stream).await else {
            return;
        };
        let first_line = request.lines().next().unwrap_or_default();
        let (status, body) = if first_line.starts_with("GET /oms/health ") {
            let status = crate::knob(&self.paths, "OMS_SIM_HEALTH_STATUS", "sim-health-status")
                .and_then(|text| text.parse::<u16>().ok())
                .unwrap_or(200);
            (status, self.state.body(&self.version))
        } else {
            (404, r#"{"success":false}"#.to_owned())
        };
        let chunked = crate::knob_on(&self.paths, "OMS_SIM_HEALTH_CHUNKED", "sim-health-chunked");
        let response = response(status, "application/json", &body, chunked);
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
    }
}

/// The request head (up to the blank line), at most 8 KiB, within five seconds.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buffer).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()??;
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// nginx's answer to plain HTTP on an HTTPS-only port.
async fn plain_http_to_https_port(mut stream: tokio::net::TcpStream) {
    let _ = read_head(&mut stream).await;
    let title = "400 The plain HTTP request was sent to HTTPS port";
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request was sent to HTTPS port</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    let response = response(400, "text/html", &body, false);
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// An HTTP/1.1 response that closes the connection; `chunked` sends the body in three chunks.
fn response(status: u16, content_type: &str, body: &str, chunked: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: nginx\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
    );
    if !chunked {
        return format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes();
    }
    let mut bytes = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for chunk in body.as_bytes().chunks(body.len().div_ceil(3).max(1)) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

#[cfg(test)]
mod tests {
    use super::response;

    #[test]
    fn a_chunked_answer_has_no_length_and_ends_with_the_last_chunk() {
        let text = String::from_utf8(response(
            200,
            "application/json",
            r#"{"data":{"healthy":true}}"#,
            true,
        ))
        .unwrap();
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert!(!text.contains("Content-Length"), "{text}");
        assert!(text.ends_with("\r\n0\r\n\r\n"), "{text}");
        let (_, chunks) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(chunks.matches("\r\n").count(), 3 * 2 + 2, "{chunks}");
    }
}
