//! Benchmark `apply-on-world`: the downtime window of a real `omsup apply` on a two-node test
//! world (first old container stopped -> last node ONLINE, as the `run_finished` JSON Lines
//! event reports it), next to a baseline measured on the same world just before: a plain
//! restart of one OMS container until it answers healthy again (the least downtime any
//! procedure that restarts OMS can have). Figures only, no assertions: shared machines vary.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omsup_testworld::world::wait_healthy;
use omsup_testworld::{World, WorldSpec};

const RUNS: usize = 3;

pub fn apply_on_world() -> Result<()> {
    let binary = crate::bench_plan::omsup_with_services()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut downtimes = Vec::new();
    let mut baselines = Vec::new();
    let mut totals = Vec::new();
    for run in 1..=RUNS {
        let world = runtime.block_on(World::up(WorldSpec::two_nodes()))?;
        let measured = runtime
            .block_on(restart_baseline(&world))
            .and_then(|baseline| Ok((baseline, apply(&binary, &world)?)));
        runtime.block_on(world.down())?;
        let (baseline, (downtime, total)) = measured?;
        println!(
            "apply_on_world: run {run}: downtime window {:.2} s (apply {:.2} s); baseline restart {:.2} s",
            downtime.as_secs_f64(),
            total.as_secs_f64(),
            baseline.as_secs_f64()
        );
        downtimes.push(downtime);
        baselines.push(baseline);
        totals.push(total);
    }
    let (downtime, baseline, total) = (median(downtimes), median(baselines), median(totals));
    println!(
        "apply_on_world: median downtime window {:.2} s of a {:.2} s apply ({RUNS} runs, two nodes, 4.2.8 -> 4.2.9 with backups and init)",
        downtime.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "apply_on_world: baseline, one OMS container restarted until healthy: median {:.2} s; downtime / baseline = {:.2}x",
        baseline.as_secs_f64(),
        downtime.as_secs_f64() / baseline.as_secs_f64().max(f64::EPSILON)
    );
    Ok(())
}

/// Stop node 1's OMS container, start it, and wait until it answers healthy.
async fn restart_baseline(world: &World) -> Result<Duration> {
    let node = &world.nodes[0];
    let docker = node.docker()?;
    let started = Instant::now();
    docker
        .stop_container(
            &world.container,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await?;
    docker
        .start_container(
            &world.container,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await?;
    wait_healthy(&node.ip, Duration::from_secs(60)).await?;
    let took = started.elapsed();
    world.wait_online(Duration::from_secs(60)).await?;
    Ok(took)
}

/// `omsup apply --yes --format jsonl`; the downtime window from its `run_finished` event.
fn apply(binary: &std::path::Path, world: &World) -> Result<(Duration, Duration)> {
    let output = Command::new(binary)
        .args(["apply", "--yes", "--format", "jsonl", "-f"])
        .arg(&world.plan_path)
        .env("NO_COLOR", "1")
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "`omsup apply` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let finished = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["type"] == "run_finished")
        .context("no run_finished event in the output of `omsup apply --format jsonl`")?;
    let downtime = finished["downtime_ms"]
        .as_u64()
        .context("the run_finished event has no downtime_ms")?;
    let total = finished["took_ms"].as_u64().unwrap_or(0);
    Ok((
        Duration::from_millis(downtime),
        Duration::from_millis(total),
    ))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}
