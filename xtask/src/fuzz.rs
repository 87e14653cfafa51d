//! `cargo xtask fuzz [--seconds N] [TARGET...]`: a bounded libFuzzer run of every fuzz target of
//! `crates/omsup-fuzz` (default 60 s each), seeded from its corpus in the repo (and, for the
//! plan file, the lint corpus and the example plans). Installs cargo-fuzz from crates.io when
//! it is missing; the toolchain is stable, so the run sets `RUSTC_BOOTSTRAP=1` for the
//! sanitizer flags cargo-fuzz passes. New inputs stay in `target/fuzz/corpus/` (copy one into
//! the repo's corpus when it is worth replaying in every test run); a crash fails the task and
//! names the reproducer under `target/fuzz/artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str =
    "usage: cargo xtask fuzz [--seconds N] [plan_file|config_yaml|journal_replay...]";

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 60;
    let mut chosen: Vec<String> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .with_context(|| USAGE.to_owned())?;
            }
            name if !name.starts_with('-') => chosen.push(name.to_owned()),
            _ => bail!("{USAGE}"),
        }
    }
    let known: Vec<&str> = omsup_fuzz::TARGETS.iter().map(|t| t.name).collect();
    if let Some(unknown) = chosen.iter().find(|c| !known.contains(&c.as_str())) {
        bail!(
            "unknown fuzz target `{unknown}` (known: {})",
            known.join(", ")
        );
    }
    let targets: Vec<&str> = if chosen.is_empty() {
        known
    } else {
        known
            .into_iter()
            .filter(|k| chosen.iter().any(|c| c == k))
            .collect()
    };
    ensure_cargo_fuzz()?;
    let root = crate::workspace_root();
    let fuzz_dir = root.join("crates/omsup-fuzz/fuzz");
    // Build with the versions the workspace tests (libfuzzer-sys is added on top).
    std::fs::copy(root.join("Cargo.lock"), fuzz_dir.join("Cargo.lock"))?;
    let mut summary = Vec::new();
    for target in targets {
        let corpus = seed_corpus(&root, target)?;
        let artifacts = root.join("target/fuzz/artifacts").join(target);
        std::fs::create_dir_all(&artifacts)?;
        eprintln!(
            "fuzz: {target} for {seconds} s, corpus {}",
            corpus.display()
        );
        let output = Command::new("cargo")
            .arg("fuzz")
            .arg("run")
            .arg("--fuzz-dir")
            .arg(&fuzz_dir)
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-timeout=10")
            .arg("-rss_limit_mb=4096")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", root.join("target/fuzz/build"))
            .current_dir(&root)
            .output()
            .context("cannot run `cargo fuzz`")?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "fuzz target `{target}` failed ({}):\n{}\nhint: the reproducer is in {}; \
                 replay it with `cargo fuzz run --fuzz-dir crates/omsup-fuzz/fuzz {target} FILE`",
                output.status,
                tail.join("\n"),
                artifacts.display()
            );
        }
        let done = log
            .lines()
            .rev()
            .find(|line| line.starts_with("Done "))
            .unwrap_or("(no libFuzzer summary)")
            .to_owned();
        let inputs = std::fs::read_dir(&corpus)?.count();
        summary.push(format!("{target}: {done}; corpus now {inputs} inputs"));
    }
    for line in summary {
        println!("fuzz: {line}");
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz from crates.io");
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()?;
    if !status.success() {
        bail!("`cargo install cargo-fuzz` failed ({status})");
    }
    Ok(())
}

/// `target/fuzz/corpus/<target>`, with the repo's seeds copied in (libFuzzer adds to it).
fn seed_corpus(root: &Path, target: &str) -> Result<PathBuf> {
    let corpus = root.join("target/fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let mut seeds = vec![root.join("crates/omsup-fuzz/corpus").join(target)];
    if target == "plan_file" {
        seeds.extend([root.join("tests/lint"), root.join("plans")]);
    }
    for dir in seeds {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.is_file() {
                let name = path.file_name().expect("a file has a name");
                std::fs::copy(&path, corpus.join(name))?;
            }
        }
    }
    Ok(corpus)
}
