//! The upgrade's changes to the meta database: HA off and back, heartbeat pruning, and the
//! documented `oms_version` remedy. Each one reads first, so running it twice is harmless.

use std::time::Duration;

use omsup_engine::outputs::HaConfig;
use omsup_model::OmsVersion;
use omsup_model::plan::{HaAfter, HaPolicy};
use sqlx::{AssertSqlSafe, MySqlPool};

#[derive(Debug, thiserror::Error)]
pub enum MetaActionError {
    #[error("`{0}` is not a valid database name")]
    InvalidDatabaseName(String),
    #[error("{what} in `{database}`")]
    Sql {
        what: &'static str,
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("`ha.config` in `{database}.oms_normal_config` is missing")]
    HaConfigMissing { database: String },
    #[error("`ha.config` in `{database}.oms_normal_config` is not a JSON object: {reason}")]
    HaConfigInvalid { database: String, reason: String },
}

fn check_identifier(name: &str) -> Result<(), MetaActionError> {
    let valid = omsup_model::validate::is_database_name(name);
    if valid {
        Ok(())
    } else {
        Err(MetaActionError::InvalidDatabaseName(name.to_owned()))
    }
}

fn sql_error(what: &'static str, database: &str) -> impl FnOnce(sqlx::Error) -> MetaActionError {
    let database = database.to_owned();
    move |source| MetaActionError::Sql {
        what,
        database,
        source,
    }
}

/// `ha.config`'s value, key order kept as stored.
pub async fn read_ha_config(pool: &MySqlPool, rm: &str) -> Result<HaConfig, MetaActionError> {
    check_identifier(rm)?;
    let text: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CAST(cfg_value AS CHAR) FROM `{rm}`.oms_normal_config WHERE cfg_name = 'ha.config'"
    )))
    .fetch_optional(pool)
    .await
    .map_err(sql_error("cannot read `ha.config`", rm))?;
    let text = text.ok_or_else(|| MetaActionError::HaConfigMissing {
        database: rm.to_owned(),
    })?;
    HaConfig::parse(&text).map_err(|error| MetaActionError::HaConfigInvalid {
        database: rm.to_owned(),
        reason: error.to_string(),
    })
}

async fn write_ha_config(
    pool: &MySqlPool,
    rm: &str,
    value: &HaConfig,
) -> Result<(), MetaActionError> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE `{rm}`.oms_normal_config SET cfg_value = ? WHERE cfg_name = 'ha.config'"
    )))
    .bind(value.to_json_text())
    .execute(pool)
    .await
    .map_err(sql_error("cannot write `ha.config`", rm))?;
    Ok(())
}

/// What turning HA off found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct HaOffOutcome {
    /// The value before, to be restored after the upgrade.
    pub previous: HaConfig,
    /// False when HA was already off (nothing written).
    pub changed: bool,
}

/// Sets `"enable": false`, keeping every other key exactly as it was.
pub async fn ha_off(pool: &MySqlPool, rm: &str) -> Result<HaOffOutcome, MetaActionError> {
    let previous = read_ha_config(pool, rm).await?;
    let mut next = previous.clone();
    next.set_enable(false);
    let changed = next != previous;
    if changed {
        write_ha_config(pool, rm, &next).await?;
    }
    Ok(HaOffOutcome { previous, changed })
}

/// Writes the value `ha.config` takes after the upgrade (see [`restored_ha_config`]).
pub async fn ha_restore(
    pool: &MySqlPool,
    rm: &str,
    previous: &HaConfig,
    policy: &HaPolicy,
    ha_off_window: Duration,
) -> Result<HaConfig, MetaActionError> {
    let current = read_ha_config(pool, rm).await?;
    let next = restored_ha_config(previous, policy, ha_off_window);
    if next != current {
        write_ha_config(pool, rm, &next).await?;
    }
    Ok(next)
}

/// The value after the upgrade: `previous` with `enable` per the policy, and, when
/// `perceiveStoreClientCheckpoint` ends up false, `refetchStoreIntervalMin` raised to more than
/// the time HA was off (T2 − T1, in whole minutes), as OMS documents. Every other key is kept.
pub fn restored_ha_config(
    previous: &HaConfig,
    policy: &HaPolicy,
    ha_off_window: Duration,
) -> HaConfig {
    let mut next = previous.clone();
    let enable = match policy.after {
        HaAfter::Restore => previous.enable(),
        HaAfter::On => true,
        HaAfter::Off => false,
    };
    next.set_enable(enable);
    if let Some(perceive) = policy.perceive_store_client_checkpoint {
        next.set_perceive_store_client_checkpoint(perceive);
    }
    if !next.perceive_store_client_checkpoint() {
        let window_minutes = ha_off_window.as_secs().div_ceil(60);
        let required = window_minutes + 1;
        if next.refetch_store_interval_min() < required {
            next.set_refetch_store_interval_min(required);
        }
    }
    next
}

/// What pruning a heartbeat database did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneOutcome {
    /// `max(id)` of `heatbeat_sequence`, the one row kept (`None` for an empty table).
    pub kept_id: Option<i64>,
    pub deleted_rows: u64,
}

/// Rows one `DELETE` of [`prune_heartbeats`] removes at most.
const PRUNE_BATCH: u64 = 20_000;

/// Deletes every `heatbeat_sequence` row below `max(id)`. Reads `max(id)` first and deletes
/// below it: the runbook's single statement (a subquery on the target table) is refused by
/// MySQL 8 with error 1093.
pub async fn prune_heartbeats(
    pool: &MySqlPool,
    cm_hb: &str,
) -> Result<PruneOutcome, MetaActionError> {
    check_identifier(cm_hb)?;
    let kept_id: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CAST(MAX(id) AS SIGNED) FROM `{cm_hb}`.heatbeat_sequence"
    )))
    .fetch_one(pool)
    .await
    .map_err(sql_error(
        "cannot read `max(id)` of `heatbeat_sequence`",
        cm_hb,
    ))?;
    let Some(kept_id) = kept_id else {
        return Ok(PruneOutcome {
            kept_id: None,
            deleted_rows: 0,
        });
    };
    // Short batches: the prune runs while OMS still writes heartbeats, and one long delete
    // would hold its locks (and the undo log) for seconds on a large table.
    let mut deleted_rows = 0;
    loop {
        let deleted = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM `{cm_hb}`.heatbeat_sequence WHERE id < ? LIMIT {PRUNE_BATCH}"
        )))
        .bind(kept_id)
        .execute(pool)
        .await
        .map_err(sql_error("cannot prune `heatbeat_sequence`", cm_hb))?;
        deleted_rows += deleted.rows_affected();
        if deleted.rows_affected() < PRUNE_BATCH {
            break;
        }
    }
    Ok(PruneOutcome {
        kept_id: Some(kept_id),
        deleted_rows,
    })
}

/// The documented remedy for `Version before 4.1.1 is not allowed to upgrade`: create
/// `oms_version` in rm when missing and record the old version in it.
pub async fn record_oms_version(
    pool: &MySqlPool,
    rm: &str,
    version: OmsVersion,
) -> Result<(), MetaActionError> {
    check_identifier(rm)?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS `{rm}`.oms_version (\
           version varchar(64) NOT NULL PRIMARY KEY, \
           gmt_modified timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )))
    .execute(pool)
    .await
    .map_err(sql_error("cannot create `oms_version`", rm))?;
    sqlx::query(AssertSqlSafe(format!(
        "REPLACE INTO `{rm}`.oms_version(version) VALUES (?)"
    )))
    .bind(version.to_string())
    .execute(pool)
    .await
    .map_err(sql_error("cannot record the version in `oms_version`", rm))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTED_DEFAULT: &str = r#"{"enable":true,"enableHost":false,"enableStore":true,"perceiveStoreClientCheckpoint":false,"enableConnector":true,"enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"checkRequestIntervalSec":600,"checkJdbcWriterIntervalSec":600,"checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"clearAbnormalResourceHours":72,"refetchStoreIntervalMin":30}"#;

    fn documented_default_with_ha_on() -> HaConfig {
        HaConfig::parse(DOCUMENTED_DEFAULT).unwrap()
    }

    #[test]
    fn restore_keeps_every_other_key_and_raises_refetch_above_the_window() {
        let previous = documented_default_with_ha_on();
        let restored = restored_ha_config(
            &previous,
            &HaPolicy::default(),
            Duration::from_secs(45 * 60 + 1),
        );
        assert!(restored.enable());
        assert_eq!(
            restored.refetch_store_interval_min(),
            47,
            "46 whole minutes, plus one"
        );
        // Every other key kept, in its place.
        assert_eq!(
            restored.to_json_text(),
            DOCUMENTED_DEFAULT.replace(
                r#""refetchStoreIntervalMin":30"#,
                r#""refetchStoreIntervalMin":47"#
            )
        );
    }

    #[test]
    fn a_short_window_keeps_a_larger_refetch_interval() {
        let previous = documented_default_with_ha_on();
        let restored = restored_ha_config(&previous, &HaPolicy::default(), Duration::from_secs(90));
        assert_eq!(restored, previous);
    }

    #[test]
    fn perceive_checkpoint_true_leaves_refetch_alone_and_policy_sets_enable() {
        let previous = documented_default_with_ha_on();
        let policy = HaPolicy {
            after: HaAfter::Off,
            perceive_store_client_checkpoint: Some(true),
        };
        let restored = restored_ha_config(&previous, &policy, Duration::from_secs(3 * 3600));
        assert!(!restored.enable());
        assert!(restored.perceive_store_client_checkpoint());
        assert_eq!(restored.refetch_store_interval_min(), 30);
    }

    #[test]
    fn key_order_survives_the_round_trip() {
        let text = r#"{"enable":true,"zeta":1,"alpha":2}"#;
        let mut off = HaConfig::parse(text).unwrap();
        off.set_enable(false);
        assert_eq!(off.to_json_text(), r#"{"enable":false,"zeta":1,"alpha":2}"#);
    }
}
