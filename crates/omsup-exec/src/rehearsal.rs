//! `omsup rehearse`'s side effects, every one on scratch things that are the rehearsal's own:
//! the meta databases copied into scratch databases on the same server ([`copy_database`]:
//! `CREATE TABLE ... LIKE` and `INSERT ... SELECT` per table, read committed, so the live
//! tables are read without locks), a config.yaml pointing at the copies ([`rehearsal_config`],
//! put into the throwaway container through Docker's archive API, never on a disk), the
//! throwaway container's labels, and finding and removing what a rehearsal left
//! ([`leftover_databases`], [`leftover_containers`]).
//!
//! A scratch database is `<deployment>_rh_<id>_<role>` (the deployment's name reduced to
//! `[a-z0-9_]` and cut so the whole stays under MySQL's 64 characters; role `rm`, `cm`,
//! `hb1`...), and its first table, created before anything is copied, is
//! [`MARKER_TABLE`] with the rehearsal id, the deployment and the source database: `--clean`
//! drops only databases that carry the marker of this deployment (or an empty database with a
//! rehearsal's exact name, left by a kill between `CREATE DATABASE` and the marker). The
//! throwaway container carries [`LABEL_REHEARSAL`] and [`LABEL_REHEARSAL_DEPLOYMENT`].

use std::collections::BTreeMap;
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use omsup_engine::StepId;
use omsup_engine::steps::UpgradePlan;
use omsup_model::{OmsVersion, PlanFile};
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::docker_actions::docker_error;
use crate::executor::StepError;

/// The first table of every scratch database: which rehearsal made it, for which deployment,
/// from which database.
pub const MARKER_TABLE: &str = "omsup_rehearsal_marker";
pub use omsup_engine::container::{LABEL_REHEARSAL, LABEL_REHEARSAL_DEPLOYMENT};
/// Where OMS reads config.yaml, as a directory and a file name (for the archive upload).
const CONFIG_DIR: &str = "/home/admin/conf";
const CONFIG_FILE: &str = "config.yaml";
/// MySQL's limit on a database name.
const MAX_NAME: usize = 64;
/// How much of the deployment's name a scratch name keeps.
const MAX_PREFIX: usize = 40;

/// A fresh rehearsal id: 8 hexadecimal digits (std's per-process random hash keys, mixed with
/// the time).
pub fn new_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:08x}", hasher.finish() as u32)
}

/// One meta database and its scratch copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scratch {
    /// `rm`, `cm`, `hb1`, `hb2`... (the heartbeat databases in plan order).
    pub role: String,
    pub source: String,
    pub name: String,
}

/// The deployment's name as the start of a scratch database name: lower case, `[a-z0-9_]`,
/// at most [`MAX_PREFIX`] characters.
pub fn scratch_prefix(deployment: &str) -> String {
    let mut prefix: String = deployment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    prefix.truncate(MAX_PREFIX);
    prefix
}

/// `<prefix>_rh_<id>_<role>`.
pub fn scratch_name(deployment: &str, id: &str, role: &str) -> String {
    let name = format!("{}_rh_{id}_{role}", scratch_prefix(deployment));
    debug_assert!(name.len() <= MAX_NAME, "{name} is too long");
    name
}

/// The rehearsal's copies of rm, cm and every region's cm_hb (each database once).
pub fn scratch_databases(plan: &PlanFile, id: &str) -> Vec<Scratch> {
    let deployment = &plan.deployment.name;
    let mut all = vec![
        Scratch {
            role: "rm".into(),
            source: plan.meta_db.rm.clone(),
            name: scratch_name(deployment, id, "rm"),
        },
        Scratch {
            role: "cm".into(),
            source: plan.meta_db.cm.clone(),
            name: scratch_name(deployment, id, "cm"),
        },
    ];
    for region in &plan.regions {
        if all.iter().any(|s| s.source == region.cm_hb) {
            continue;
        }
        let role = format!("hb{}", all.len() - 1);
        all.push(Scratch {
            name: scratch_name(deployment, id, &role),
            role,
            source: region.cm_hb.clone(),
        });
    }
    all
}

/// The throwaway container's name: `omsup-rehearsal-<prefix>-<id>`.
pub fn container_name(deployment: &str, id: &str) -> String {
    format!("omsup-rehearsal-{}-{id}", scratch_prefix(deployment))
}

/// Whether `name` is a scratch name of `deployment` (any rehearsal id, any role).
fn is_scratch_name_of(name: &str, deployment: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!("{}_rh_", scratch_prefix(deployment))) else {
        return false;
    };
    let Some((id, role)) = rest.split_once('_') else {
        return false;
    };
    id.len() == 8
        && id.chars().all(|c| c.is_ascii_hexdigit())
        && (role == "rm"
            || role == "cm"
            || role
                .strip_prefix("hb")
                .is_some_and(|n| n.parse::<u32>().is_ok()))
}

/// What copying one database measured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyMeasure {
    pub source: String,
    pub scratch: String,
    pub tables: usize,
    pub rows: u64,
    /// The source's data and index bytes (information_schema), what a dump reads.
    pub bytes: u64,
    pub took_ms: u64,
}

fn sql_failure(step: &StepId, what: String) -> impl Fn(sqlx::Error) -> StepError + '_ {
    move |error| StepError::other(step, format!("{what}: {error}"))
}

/// Copies `scratch.source` into a new database `scratch.name`, marked first. Refuses when a
/// database of that name exists (nothing of anyone else's is ever overwritten).
pub async fn copy_database(
    pool: &MySqlPool,
    scratch: &Scratch,
    deployment: &str,
    id: &str,
    step: &StepId,
) -> Result<CopyMeasure, StepError> {
    let started = Instant::now();
    let (source, name) = (&scratch.source, &scratch.name);
    for database in [source, name] {
        if !omsup_model::validate::is_database_name(database) {
            return Err(StepError::other(
                step,
                format!("`{database}` is not a database name omsup uses"),
            ));
        }
    }
    let mut connection = pool.acquire().await.map_err(sql_failure(
        step,
        "cannot connect to the meta database".into(),
    ))?;
    // Read committed: `INSERT ... SELECT` reads the live tables without locking their rows.
    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *connection)
        .await
        .map_err(sql_failure(step, "cannot set the isolation level".into()))?;
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name = ?",
    )
    .bind(name)
    .fetch_optional(&mut *connection)
    .await
    .map_err(sql_failure(
        step,
        format!("cannot check whether `{name}` exists"),
    ))?;
    if exists.is_some() {
        return Err(StepError::other(
            step,
            format!("a database named `{name}` exists already; the rehearsal leaves it alone"),
        ));
    }
    let statements = [
        format!("CREATE DATABASE `{name}`"),
        format!(
            "CREATE TABLE `{name}`.`{MARKER_TABLE}` (rehearsal_id VARCHAR(32) NOT NULL, \
             deployment VARCHAR(64) NOT NULL, source_db VARCHAR(64) NOT NULL, \
             created_unix BIGINT NOT NULL)"
        ),
    ];
    for statement in statements {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *connection)
            .await
            .map_err(sql_failure(
                step,
                format!("cannot create the scratch database `{name}`"),
            ))?;
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO `{name}`.`{MARKER_TABLE}` VALUES (?, ?, ?, ?)"
    )))
    .bind(id)
    .bind(deployment)
    .bind(source)
    .bind(crate::time::unix_now() as i64)
    .execute(&mut *connection)
    .await
    .map_err(sql_failure(step, format!("cannot mark `{name}`")))?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .bind(source)
    .fetch_all(&mut *connection)
    .await
    .map_err(sql_failure(
        step,
        format!("cannot list the tables of `{source}`"),
    ))?;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) \
         FROM information_schema.tables WHERE table_schema = ?",
    )
    .bind(source)
    .fetch_one(&mut *connection)
    .await
    .map_err(sql_failure(
        step,
        format!("cannot read the size of `{source}`"),
    ))?;
    let mut rows = 0;
    for table in &tables {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE `{name}`.`{table}` LIKE `{source}`.`{table}`"
        )))
        .execute(&mut *connection)
        .await
        .map_err(sql_failure(step, format!("cannot create `{name}.{table}`")))?;
        rows += sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO `{name}`.`{table}` SELECT * FROM `{source}`.`{table}`"
        )))
        .execute(&mut *connection)
        .await
        .map_err(sql_failure(step, format!("cannot copy `{source}.{table}`")))?
        .rows_affected();
    }
    Ok(CopyMeasure {
        source: source.clone(),
        scratch: name.clone(),
        tables: tables.len(),
        rows,
        bytes: bytes.max(0) as u64,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// The scratch databases of `deployment` on the server: marked with its name, or empty with a
/// rehearsal's exact name.
pub async fn leftover_databases(
    pool: &MySqlPool,
    deployment: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let pattern = format!(
        "{}\\_rh\\_%",
        scratch_prefix(deployment).replace('_', "\\_")
    );
    let candidates: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
         WHERE schema_name LIKE ? ORDER BY schema_name",
    )
    .bind(&pattern)
    .fetch_all(pool)
    .await?;
    let mut found = Vec::new();
    for name in candidates {
        if !is_scratch_name_of(&name, deployment) {
            continue;
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ?",
        )
        .bind(&name)
        .fetch_all(pool)
        .await?;
        let ours = if tables.is_empty() {
            true
        } else if tables.iter().any(|t| t == MARKER_TABLE) {
            let marked: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT CAST(deployment AS CHAR) FROM `{name}`.`{MARKER_TABLE}` LIMIT 1"
            )))
            .fetch_optional(pool)
            .await?;
            marked.as_deref() == Some(deployment)
        } else {
            false
        };
        if ours {
            found.push(name);
        }
    }
    Ok(found)
}

/// Drops a scratch database (only ever called with a name [`leftover_databases`] or
/// [`scratch_databases`] gave).
pub async fn drop_scratch_database(pool: &MySqlPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
        .execute(pool)
        .await
        .map(|_| ())
}

/// The throwaway containers of `deployment` on `docker`, running or not.
pub async fn leftover_containers(
    docker: &Docker,
    deployment: &str,
) -> Result<Vec<String>, bollard::errors::Error> {
    let filters: std::collections::HashMap<String, Vec<String>> = [(
        "label".to_owned(),
        vec![format!("{LABEL_REHEARSAL_DEPLOYMENT}={deployment}")],
    )]
    .into();
    let found = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|summary| summary.names?.into_iter().next())
        .map(|name| name.trim_start_matches('/').to_owned())
        .collect())
}

/// Removes a throwaway container, running or not (`docker rm -f -v`).
pub async fn remove_throwaway(docker: &Docker, name: &str) -> Result<(), bollard::errors::Error> {
    match docker
        .remove_container(
            name,
            Some(
                RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
    {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        other => other,
    }
}

/// The node's config.yaml (read from its running container, which is not changed) with
/// `drc_rm_db`, `drc_cm_db` and `drc_cm_heartbeat_db` pointing at the copies. Holds the meta
/// password: it only ever goes into the throwaway container.
pub async fn rehearsal_config(
    docker: &Docker,
    container: &str,
    copies: &BTreeMap<String, String>,
    step: &StepId,
) -> Result<Vec<u8>, StepError> {
    let original = crate::observe::download_config_yaml(docker, container)
        .await
        .map_err(|error| {
            StepError::other(
                step,
                format!("cannot read config.yaml of `{container}`: {error}"),
            )
        })?;
    rewrite_config(&original, copies).map_err(|reason| StepError::other(step, reason))
}

/// config.yaml with each database key whose value `copies` maps replaced by the copy's name.
fn rewrite_config(original: &[u8], copies: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(original).map_err(|e| format!("config.yaml is not YAML: {e}"))?;
    let mapping = yaml
        .as_mapping_mut()
        .ok_or("config.yaml is not a mapping of keys")?;
    for key in ["drc_rm_db", "drc_cm_db", "drc_cm_heartbeat_db"] {
        let current = crate::observe::scalar_text(mapping.get(key))
            .ok_or_else(|| format!("config.yaml has no `{key}`"))?;
        let copy = copies.get(&current).ok_or_else(|| {
            format!("config.yaml's `{key}` (`{current}`) is not a database of the plan")
        })?;
        mapping.insert(key.into(), serde_yaml_ng::Value::String(copy.clone()));
    }
    serde_yaml_ng::to_string(&yaml)
        .map(String::into_bytes)
        .map_err(|e| format!("cannot write config.yaml: {e}"))
}

/// Puts `config` at `/home/admin/conf/config.yaml` in the (created, not started) container,
/// mode 0600, through Docker's archive API.
pub async fn upload_config(
    docker: &Docker,
    container: &str,
    config: &[u8],
) -> Result<(), crate::docker_actions::DockerActionError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(config.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    let archive = builder
        .append_data(&mut header, CONFIG_FILE, config)
        .and_then(|()| builder.into_inner());
    let archive = match archive {
        Ok(archive) => archive,
        Err(error) => {
            return Err(crate::docker_actions::DockerActionError::Docker {
                what: "cannot pack config.yaml for",
                container: container.to_owned(),
                source: bollard::errors::Error::IOError { err: error },
            });
        }
    };
    docker
        .upload_to_container(
            container,
            Some(
                UploadToContainerOptionsBuilder::default()
                    .path(CONFIG_DIR)
                    .build(),
            ),
            bollard::body_full(archive.into()),
        )
        .await
        .map_err(docker_error("cannot put config.yaml into", container))
}

/// What one rehearsal needs: the plan, the connections, where the throwaway container runs.
pub struct Rehearsal<'a> {
    pub plan_file: &'a PlanFile,
    pub plan: &'a UpgradePlan,
    pub pool: &'a MySqlPool,
    /// `[0-9a-f]{8}`: names the scratch databases and the container.
    pub id: String,
    /// The node whose new container the rehearsal mirrors (its config.yaml, its spec).
    pub node_ip: String,
    pub node_docker: &'a Docker,
    /// Where the throwaway container runs.
    pub docker: &'a Docker,
    /// Its network mode (`bridge`, a network's name, or `host` on a host without OMS).
    pub network: String,
    /// Its `OMS_HOST_IP`.
    pub host_ip: String,
}

/// Where a rehearsal is, for the caller's progress (and its failpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Started,
    Finished,
}

/// What a successful rehearsal measured and checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Measures {
    pub copies: Vec<CopyMeasure>,
    /// Loading the image package into the rehearsal's daemon (`None`: it was there already).
    pub image_load_ms: Option<u64>,
    /// Creating and starting the throwaway container.
    pub start_ms: u64,
    /// From its start to its ready line.
    pub ready_ms: u64,
    /// `docker_init.sh`, the remedy's second run included.
    pub init_ms: u64,
    /// Init asked for the `oms_version` remedy (apply will apply it too).
    pub oms_version_remedy: bool,
    /// The schema version the copy reads after init.
    pub schema_version: String,
}

impl<'a> Rehearsal<'a> {
    /// The copies of this rehearsal.
    pub fn scratch(&self) -> Vec<Scratch> {
        scratch_databases(self.plan_file, &self.id)
    }

    pub fn container(&self) -> String {
        container_name(&self.plan_file.deployment.name, &self.id)
    }

    /// Runs the rehearsal up to its checks; removes nothing (the caller's [`Rehearsal::clean`]
    /// does, whatever happened). `on_step` hears each step start and finish.
    pub async fn run(
        &self,
        on_step: &(dyn Fn(&StepId, Phase) + Sync),
    ) -> Result<Measures, StepError> {
        let plan_file = self.plan_file;
        let deployment = &plan_file.deployment.name;
        let timeouts = &plan_file.timeouts;
        let spec = self.plan.new_container(&self.node_ip).ok_or_else(|| {
            StepError::other(
                &StepId::rehearse_start(),
                format!("the plan starts no new container on node {}", self.node_ip),
            )
        })?;
        let node = self
            .plan
            .diff
            .nodes
            .iter()
            .find(|n| n.ip == self.node_ip)
            .ok_or_else(|| {
                StepError::other(
                    &StepId::rehearse_start(),
                    format!("node {} is not in the plan", self.node_ip),
                )
            })?;

        let mut copies = Vec::new();
        for scratch in self.scratch() {
            let step = StepId::rehearse_copy(&scratch.source);
            on_step(&step, Phase::Started);
            copies.push(copy_database(self.pool, &scratch, deployment, &self.id, &step).await?);
            on_step(&step, Phase::Finished);
        }
        let names: BTreeMap<String, String> = self
            .scratch()
            .into_iter()
            .map(|s| (s.source, s.name))
            .collect();
        let scratch_rm = &names[&plan_file.meta_db.rm];
        let scratch_cm = &names[&plan_file.meta_db.cm];

        let step = StepId::rehearse_load_image();
        on_step(&step, Phase::Started);
        let image_load_ms = if self
            .docker
            .inspect_image(&plan_file.image.tag)
            .await
            .is_ok()
        {
            None
        } else {
            let started = Instant::now();
            crate::docker_actions::load_image(
                self.docker,
                &plan_file.image.package,
                &plan_file.image.tag,
                |_| {},
            )
            .await
            .map_err(StepError::docker(&step))?;
            Some(started.elapsed().as_millis() as u64)
        };
        on_step(&step, Phase::Finished);

        let step = StepId::rehearse_start();
        on_step(&step, Phase::Started);
        let started = Instant::now();
        // The copy's HA off: a throwaway OMS must never act on the deployment's hosts.
        crate::meta_actions::ha_off(self.pool, scratch_rm)
            .await
            .map_err(StepError::meta(&step))?;
        let config = rehearsal_config(self.node_docker, &node.container, &names, &step).await?;
        let name = self.container();
        let spec = omsup_engine::container::rehearsal_spec(
            spec,
            &name,
            &self.network,
            &self.host_ip,
            deployment,
            &self.id,
        );
        let old = self
            .node_docker
            .inspect_container(&node.container, None)
            .await
            .map_err(docker_error("cannot inspect container", &node.container))
            .map_err(StepError::docker(&step))?;
        let old_env = crate::docker_spec::container_env(&old);
        let docker_err = StepError::docker(&step);
        crate::docker_actions::create_container(self.docker, &spec, &self.id, &old_env)
            .await
            .map_err(&docker_err)?;
        upload_config(self.docker, &name, &config)
            .await
            .map_err(&docker_err)?;
        crate::docker_actions::start_container(self.docker, &name)
            .await
            .map_err(&docker_err)?;
        let start_ms = started.elapsed().as_millis() as u64;
        on_step(&step, Phase::Finished);

        let step = StepId::rehearse_wait_ready();
        on_step(&step, Phase::Started);
        let ready =
            crate::docker_actions::wait_ready(self.docker, &name, timeouts.readiness.as_duration())
                .await
                .map_err(StepError::docker(&step))?;
        on_step(&step, Phase::Finished);

        let before = self.row_counts(&StepId::rehearse_check()).await?;
        let step = StepId::rehearse_init();
        on_step(&step, Phase::Started);
        let (outcome, oms_version_remedy) = crate::apply::run_init_judged(
            self.docker,
            (&name, &self.host_ip),
            (self.pool, scratch_rm),
            self.plan.diff.from,
            timeouts,
            &step,
        )
        .await?;
        on_step(&step, Phase::Finished);

        let step = StepId::rehearse_check();
        on_step(&step, Phase::Started);
        let schema_version = self.check(&step, scratch_rm, scratch_cm, &before).await?;
        on_step(&step, Phase::Finished);
        Ok(Measures {
            copies,
            image_load_ms,
            start_ms,
            ready_ms: ready.as_millis() as u64,
            init_ms: outcome.took.as_millis() as u64,
            oms_version_remedy,
            schema_version,
        })
    }

    /// Rows per `database.table` of the copies.
    async fn row_counts(&self, step: &StepId) -> Result<BTreeMap<String, u64>, StepError> {
        let mut all = BTreeMap::new();
        for scratch in self.scratch() {
            let counts = crate::backup::row_counts(self.pool, &scratch.name)
                .await
                .map_err(StepError::backup(step))?;
            for (table, rows) in counts {
                if table != MARKER_TABLE {
                    all.insert(format!("{}.{table}", scratch.source), rows);
                }
            }
        }
        Ok(all)
    }

    /// The copy after init: at the target version, every table kept with at least its rows,
    /// the throwaway host ONLINE. Returns the schema version read.
    async fn check(
        &self,
        step: &StepId,
        rm: &str,
        cm: &str,
        before: &BTreeMap<String, u64>,
    ) -> Result<String, StepError> {
        let target: OmsVersion = self
            .plan_file
            .deployment
            .target_version
            .parse()
            .map_err(|_| StepError::other(step, "the plan's target version is not a version"))?;
        let versions: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT CAST(version AS CHAR) FROM `{rm}`.oms_version"
        )))
        .fetch_all(self.pool)
        .await
        .map_err(sql_failure(
            step,
            "cannot read the copy's `oms_version`".to_owned(),
        ))?;
        let found = versions
            .iter()
            .filter_map(|v| v.trim().parse::<OmsVersion>().ok())
            .max();
        let mut problems = Vec::new();
        if found != Some(target) {
            problems.push(format!(
                "the copy's schema version is {} after init, not {target}",
                found.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
            ));
        }
        let after = self.row_counts(step).await?;
        for (table, rows) in before {
            match after.get(table) {
                None => problems.push(format!("init dropped `{table}` ({rows} rows)")),
                Some(now) if now < rows => {
                    problems.push(format!("init left {now} of the {rows} rows of `{table}`"))
                }
                Some(_) => {}
            }
        }
        let status: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT CAST(host_status AS CHAR) FROM `{cm}`.host WHERE ip = ?"
        )))
        .bind(&self.host_ip)
        .fetch_optional(self.pool)
        .await
        .map_err(sql_failure(
            step,
            "cannot read the copy's `host` table".to_owned(),
        ))?;
        if status.as_deref() != Some("ONLINE") {
            problems.push(format!(
                "the throwaway host {} is {} in the copy's `host` table, not ONLINE",
                self.host_ip,
                status.as_deref().unwrap_or("not registered")
            ));
        }
        if problems.is_empty() {
            Ok(found.map(|v| v.to_string()).unwrap_or_default())
        } else {
            Err(StepError::other(step, problems.join("; ")))
        }
    }
}

/// What [`clean`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaned {
    pub databases: Vec<String>,
    pub containers: Vec<String>,
    /// What could not be removed, each with its reason.
    pub problems: Vec<String>,
}

/// Removes the throwaway containers of `deployment` on `docker` and its scratch databases
/// (every rehearsal's, or only rehearsal `id`'s): the end of every rehearsal, and `--clean`.
pub async fn clean(
    pool: &MySqlPool,
    docker: &Docker,
    deployment: &str,
    id: Option<&str>,
) -> Cleaned {
    let mut cleaned = Cleaned::default();
    match leftover_containers(docker, deployment).await {
        Ok(names) => {
            for name in names {
                if id.is_some_and(|id| !name.ends_with(&format!("-{id}"))) {
                    continue;
                }
                match remove_throwaway(docker, &name).await {
                    Ok(()) => cleaned.containers.push(name),
                    Err(error) => cleaned
                        .problems
                        .push(format!("container `{name}`: {error}")),
                }
            }
        }
        Err(error) => cleaned
            .problems
            .push(format!("cannot list the rehearsal's containers: {error}")),
    }
    match leftover_databases(pool, deployment).await {
        Ok(names) => {
            for name in names {
                if id.is_some_and(|id| !name.contains(&format!("_rh_{id}_"))) {
                    continue;
                }
                match drop_scratch_database(pool, &name).await {
                    Ok(()) => cleaned.databases.push(name),
                    Err(error) => cleaned.problems.push(format!("database `{name}`: {error}")),
                }
            }
        }
        Err(error) => cleaned
            .problems
            .push(format!("cannot list the scratch databases: {error}")),
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_stay_under_64_characters_and_are_recognised() {
        let long = "a-very-long-deployment-name-that-goes-on-and-on-and-on-forever";
        let name = scratch_name(long, "0123abcd", "hb12");
        assert!(name.len() <= MAX_NAME, "{name}");
        assert!(is_scratch_name_of(&name, long));
        assert!(is_scratch_name_of(
            &scratch_name("oms-prod", "89abcdef", "rm"),
            "oms-prod"
        ));
        assert!(!is_scratch_name_of("oms_prod_rh_89abcdef_rm2", "oms-prod"));
        assert!(!is_scratch_name_of("oms_prod_rm", "oms-prod"));
        assert!(!is_scratch_name_of("oms_prod_rh_zz_rm", "oms-prod"));
    }

    #[test]
    fn config_yaml_points_at_the_copies_and_keeps_every_other_key() {
        let original = b"oms_meta_host: 10.0.0.1\noms_meta_password: \"s3cret\"\ndrc_rm_db: rm_1\ndrc_cm_db: \"cm_1\"\ndrc_cm_heartbeat_db: hb_1\ncm_nodes:\n  - 10.0.0.2\n";
        let copies: BTreeMap<String, String> =
            [("rm_1", "x_rm"), ("cm_1", "x_cm"), ("hb_1", "x_hb1")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
        let text = String::from_utf8(rewrite_config(original, &copies).unwrap()).unwrap();
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(yaml["drc_rm_db"].as_str(), Some("x_rm"));
        assert_eq!(yaml["drc_cm_db"].as_str(), Some("x_cm"));
        assert_eq!(yaml["drc_cm_heartbeat_db"].as_str(), Some("x_hb1"));
        assert_eq!(yaml["oms_meta_password"].as_str(), Some("s3cret"));
        assert_eq!(yaml["cm_nodes"][0].as_str(), Some("10.0.0.2"));
        let unknown = b"drc_rm_db: other\ndrc_cm_db: cm_1\ndrc_cm_heartbeat_db: hb_1\n";
        assert!(
            rewrite_config(unknown, &copies)
                .unwrap_err()
                .contains("other")
        );
    }
}
