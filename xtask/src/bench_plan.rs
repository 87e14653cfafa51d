//! Benchmark `plan_on_world`: how long the real `omsup plan` binary takes on a two-node test
//! world (median of several runs), next to `omsup lint` on the same file as a baseline (process
//! start, reading and checking the file, without observing anything). Figures only, no
//! assertions: timings on a shared 2-core machine vary.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omsup_testworld::{World, WorldSpec, services};

const RUNS: usize = 15;

/// Deploys a two-node world, times `omsup plan` and `omsup lint` on its plan file, prints the
/// figures, and removes the world.
pub fn plan_on_world() -> Result<()> {
    let binary = omsup_with_services()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let world = runtime.block_on(World::up(WorldSpec::two_nodes()))?;
    let result = measure(&binary, &world.plan_path);
    runtime.block_on(world.down())?;
    let (plan, lint) = result?;
    println!(
        "plan_on_world: `omsup plan` on a two-node world: median {:.1?} (min {:.1?}, max {:.1?}, {RUNS} runs)",
        plan.median, plan.min, plan.max
    );
    println!(
        "plan_on_world: baseline `omsup lint` on the same file: median {:.1?} (min {:.1?}, max {:.1?})",
        lint.median, lint.min, lint.max
    );
    println!(
        "plan_on_world: observing, diffing and rendering add {:.1?} over the baseline",
        plan.median.saturating_sub(lint.median)
    );
    Ok(())
}

/// Builds the `omsup` binary, starts the services and builds the simulator images: what a
/// benchmark on a test world needs. Returns the binary's path.
pub fn omsup_with_services() -> Result<std::path::PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "omsup"])
        .current_dir(crate::workspace_root())
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("`cargo build -p omsup` failed");
    }
    services::ensure(services::DEFAULT_NODES)?;
    crate::sim_images::run(&[])?;
    Ok(omsup_testworld::world::target_dir().join("debug/omsup"))
}

struct Figures {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn measure(binary: &Path, plan_file: &Path) -> Result<(Figures, Figures)> {
    let plan_file = plan_file.to_str().context("the plan path is not UTF-8")?;
    let plan = time_runs(binary, &["plan", "-f", plan_file], &[0, 2])?;
    let lint = time_runs(binary, &["lint", plan_file], &[0])?;
    Ok((plan, lint))
}

fn time_runs(binary: &Path, args: &[&str], expected_codes: &[i32]) -> Result<Figures> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let output = Command::new(binary)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        times.push(started.elapsed());
        let code = output.status.code().unwrap_or(-1);
        if !expected_codes.contains(&code) {
            bail!(
                "`omsup {}` exited with {code}:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    times.sort();
    Ok(Figures {
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
    })
}
