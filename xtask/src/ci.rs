//! `cargo xtask ci`, `demo` and `bench`: the commands the README names.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// Runs a command from the workspace root, echoing it first; fails when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .current_dir(crate::workspace_root())
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub fn run(_args: &[String]) -> Result<()> {
    run_cmd(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    run_cmd(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_cmd(Command::new("cargo").args(["test", "--workspace"]))?;
    Ok(())
}

pub fn demo(_args: &[String]) -> Result<()> {
    bail!("the demo is not written yet")
}

pub fn bench(_args: &[String]) -> Result<()> {
    bail!("no benchmarks yet")
}
