//! `GET /oms/health` on a node (`data.healthy`), the check OMS documents and obd polls, and
//! the one online check of forward and undo runs ([`verify_online`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use omsup_engine::StepId;
use omsup_model::PlanFile;
use sqlx::MySqlPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::executor::StepError;

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
    let health: HealthResponse = serde_json::from_str(body).ok()?;
    Some(health.data.healthy)
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

/// Polls until every node of `ips` is ONLINE in `cm.host` and answers `/oms/health` healthy
/// (on `health_port(ip)`), all at once, within `[timeouts] online`; returns how long it took.
/// Used by `online.verify` and `undo.online.verify`.
pub async fn verify_online(
    pool: &MySqlPool,
    plan_file: &PlanFile,
    step: &StepId,
    ips: &[String],
    health_port: impl Fn(&str) -> u16,
) -> Result<Duration, StepError> {
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
        for ip in ips {
            let status = statuses.get(ip).map_or("not registered", String::as_str);
            let healthy = healthy(ip, health_port(ip)).await == Some(true);
            if status != "ONLINE" || !healthy {
                let health = if healthy { "healthy" } else { "not healthy" };
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
