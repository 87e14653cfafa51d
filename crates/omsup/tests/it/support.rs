//! Running the real `omsup` binary from the workspace root, without colour.

use std::path::PathBuf;
use std::process::Command;

use omsup_testworld::{World, WorldSpec};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// What one run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn omsup(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_omsup"))
        .args(args)
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("the omsup binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// [`omsup`] with extra environment variables (e.g. `OMSUP_FAILPOINTS`). Standard input is
/// not a terminal, as in CI.
pub fn omsup_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omsup"));
    command
        .args(args)
        .current_dir(workspace_root())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("OMSUP_FAILPOINTS");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("the omsup binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The id of the lock held on the deployment of `plan` (from `omsup status --format json`).
pub fn held_lock_id(plan: &str) -> Option<String> {
    let status = omsup(&["status", "-f", plan, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).ok()?;
    json["lock"]["lock_id"].as_str().map(str::to_owned)
}

/// `omsup resume --yes`, taking over the stale lock a killed run left, if any.
pub fn resume_after_kill(plan: &str) -> Run {
    match held_lock_id(plan) {
        Some(lock) => omsup(&["resume", "-f", plan, "--yes", "--force-unlock", &lock]),
        None => omsup(&["resume", "-f", plan, "--yes"]),
    }
}

const SERVICES_HINT: &str = "run `cargo xtask services` and `cargo xtask sim-images`";

/// A deployed world, removed when dropped, also when a test fails (so no world is left behind).
pub struct WorldGuard(pub World);

impl std::ops::Deref for WorldGuard {
    type Target = World;
    fn deref(&self) -> &World {
        &self.0
    }
}

impl Drop for WorldGuard {
    fn drop(&mut self) {
        let world = self.0.clone();
        let removed = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("a runtime for removing the world")
                .block_on(world.down())
        })
        .join();
        if let Ok(Err(error)) = removed {
            eprintln!("cannot remove the test world {}: {error}", self.0.id);
        }
    }
}

pub async fn up(spec: WorldSpec) -> WorldGuard {
    WorldGuard(World::up(spec).await.unwrap_or_else(|error| {
        panic!("cannot deploy a test world: {error}\nhint: {SERVICES_HINT}")
    }))
}

/// `omsup rollback --yes`, taking over the stale lock a killed run left, if any.
pub fn rollback_after_kill(plan: &str) -> Run {
    match held_lock_id(plan) {
        Some(lock) => omsup(&["rollback", "-f", plan, "--yes", "--force-unlock", &lock]),
        None => omsup(&["rollback", "-f", plan, "--yes"]),
    }
}
