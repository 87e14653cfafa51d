//! Running the real `omsup` binary from the workspace root, without colour.

use std::path::PathBuf;
use std::process::Command;

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
