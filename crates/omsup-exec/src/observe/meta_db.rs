//! The meta database, read-only, through one short-lived sqlx connection: `oms_version`,
//! `ha.config`, `cm.host`, and each database's existence and size.

use std::collections::BTreeMap;

use omsup_engine::observed::{MetaDbReach, ObservedDatabase, ObservedMetaDb};
use omsup_model::{OmsVersion, PlanFile};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{AssertSqlSafe, Connection};

use super::{CONNECT_TIMEOUT, ObserveError, READ_TIMEOUT, within};
use crate::secrets::MetaPassword;

/// Observes the meta database; an unreachable one is [`MetaDbReach::Unreachable`] plus the
/// problem.
pub(crate) async fn observe_meta_db(
    plan: &PlanFile,
    password: &MetaPassword,
) -> (MetaDbReach, Option<ObserveError>) {
    match read_meta_db(plan, password).await {
        Ok(observed) => (MetaDbReach::Reachable(Box::new(observed)), None),
        Err(problem) => (
            MetaDbReach::Unreachable {
                error: problem.cause_line(),
            },
            Some(problem),
        ),
    }
}

async fn read_meta_db(
    plan: &PlanFile,
    password: &MetaPassword,
) -> Result<ObservedMetaDb, ObserveError> {
    let meta = &plan.meta_db;
    let mut names = vec![meta.rm.clone(), meta.cm.clone()];
    for region in &plan.regions {
        if !names.contains(&region.cm_hb) {
            names.push(region.cm_hb.clone());
        }
    }
    if let Some(bad) = names
        .iter()
        .find(|name| !omsup_model::validate::is_database_name(name))
    {
        return Err(ObserveError::DatabaseName(bad.clone()));
    }
    tracing::info!(host = %meta.host, port = meta.port, "observing the meta database");
    let options = MySqlConnectOptions::new()
        .host(&meta.host)
        .port(meta.port)
        .username(&meta.user)
        .password(password.expose());
    let mut connection = within(CONNECT_TIMEOUT, MySqlConnection::connect_with(&options))
        .await
        .map_err(|source| ObserveError::MetaUnreachable {
            host: meta.host.clone(),
            port: meta.port,
            user: meta.user.clone(),
            source,
        })?;
    let result = read_with(&mut connection, plan, &names).await;
    let _ = connection.close().await;
    result
}

async fn read_with(
    connection: &mut MySqlConnection,
    plan: &PlanFile,
    names: &[String],
) -> Result<ObservedMetaDb, ObserveError> {
    let meta = &plan.meta_db;
    let read_error = |what: &str| {
        let what = what.to_owned();
        move |source| ObserveError::MetaRead { what, source }
    };

    // Which databases exist, their sizes, and which of the tables we read exist.
    let mut databases = BTreeMap::new();
    for name in names {
        let exists: Option<String> = within(
            READ_TIMEOUT,
            sqlx::query_scalar(
                "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            )
            .bind(name)
            .fetch_optional(&mut *connection),
        )
        .await
        .map_err(read_error(&format!("whether database `{name}` exists")))?;
        let size: Option<i64> = within(
            READ_TIMEOUT,
            sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS SIGNED) \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            )
            .bind(name)
            .fetch_optional(&mut *connection),
        )
        .await
        .map_err(read_error(&format!("the size of `{name}`")))?;
        databases.insert(
            name.clone(),
            ObservedDatabase {
                exists: exists.is_some(),
                size_bytes: size.unwrap_or(0).max(0) as u64,
                heartbeat_rows: None,
            },
        );
    }

    for region in &plan.regions {
        let name = &region.cm_hb;
        if table_exists(connection, name, "heatbeat_sequence").await? {
            let rows: i64 = within(
                READ_TIMEOUT,
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM `{name}`.heatbeat_sequence"
                )))
                .fetch_one(&mut *connection),
            )
            .await
            .map_err(read_error(&format!("`{name}.heatbeat_sequence`")))?;
            if let Some(database) = databases.get_mut(name) {
                database.heartbeat_rows = Some(rows.max(0) as u64);
            }
        }
    }

    let rm = &meta.rm;
    let oms_version = if table_exists(connection, rm, "oms_version").await? {
        let versions: Vec<String> = within(
            READ_TIMEOUT,
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT CAST(version AS CHAR) FROM `{rm}`.oms_version"
            )))
            .fetch_all(&mut *connection),
        )
        .await
        .map_err(read_error(&format!("`{rm}.oms_version`")))?;
        versions
            .iter()
            .filter_map(|text| text.trim().parse::<OmsVersion>().ok())
            .max()
    } else {
        None
    };

    let ha_config = if table_exists(connection, rm, "oms_normal_config").await? {
        let text: Option<String> = within(
            READ_TIMEOUT,
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT CAST(cfg_value AS CHAR) FROM `{rm}`.oms_normal_config WHERE cfg_name = 'ha.config'"
            )))
            .fetch_optional(&mut *connection),
        )
        .await
        .map_err(read_error(&format!("`ha.config` in `{rm}.oms_normal_config`")))?;
        text.map(|text| {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()))
        })
    } else {
        None
    };

    let cm = &meta.cm;
    let mut hosts = BTreeMap::new();
    if table_exists(connection, cm, "host").await? {
        let rows: Vec<(String, String)> = within(
            READ_TIMEOUT,
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT CAST(ip AS CHAR), CAST(host_status AS CHAR) FROM `{cm}`.host"
            )))
            .fetch_all(&mut *connection),
        )
        .await
        .map_err(read_error(&format!("`{cm}.host`")))?;
        hosts.extend(rows);
    }

    let column_statistics =
        table_exists(connection, "information_schema", "COLUMN_STATISTICS").await?;

    Ok(ObservedMetaDb {
        oms_version,
        ha_config,
        hosts,
        databases,
        column_statistics,
    })
}

async fn table_exists(
    connection: &mut MySqlConnection,
    database: &str,
    table: &str,
) -> Result<bool, ObserveError> {
    let found: Option<i64> = within(
        READ_TIMEOUT,
        sqlx::query_scalar(
            "SELECT CAST(1 AS SIGNED) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        )
        .bind(database)
        .bind(table)
        .fetch_optional(&mut *connection),
    )
    .await
    .map_err(|source| ObserveError::MetaRead {
        what: format!("whether `{database}.{table}` exists"),
        source,
    })?;
    Ok(found.is_some())
}
