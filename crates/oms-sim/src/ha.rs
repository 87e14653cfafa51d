//! HA as `ha.config` asks for it: while `enable` is true, a running node that finds another
//! host of cm `host` not ONLINE acts on it (OMS would move that host's stores elsewhere; the
//! simulator records the action). The action is a row in rm `oms_ha_event` (created on the
//! first action: `host_ip`, `action` = `HOST_DOWN_MIGRATE`, `detected_by`, `down_since`), so an
//! upgrade that stops nodes without turning HA off first leaves a visible trace. The simulator
//! acts on the first tick that sees the host down (OMS waits `checkHostDownIntervalSec`; a test
//! cannot), once per host and down period.

use std::collections::BTreeSet;

use sqlx::{AssertSqlSafe, MySqlPool};

use crate::SimConfig;

/// The table HA actions are recorded in (rm).
pub const EVENT_TABLE: &str = "oms_ha_event";

/// The hosts already acted on in their current down period.
#[derive(Default)]
pub struct HaWatch {
    acted_on: BTreeSet<String>,
}

impl HaWatch {
    /// One look at `ha.config` and cm `host`; acts on each host newly found down.
    pub async fn tick(&mut self, pool: &MySqlPool, config: &SimConfig, own_ip: &str) {
        if !enabled(pool, config).await {
            self.acted_on.clear();
            return;
        }
        let hosts: Vec<(String, String, String)> = match sqlx::query_as(AssertSqlSafe(format!(
            "SELECT CAST(ip AS CHAR), CAST(host_status AS CHAR), CAST(gmt_modified AS CHAR) FROM `{}`.host",
            config.drc_cm_db
        )))
        .fetch_all(pool)
        .await
        {
            Ok(hosts) => hosts,
            Err(_) => return,
        };
        for (ip, status, since) in hosts {
            if ip == own_ip {
                continue;
            }
            if status == "ONLINE" {
                self.acted_on.remove(&ip);
                continue;
            }
            if self.acted_on.contains(&ip) {
                continue;
            }
            match record(pool, config, &ip, own_ip, &since).await {
                Ok(()) => {
                    self.acted_on.insert(ip);
                }
                Err(error) => crate::service_warning(&format!("HA could not act on {ip}: {error}")),
            }
        }
    }
}

/// `ha.config`'s `enable`, false when the row is missing or unreadable.
async fn enabled(pool: &MySqlPool, config: &SimConfig) -> bool {
    let value: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CAST(cfg_value AS CHAR) FROM `{}`.oms_normal_config WHERE cfg_name = 'ha.config'",
        config.drc_rm_db
    )))
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    value
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json.get("enable").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

async fn record(
    pool: &MySqlPool,
    config: &SimConfig,
    ip: &str,
    own_ip: &str,
    since: &str,
) -> Result<(), sqlx::Error> {
    let rm = &config.drc_rm_db;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS `{rm}`.{EVENT_TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         host_ip VARCHAR(64) NOT NULL, action VARCHAR(64) NOT NULL, detected_by VARCHAR(64) NOT NULL, \
         down_since VARCHAR(64) NOT NULL, gmt_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
         UNIQUE KEY (host_ip, down_since))"
    )))
    .execute(pool)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT IGNORE INTO `{rm}`.{EVENT_TABLE}(host_ip, action, detected_by, down_since) \
         VALUES (?, 'HOST_DOWN_MIGRATE', ?, ?)"
    )))
    .bind(ip)
    .bind(own_ip)
    .bind(since)
    .execute(pool)
    .await?;
    Ok(())
}
