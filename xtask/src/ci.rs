//! `cargo xtask ci` and `demo`: the commands the README names.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs a command from the workspace root, echoing it first; fails when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd
        .current_dir(crate::workspace_root())
        .status()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Everything CI runs, in the order that fails fastest: formatting, lints, then the services
/// and images the tests need, then every test. Each phase prints how long it took.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask ci` takes no arguments, got `{extra}`");
    }
    let started = Instant::now();
    phase("fmt", || {
        run_cmd(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))
    })?;
    phase("clippy", || {
        run_cmd(Command::new("cargo").args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    phase("services", || {
        crate::services::run(&[])?;
        // The `omsup report` test loads the page in a real headless browser.
        crate::services::ensure_debian_packages(&[("chromium", "chromium")])
    })?;
    phase("sim-images", || crate::sim_images::run(&[]))?;
    phase("codegen --check", || {
        crate::codegen::run(&["--check".to_owned()])
    })?;
    // Three tests at a time on CI's two cores: the world tests mostly wait on containers,
    // dumps and polls, so a third overlaps them (the CLI suite took 973 s instead of 1,308 s
    // on a loaded two-core machine).
    phase("tests", || {
        run_cmd(Command::new("cargo").args([
            "test",
            "--workspace",
            "--all-targets",
            "--",
            "--test-threads=3",
        ]))
    })?;
    eprintln!("ci: all phases passed in {:.0?}", started.elapsed());
    Ok(())
}

fn phase(name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("ci: == {name} ==");
    let started = Instant::now();
    body().with_context(|| format!("ci phase `{name}` failed"))?;
    eprintln!("ci: {name} done in {:.1?}", started.elapsed());
    Ok(())
}

/// The README's first command: services, images, a two-node 4.2.8 world with HA on, and omsup
/// run against it: lint the example plans, plan the world's upgrade to 4.2.9, apply it, show
/// `omsup status`, and plan again (no changes).
pub fn demo(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask demo` takes no arguments, got `{extra}`");
    }
    eprintln!("demo: installing and starting what is missing (Docker daemons, MariaDB)");
    crate::services::run(&[])?;
    eprintln!("demo: building the OMS simulator images");
    crate::sim_images::run(&[])?;
    eprintln!("demo: building omsup (the first build takes a few minutes)");
    run_cmd(Command::new("cargo").args(["build", "--package", "omsup"]))?;
    eprintln!("demo: omsup lint: the example plan files");
    run_cmd(omsup().arg("lint").args(example_plans()?))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let world = runtime.block_on(omsup_testworld::World::up(
        omsup_testworld::WorldSpec::two_nodes(),
    ))?;
    eprintln!(
        "demo: world {} is up in {:.1?}: two OMS 4.2.8 nodes ({}) with HA on; plan file {}",
        world.id,
        started.elapsed(),
        world
            .nodes
            .iter()
            .map(|n| n.ip.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        world.plan_path.display()
    );
    let plan = &world.plan_path;
    let shown = (|| {
        eprintln!("demo: omsup plan: what the upgrade to 4.2.9 will do");
        run_cmd(omsup().arg("plan").arg("-f").arg(plan))?;
        eprintln!("demo: omsup apply --yes: the upgrade, journaled step by step");
        run_cmd(omsup().args(["apply", "--yes", "-f"]).arg(plan))?;
        eprintln!("demo: omsup status: the run, step by step");
        run_cmd(omsup().arg("status").arg("-f").arg(plan))?;
        eprintln!("demo: omsup plan again: nothing left to do");
        run_cmd(omsup().arg("plan").arg("-f").arg(plan))
    })();
    eprintln!(
        "demo: undo it with `cargo run -p omsup -- rollback -f {}`; remove the world with `cargo xtask world down {}`",
        plan.display(),
        world.id
    );
    shown
}

/// `cargo run --package omsup --`, so the demo always runs the binary of this checkout.
fn omsup() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--quiet", "--package", "omsup", "--"]);
    cmd
}

fn example_plans() -> Result<Vec<std::path::PathBuf>> {
    let mut plans: Vec<_> = std::fs::read_dir(crate::workspace_root().join("plans"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    plans.sort();
    Ok(plans)
}
