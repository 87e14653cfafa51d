//! The scale world of `cargo xtask bench apply-at-scale` (issue #15): what a production OMS
//! deployment weighs, on test hosts of its own.
//!
//! - The target image's package holds a filler layer of random bytes (so neither Docker nor a
//!   transport compresses it away) on top of the simulator's 4.2.9 image: a `docker save`
//!   tarball written here (the simulator's layers and config, one more layer, the config's
//!   `rootfs.diff_ids` and history extended, a new image id). Built once per size and cached
//!   next to the simulator packages (`<target>/oms-sim-images/scale/`).
//! - The meta databases: `heatbeat_sequence` rows per region before pruning, and two history
//!   tables of incompressible text in rm and cm (made in the server with `INSERT ... SELECT`
//!   from MariaDB's sequence engine, faster than restoring a dump of them).
//! - Three regions of two nodes sharing `cm_nodes`, on hosts `SCALE_FIRST_HOST..` that the
//!   world starts and removes with their Docker data roots (the GiB images go with them; the
//!   shared test hosts never see them).
//!
//! Sizes come from the environment, so the whole bench runs small while developing:
//! `OMSUP_SCALE_FILLER_MIB` (default 1024), `OMSUP_SCALE_HEARTBEATS` (per region, default
//! 2000000), `OMSUP_SCALE_META_MIB` (rm + cm filler, default 512), `OMSUP_SCALE_RUNS`
//! (default 3), `OMSUP_SCALE_PROFILE` (`release`, the default, or `debug`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use omsup_testworld::world::{image_package, target_dir};
use omsup_testworld::{RegionSpec, World, WorldSpec};
use sha2::{Digest, Sha256};

use crate::ci::run_cmd;

/// The first of the six hosts the scale world starts for itself (between the shared hosts
/// and the private ones of test worlds).
pub const SCALE_FIRST_HOST: usize = 40;

/// Stops the scale world's hosts and removes their Docker data roots: what an interrupted
/// bench may have left (a world's `down` does the same for its own).
pub fn clean_leftovers() -> Result<()> {
    for k in 0..6 {
        let host = omsup_testworld::hosts::NodeHost::new(SCALE_FIRST_HOST + k);
        omsup_testworld::hosts::remove(&host)?;
    }
    Ok(())
}

/// The sizes of a scale world.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub filler_mib: u64,
    pub heartbeats_per_region: usize,
    pub meta_mib: u64,
    pub runs: usize,
    pub release: bool,
}

impl Knobs {
    pub fn from_env() -> Result<Self> {
        fn number(name: &str, default: u64) -> Result<u64> {
            match std::env::var(name) {
                Ok(text) => text
                    .trim()
                    .parse()
                    .with_context(|| format!("{name}={text:?} is not a number")),
                Err(_) => Ok(default),
            }
        }
        let release = match std::env::var("OMSUP_SCALE_PROFILE").as_deref() {
            Ok("release") | Err(_) => true,
            Ok("debug") => false,
            Ok(other) => bail!("OMSUP_SCALE_PROFILE={other:?}: `release` or `debug`"),
        };
        let knobs = Self {
            filler_mib: number("OMSUP_SCALE_FILLER_MIB", 1024)?,
            heartbeats_per_region: number("OMSUP_SCALE_HEARTBEATS", 2_000_000)? as usize,
            meta_mib: number("OMSUP_SCALE_META_MIB", 512)?,
            runs: number("OMSUP_SCALE_RUNS", 3)?.max(1) as usize,
            release,
        };
        Ok(knobs)
    }

    /// Whether these are the sizes (a smaller world is a development run).
    pub fn full_size(&self) -> bool {
        self.filler_mib >= 1024 && self.heartbeats_per_region >= 2_000_000 && self.meta_mib >= 500
    }
}

/// The cached scale package for `filler_mib`, built when missing or when the simulator's 4.2.9
/// package changed.
pub fn scale_package(filler_mib: u64) -> Result<PathBuf> {
    let base = image_package("4.2.9");
    let dir = target_dir().join("oms-sim-images/scale");
    std::fs::create_dir_all(&dir)?;
    let package = dir.join(format!("oms-4.2.9-ce-filler-{filler_mib}m.tar"));
    let stamp_path = package.with_extension("stamp");
    let stamp = format!("{}\n", sha256_file(&base)?);
    if package.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        eprintln!("scale: package {} is cached", package.display());
        return Ok(package);
    }
    let started = Instant::now();
    let work = tempfile::tempdir_in(&dir)?;
    let tree = work.path().join("package");
    std::fs::create_dir_all(&tree)?;
    run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .arg("-xf")
            .arg(&base),
    )?;

    // The filler layer: one file of random bytes, as a layer tarball.
    let layer_root = work.path().join("layer");
    std::fs::create_dir_all(layer_root.join("opt/oms-filler"))?;
    let filler = layer_root.join("opt/oms-filler/filler.bin");
    {
        let mut random = std::fs::File::open("/dev/urandom")?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&filler)?);
        let mut buffer = vec![0u8; 1 << 20];
        for _ in 0..filler_mib {
            random.read_exact(&mut buffer)?;
            out.write_all(&buffer)?;
        }
        out.flush()?;
    }
    let layer_tar = work.path().join("layer.tar");
    run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(&layer_root)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
            .arg(&layer_tar)
            .arg("opt"),
    )?;
    std::fs::remove_dir_all(&layer_root)?;
    let diff_id = sha256_file(&layer_tar)?;
    let layer_dir = tree.join(&diff_id);
    std::fs::create_dir_all(&layer_dir)?;
    std::fs::rename(&layer_tar, layer_dir.join("layer.tar"))?;

    // The manifest and config: one more layer, one more history entry, a new image id.
    let manifest_path = tree.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path)?).context("manifest.json")?;
    let entry = manifest
        .get_mut(0)
        .context("the simulator package's manifest.json has no image")?;
    let config_name = entry["Config"]
        .as_str()
        .context("manifest.json names no Config")?
        .to_owned();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.join(&config_name))?).context("config")?;
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("the config has no rootfs.diff_ids")?
        .push(format!("sha256:{diff_id}").into());
    let history = config
        .as_object_mut()
        .context("the config is not an object")?
        .entry("history")
        .or_insert_with(|| serde_json::json!([]));
    if let Some(history) = history.as_array_mut() {
        history.push(serde_json::json!({
            "created": "2026-01-01T00:00:00Z",
            "created_by": format!("omsup bench apply-at-scale: {filler_mib} MiB of random bytes"),
        }));
    }
    let config_bytes = serde_json::to_vec(&config)?;
    let image_id = hex::encode(Sha256::digest(&config_bytes));
    std::fs::remove_file(tree.join(&config_name))?;
    std::fs::write(tree.join(format!("{image_id}.json")), &config_bytes)?;
    entry["Config"] = format!("{image_id}.json").into();
    entry["Layers"]
        .as_array_mut()
        .context("manifest.json names no Layers")?
        .push(format!("{diff_id}/layer.tar").into());
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest)?)?;
    // An OCI index (newer `docker save`) would still name the old config: the legacy manifest
    // is what `docker load` reads.
    for stale in ["index.json", "oci-layout", "repositories"] {
        let _ = std::fs::remove_file(tree.join(stale));
    }

    let partial = package.with_extension("tar.partial");
    run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .args(["--numeric-owner", "-cf"])
            .arg(&partial)
            .arg("."),
    )?;
    std::fs::rename(&partial, &package)?;
    std::fs::write(&stamp_path, stamp)?;
    eprintln!(
        "scale: built {} ({:.2} GiB, image sha256:{}) in {:.1?}",
        package.display(),
        package_size(&package)? as f64 / (1u64 << 30) as f64,
        &image_id[..12],
        started.elapsed()
    );
    Ok(package)
}

pub fn package_size(package: &Path) -> Result<u64> {
    Ok(std::fs::metadata(package)
        .with_context(|| format!("cannot stat {}", package.display()))?
        .len())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The scale world's spec: three regions of two nodes, 4.2.8 to 4.2.9, on hosts of its own.
pub fn spec(knobs: &Knobs, package: &Path) -> WorldSpec {
    WorldSpec {
        regions: ["hz", "sh", "bj"]
            .iter()
            .map(|name| RegionSpec {
                name: (*name).into(),
                nodes: 2,
                shared_cm_nodes: true,
            })
            .collect(),
        heartbeat_rows_per_region: knobs.heartbeats_per_region,
        projects: 500,
        dedicated_hosts: Some(SCALE_FIRST_HOST),
        target_package: Some(package.to_owned()),
        ..WorldSpec::two_nodes()
    }
}

/// Deploys a scale world and fills rm and cm with history rows (`meta_mib` in total, two
/// fifths in rm, the rest in cm: cm is the largest database, as in production).
pub async fn up(knobs: &Knobs, package: &Path) -> Result<World> {
    let started = Instant::now();
    // A host of the previous world may still be going down on a loaded machine: once more,
    // from clean hosts, before giving up.
    let world = match World::up(spec(knobs, package)).await {
        Ok(world) => world,
        Err(error) => {
            eprintln!("scale: world up failed ({error}); cleaning the hosts and trying again");
            clean_leftovers()?;
            World::up(spec(knobs, package)).await?
        }
    };
    if let Err(error) = fill(&world, knobs.meta_mib).await {
        let _ = world.down().await;
        return Err(error);
    }
    eprintln!(
        "scale: world {} up in {:.1?} (6 nodes, {} heartbeat rows per region, {} MiB of rm/cm rows)",
        world.id,
        started.elapsed(),
        knobs.heartbeats_per_region,
        knobs.meta_mib
    );
    Ok(world)
}

/// One history row: a JSON-ish message of about 1 KiB of hex (incompressible enough that a
/// dump is as large as the table).
const ROW_BYTES: u64 = 1024;

async fn fill(world: &World, meta_mib: u64) -> Result<()> {
    let pool = world.meta_pool().await?;
    let rows = meta_mib * (1 << 20) / ROW_BYTES;
    let rm_rows = rows * 2 / 5;
    let cm_rows = rows - rm_rows;
    for (database, table, count) in [
        (&world.rm, "oms_project_step_log", rm_rows),
        (&world.cm, "task_execution_log", cm_rows),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE `{database}`.`{table}` (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             project_id BIGINT NOT NULL, step VARCHAR(64) NOT NULL, message TEXT NOT NULL, \
             gmt_created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )))
        .execute(&pool)
        .await?;
        // In chunks of 100k rows: one statement per chunk keeps each transaction moderate.
        let mut done = 0u64;
        while done < count {
            let chunk = (count - done).min(100_000);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO `{database}`.`{table}`(project_id, step, message) \
                 SELECT seq % 500, ELT(1 + seq % 4, 'FULL_MIGRATION', 'INCR_SYNC', 'VERIFY', 'STORE'), \
                 CONCAT(SHA2(seq, 512), SHA2(seq + 1, 512), SHA2(seq + 2, 512), SHA2(seq + 3, 512), \
                        SHA2(seq + 4, 512), SHA2(seq + 5, 512), SHA2(seq + 6, 512), SHA2(seq + 7, 512)) \
                 FROM `{database}`.seq_{}_to_{}",
                done + 1,
                done + chunk
            )))
            .execute(&pool)
            .await?;
            done += chunk;
        }
    }
    Ok(())
}
