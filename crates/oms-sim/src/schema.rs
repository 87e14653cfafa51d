//! The simulated meta schema and its version ladder, and the rows the running service writes.
//!
//! The base schema (4.1.0) holds the documented tables: rm `oms_normal_config` (with the
//! `ha.config` row), `cluster_info`, `oms_project`, `oms_version`; cm `host`, `resource_group`,
//! `config_job`; cm_hb `heatbeat_sequence`, `heart_beat`. Each later version adds something
//! (see [`LADDER`]), so a missing or failed init is visible to a health check and to a test.

use sqlx::{AssertSqlSafe, MySqlPool};

use crate::SimConfig;

pub type Version = (u32, u32, u32);

/// Which of the three databases a statement runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Rm,
    Cm,
    Hb,
}

/// A schema change of one version: the statement, and the table (and column) proving it ran.
pub struct Migration {
    pub version: Version,
    pub db: Db,
    pub sql: &'static str,
    pub marker_table: &'static str,
    pub marker_column: Option<&'static str>,
}

/// The base schema every version has.
pub const BASE: &[(Db, &str)] = &[
    (
        Db::Rm,
        "CREATE TABLE IF NOT EXISTS oms_normal_config (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         cfg_name VARCHAR(128) NOT NULL UNIQUE, cfg_value TEXT NOT NULL, \
         gmt_modified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    ),
    (
        Db::Rm,
        "CREATE TABLE IF NOT EXISTS cluster_info (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         name VARCHAR(128) NOT NULL, endpoint VARCHAR(255) NOT NULL)",
    ),
    (
        Db::Rm,
        "CREATE TABLE IF NOT EXISTS oms_project (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         name VARCHAR(128) NOT NULL, status VARCHAR(32) NOT NULL, \
         gmt_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    ),
    (
        Db::Rm,
        "CREATE TABLE IF NOT EXISTS oms_version (version VARCHAR(64) NOT NULL PRIMARY KEY, \
         gmt_modified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    ),
    (
        Db::Cm,
        "CREATE TABLE IF NOT EXISTS resource_group (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         name VARCHAR(128) NOT NULL UNIQUE)",
    ),
    (
        Db::Cm,
        "CREATE TABLE IF NOT EXISTS host (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         ip VARCHAR(64) NOT NULL UNIQUE, host_status VARCHAR(32) NOT NULL, \
         resource_group_id BIGINT NULL, \
         gmt_modified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    ),
    (
        Db::Cm,
        "CREATE TABLE IF NOT EXISTS config_job (`key` VARCHAR(128) NOT NULL PRIMARY KEY, \
         `value` TEXT NOT NULL)",
    ),
    (
        Db::Hb,
        "CREATE TABLE IF NOT EXISTS heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         gmt_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
         gmt_modified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    ),
    (
        Db::Hb,
        "CREATE TABLE IF NOT EXISTS heart_beat (task_name VARCHAR(128) NOT NULL, \
         host_ip VARCHAR(64) NOT NULL, gmt_modified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
         PRIMARY KEY (task_name, host_ip))",
    ),
];

/// What each version adds over the one before. Additive and idempotent.
pub const LADDER: &[Migration] = &[
    Migration {
        version: (4, 2, 0),
        db: Db::Rm,
        sql: "CREATE TABLE IF NOT EXISTS oms_sync_project (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
              project_id BIGINT NOT NULL, mode VARCHAR(32) NOT NULL)",
        marker_table: "oms_sync_project",
        marker_column: None,
    },
    Migration {
        version: (4, 2, 8),
        db: Db::Rm,
        sql: "ALTER TABLE oms_project ADD COLUMN IF NOT EXISTS labels VARCHAR(255) NULL",
        marker_table: "oms_project",
        marker_column: Some("labels"),
    },
    Migration {
        version: (4, 2, 9),
        db: Db::Rm,
        sql: "CREATE TABLE IF NOT EXISTS oms_alarm_event (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
              project_id BIGINT NULL, level VARCHAR(16) NOT NULL, message TEXT NOT NULL)",
        marker_table: "oms_alarm_event",
        marker_column: None,
    },
    Migration {
        version: (4, 2, 9),
        db: Db::Cm,
        sql: "ALTER TABLE host ADD COLUMN IF NOT EXISTS agent_version VARCHAR(64) NULL",
        marker_table: "host",
        marker_column: Some("agent_version"),
    },
];

/// The rm table whose presence means "an existing deployment".
pub const BASE_TABLES_PROBE: &str = "oms_normal_config";

/// The documented default `ha.config`.
pub const DEFAULT_HA_CONFIG: &str = r#"{"enable":false,"enableHost":false,"enableStore":true,"perceiveStoreClientCheckpoint":false,"enableConnector":true,"enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"checkRequestIntervalSec":600,"checkJdbcWriterIntervalSec":600,"checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"clearAbnormalResourceHours":72,"refetchStoreIntervalMin":30}"#;

/// `4.2.9-CE`, `4.2.9` → (4, 2, 9).
pub fn parse_version(text: &str) -> Option<Version> {
    let numeric = text.trim().trim_end_matches("-CE").trim_end_matches("-ce");
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

pub fn version_text(version: Version) -> String {
    format!("{}.{}.{}-CE", version.0, version.1, version.2)
}

pub fn db_name(config: &SimConfig, db: Db) -> &str {
    match db {
        Db::Rm => &config.drc_rm_db,
        Db::Cm => &config.drc_cm_db,
        Db::Hb => &config.drc_cm_heartbeat_db,
    }
}

/// Runs `sql` with `db` as the default database (a dedicated connection, so `USE` is safe).
pub async fn execute_in(
    pool: &MySqlPool,
    config: &SimConfig,
    db: Db,
    sql: &str,
) -> Result<(), String> {
    let mut connection = pool.acquire().await.map_err(|e| e.to_string())?;
    sqlx::raw_sql(AssertSqlSafe(format!("USE `{}`", db_name(config, db))))
        .execute(&mut *connection)
        .await
        .map_err(|e| format!("USE {}: {e}", db_name(config, db)))?;
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *connection)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(())
}

pub async fn table_exists(pool: &MySqlPool, database: &str, table: &str) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
    )
    .bind(database)
    .bind(table)
    .fetch_one(pool)
    .await
    .is_ok_and(|count| count > 0)
}

async fn column_exists(pool: &MySqlPool, database: &str, table: &str, column: &str) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM information_schema.columns \
         WHERE table_schema = ? AND table_name = ? AND column_name = ?",
    )
    .bind(database)
    .bind(table)
    .bind(column)
    .fetch_one(pool)
    .await
    .is_ok_and(|count| count > 0)
}

/// The newest version recorded in `rm.oms_version`, when the table and a row exist.
pub async fn recorded_version(pool: &MySqlPool, config: &SimConfig) -> Option<String> {
    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CAST(version AS CHAR) FROM `{}`.oms_version",
        config.drc_rm_db
    )))
    .fetch_all(pool)
    .await
    .ok()?;
    rows.into_iter()
        .filter_map(|text| parse_version(&text).map(|v| (v, text)))
        .max()
        .map(|(_, text)| text)
}

/// True when `oms_version` records `version` (or has no row) and every migration up to it has
/// left its marker.
pub async fn is_at_version(pool: &MySqlPool, config: &SimConfig, version: Version) -> bool {
    let recorded = recorded_version(pool, config)
        .await
        .and_then(|text| parse_version(&text));
    // A deployment without `oms_version` rows (an older installation) is judged by its schema.
    if recorded.is_some_and(|recorded| recorded != version) {
        return false;
    }
    for migration in LADDER.iter().filter(|m| m.version <= version) {
        let database = db_name(config, migration.db);
        let present = match migration.marker_column {
            None => table_exists(pool, database, migration.marker_table).await,
            Some(column) => column_exists(pool, database, migration.marker_table, column).await,
        };
        if !present {
            return false;
        }
    }
    true
}

/// Inserts or refreshes this host in cm `host`, in its region's resource group.
pub async fn register_host(pool: &MySqlPool, config: &SimConfig, host_ip: &str, online: bool) {
    if !table_exists(pool, &config.drc_cm_db, "host").await {
        return;
    }
    let cm = &config.drc_cm_db;
    let _ = sqlx::query(AssertSqlSafe(format!(
        "INSERT IGNORE INTO `{cm}`.resource_group(name) VALUES (?)"
    )))
    .bind(config.region())
    .execute(pool)
    .await;
    let status = if online { "ONLINE" } else { "OFFLINE" };
    let result = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO `{cm}`.host(ip, host_status, resource_group_id) \
         SELECT ?, ?, id FROM `{cm}`.resource_group WHERE name = ? \
         ON DUPLICATE KEY UPDATE host_status = VALUES(host_status)"
    )))
    .bind(host_ip)
    .bind(status)
    .bind(config.region())
    .execute(pool)
    .await;
    if let Err(error) = result {
        crate::service_warning(&format!("cannot register host {host_ip}: {error}"));
    }
}

pub async fn mark_offline(pool: &MySqlPool, config: &SimConfig, host_ip: &str) {
    let _ = sqlx::query(AssertSqlSafe(format!(
        "UPDATE `{}`.host SET host_status = 'OFFLINE' WHERE ip = ?",
        config.drc_cm_db
    )))
    .bind(host_ip)
    .execute(pool)
    .await;
}

/// One heartbeat: a `heatbeat_sequence` row and this host's `heart_beat` row.
pub async fn heartbeat(pool: &MySqlPool, config: &SimConfig, host_ip: &str) {
    let hb = &config.drc_cm_heartbeat_db;
    let sequence = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO `{hb}`.heatbeat_sequence(gmt_modified) VALUES (NOW())"
    )))
    .execute(pool)
    .await;
    let beat = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO `{hb}`.heart_beat(task_name, host_ip, gmt_modified) VALUES ('oms-server', ?, NOW()) \
         ON DUPLICATE KEY UPDATE gmt_modified = NOW()"
    )))
    .bind(host_ip)
    .execute(pool)
    .await;
    if let Some(error) = sequence.err().or(beat.err()) {
        crate::service_warning(&format!("heartbeat failed: {error}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("4.2.9-CE"), Some((4, 2, 9)));
        assert!(parse_version("4.2.10").unwrap() > parse_version("4.2.9").unwrap());
        assert_eq!(parse_version("4.2"), None);
        assert_eq!(version_text((4, 1, 1)), "4.1.1-CE");
    }

    #[test]
    fn the_ladder_climbs_and_every_version_after_the_base_changes_something() {
        assert!(
            LADDER
                .windows(2)
                .all(|pair| pair[0].version <= pair[1].version)
        );
        for version in [(4, 2, 0), (4, 2, 8), (4, 2, 9)] {
            assert!(
                LADDER.iter().any(|m| m.version == version),
                "{version:?} adds nothing"
            );
        }
    }
}
