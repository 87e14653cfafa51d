//! `oms-sim init`, behind `/root/docker_init.sh`: fresh install, the dangerous wipe without
//! `IS_UPGRADE=true`, or a row-keeping migration from the recorded version to our own.

use std::io::Write as _;
use std::time::Duration;

use sqlx::{AssertSqlSafe, MySqlPool};

use crate::schema::{self, BASE_TABLES_PROBE, Db, Version};
use crate::{Paths, SimConfig, knob, knob_on, own_version_text};

/// The message OMS prints when the recorded version is missing or older than 4.1.1.
const VERSION_TOO_OLD: &str = "Version before 4.1.1 is not allowed to upgrade";
const COMPLETED: &str = "[Completed] All initialization steps are executed";

/// Writes each line to stdout and to `/home/admin/logs/docker_init.log`.
struct InitLog {
    file: Option<std::fs::File>,
}

impl InitLog {
    fn open(paths: &Paths) -> Self {
        let _ = std::fs::create_dir_all(&paths.logs);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.logs.join("docker_init.log"))
            .ok();
        Self { file }
    }

    fn line(&mut self, text: &str) {
        println!("{text}");
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{text}");
        }
    }
}

pub async fn run() -> Result<(), String> {
    let paths = Paths::from_env();
    let mut log = InitLog::open(&paths);
    let result = run_logged(&paths, &mut log).await;
    if let Err(message) = &result {
        log.line(&format!("[ERROR] {message}"));
    }
    result
}

async fn run_logged(paths: &Paths, log: &mut InitLog) -> Result<(), String> {
    let config = SimConfig::load(paths)?;
    let own =
        schema::parse_version(&own_version_text()).ok_or("OMS_SIM_VERSION is not a version")?;
    let host_ip = std::env::var("OMS_HOST_IP").unwrap_or_default();
    log.line(&format!(
        "[Step 1] OMS {} initialization on {host_ip}",
        own_version_text()
    ));

    let not_running = crate::supervisor::not_running(paths);
    if !not_running.is_empty() {
        return Err(format!(
            "supervisor components are not all RUNNING ({}): wait for `supervisorctl status` before init",
            not_running.join(", ")
        ));
    }
    // The real init takes minutes; each of its three steps takes a third of this.
    let step_time = Duration::from_millis(
        knob(paths, "OMS_SIM_INIT_MS", "sim-init-ms")
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(300)
            / 3,
    );
    tokio::time::sleep(step_time).await;

    if knob_on(paths, "OMS_SIM_INIT_HANG", "sim-init-hang") {
        log.line("[Step 2] waiting for the meta database (simulated hang)");
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    // The file knob is deleted when it fires; the environment knob leaves a `.fired` marker in
    // the run directory, so both fail exactly once.
    let fired_marker = paths.run.join("sim-init-fail-once.fired");
    let fail_file = paths.run.join("sim-init-fail-once");
    let fires = if fail_file.exists() {
        let _ = std::fs::remove_file(&fail_file);
        true
    } else if knob_on(paths, "OMS_SIM_INIT_FAIL_ONCE", "sim-init-fail-once")
        && !fired_marker.exists()
    {
        let _ = std::fs::create_dir_all(&paths.run);
        let _ = std::fs::write(&fired_marker, "");
        true
    } else {
        false
    };
    if fires {
        return Err("simulated init failure (fault knob): cannot apply schema changes".to_owned());
    }

    let pool = crate::connect(&config, Duration::from_secs(30)).await?;
    for db in [Db::Rm, Db::Cm, Db::Hb] {
        let name = schema::db_name(&config, db);
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE IF NOT EXISTS `{name}`"
        )))
        .execute(&pool)
        .await
        .map_err(|e| format!("cannot create database {name}: {e}"))?;
    }

    tokio::time::sleep(step_time).await;
    let existing = schema::table_exists(&pool, &config.drc_rm_db, BASE_TABLES_PROBE).await;
    let is_upgrade = std::env::var("IS_UPGRADE").is_ok_and(|value| value == "true");
    if !existing {
        log.line("[Step 2] empty meta database: installing a new deployment");
        install(&pool, &config, own, &host_ip).await?;
    } else if !is_upgrade {
        log.line("[Step 2] IS_UPGRADE is not true: re-initialising the meta database; all existing meta data is dropped");
        wipe(&pool, &config).await?;
        install(&pool, &config, own, &host_ip).await?;
    } else {
        let recorded = schema::recorded_version(&pool, &config).await;
        let from = recorded.as_deref().and_then(schema::parse_version);
        let Some(from) = from.filter(|v| *v >= (4, 1, 1)) else {
            return Err(VERSION_TOO_OLD.to_owned());
        };
        if from > own {
            return Err(format!(
                "the meta database is at {}, newer than this OMS {}: downgrade is not supported",
                schema::version_text(from),
                schema::version_text(own)
            ));
        }
        log.line(&format!(
            "[Step 2] upgrading the meta schema from {} to {}",
            schema::version_text(from),
            schema::version_text(own)
        ));
        migrate(&pool, &config, from, own, log).await?;
        record_version(&pool, &config, own).await?;
    }
    tokio::time::sleep(step_time).await;
    if knob_on(paths, "OMS_SIM_INIT_INCOMPLETE", "sim-init-incomplete") {
        log.line("[Step 3] creating resource tags (simulated: the script stops here and exits 0)");
        return Ok(());
    }
    schema::register_host(&pool, &config, &host_ip, true).await;
    log.line(&format!("[Step 3] host {host_ip} is ONLINE"));
    log.line(COMPLETED);
    Ok(())
}

async fn install(
    pool: &MySqlPool,
    config: &SimConfig,
    own: Version,
    host_ip: &str,
) -> Result<(), String> {
    for (db, sql) in schema::BASE {
        schema::execute_in(pool, config, *db, sql).await?;
    }
    for migration in schema::LADDER.iter().filter(|m| m.version <= own) {
        schema::execute_in(pool, config, migration.db, migration.sql).await?;
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT IGNORE INTO `{}`.oms_normal_config(cfg_name, cfg_value) VALUES ('ha.config', ?)",
        config.drc_rm_db
    )))
    .bind(schema::DEFAULT_HA_CONFIG)
    .execute(pool)
    .await
    .map_err(|e| format!("cannot write ha.config: {e}"))?;
    record_version(pool, config, own).await?;
    schema::register_host(pool, config, host_ip, true).await;
    Ok(())
}

async fn migrate(
    pool: &MySqlPool,
    config: &SimConfig,
    from: Version,
    to: Version,
    log: &mut InitLog,
) -> Result<(), String> {
    if from < to {
        refuse_unmigratable(pool, config, to).await?;
    }
    // Re-creating base tables is a no-op on a healthy deployment and repairs a partial one.
    for (db, sql) in schema::BASE {
        schema::execute_in(pool, config, *db, sql).await?;
    }
    for migration in schema::LADDER
        .iter()
        .filter(|m| m.version > from && m.version <= to)
    {
        log.line(&format!(
            "  applying {} change to {}",
            schema::version_text(migration.version),
            migration.marker_table
        ));
        schema::execute_in(pool, config, migration.db, migration.sql).await?;
    }
    Ok(())
}

/// A project status no version's migration can carry over: an upgrade that finds a project in
/// it refuses before changing anything (the simulator's data-driven init failure: a row the
/// migration refuses travels with the data, into backups and rehearsal copies alike).
pub const UNMIGRATABLE_STATUS: &str = "UNMIGRATABLE";

async fn refuse_unmigratable(
    pool: &MySqlPool,
    config: &SimConfig,
    to: Version,
) -> Result<(), String> {
    let refused: Option<(i64, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, CAST(name AS CHAR) FROM `{}`.oms_project WHERE status = ? ORDER BY id LIMIT 1",
        config.drc_rm_db
    )))
    .bind(UNMIGRATABLE_STATUS)
    .fetch_optional(pool)
    .await
    .map_err(|e| format!("cannot read the projects: {e}"))?;
    match refused {
        Some((id, name)) => Err(format!(
            "cannot migrate project {id} (`{name}`) to {}: its status `{UNMIGRATABLE_STATUS}` has no equivalent in this version",
            schema::version_text(to)
        )),
        None => Ok(()),
    }
}

async fn record_version(pool: &MySqlPool, config: &SimConfig, own: Version) -> Result<(), String> {
    sqlx::query(AssertSqlSafe(format!(
        "REPLACE INTO `{}`.oms_version(version) VALUES (?)",
        config.drc_rm_db
    )))
    .bind(schema::version_text(own))
    .execute(pool)
    .await
    .map_err(|e| format!("cannot record the version: {e}"))?;
    Ok(())
}

async fn wipe(pool: &MySqlPool, config: &SimConfig) -> Result<(), String> {
    for db in [Db::Rm, Db::Cm, Db::Hb] {
        let name = schema::db_name(config, db);
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ?",
        )
        .bind(name)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot list tables of {name}: {e}"))?;
        for table in tables {
            sqlx::query(AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS `{name}`.`{table}`"
            )))
            .execute(pool)
            .await
            .map_err(|e| format!("cannot drop {name}.{table}: {e}"))?;
        }
    }
    Ok(())
}
