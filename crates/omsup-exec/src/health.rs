//! `GET /oms/health` on a node (`data.healthy`), the check OMS documents and obd polls.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The port OMS serves `/oms/health` on when nothing says otherwise (config.yaml's
/// `nginx_server_port`, observed per node, wins).
pub const HEALTH_PORT: u16 = omsup_engine::diff::DEFAULT_HEALTH_PORT;

/// `Some(healthy)` from `http://<ip>:<port>/oms/health`, `None` when nothing sensible answers
/// within two seconds.
pub async fn healthy(ip: &str, port: u16) -> Option<bool> {
    let timeout = Duration::from_secs(2);
    let mut stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port)))
        .await
        .ok()?
        .ok()?;
    let request =
        format!("GET /oms/health HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(timeout, stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n")?.1;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["data"]["healthy"].as_bool()
}
