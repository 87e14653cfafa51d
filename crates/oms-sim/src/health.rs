//! `GET /oms/health`: a tiny HTTP/1.1 responder (one request per connection, `Connection:
//! close`), which is all OMS health checks need.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

pub async fn serve_health(listener: tokio::net::TcpListener, state: SharedHealth, version: String) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let version = version.clone();
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let Ok(read) = stream.read(&mut request).await else {
                return;
            };
            let first_line = String::from_utf8_lossy(&request[..read])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let (status, body) = if first_line.starts_with("GET /oms/health ") {
                ("200 OK", state.body(&version))
            } else {
                ("404 Not Found", r#"{"success":false}"#.to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
