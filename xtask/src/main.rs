//! `cargo xtask <task>`: the project's automation (codegen, services, simulator images, the
//! test world, CI, the demo and benchmarks). Run `cargo xtask help` for the list.

mod bench;
mod bench_apply;
mod bench_plan;
mod bench_scale;
mod ci;
mod codegen;
mod fuzz;
mod man;
mod scale_world;
mod services;
mod sim_images;
mod world;

use anyhow::{Result, bail};

const HELP: &str = "\
usage: cargo xtask <task> [args]

tasks:
  ci                 everything CI runs: services, simulator images, fmt, clippy, tests
  demo               bring up a two-node world, then plan, apply and show the upgrade with omsup
  codegen [--check]  regenerate schemas/*.json (or check they are fresh)
  man [DIR]          write omsup's man pages (default target/man)
  services [down]    install and start Docker daemons and MariaDB for tests and the demo
  sim-images         build the OMS simulator images and their `docker save` packages
  world up|down      deploy (or remove) a two-node OMS world on the test services
  bench [NAME...]    run the benchmarks (synthetic-dag, plan-on-world, apply-on-world; apply-at-scale
                     only when named) and print figures
  bench-plan         time `omsup plan` on a two-node world (also part of `bench`)
  fuzz [--seconds N] [TARGET...]
                     a bounded libFuzzer run of each fuzz target (default 60 s each)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("ci") => ci::run(rest),
        Some("demo") => ci::demo(rest),
        Some("codegen") => codegen::run(rest),
        Some("man") => man::run(rest),
        Some("services") => services::run(rest),
        Some("sim-images") => sim_images::run(rest),
        Some("world") => world::run(rest),
        Some("bench") => bench::run(rest),
        Some("bench-plan") => bench_plan::plan_on_world(),
        Some("fuzz") => fuzz::run(rest),
        None | Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

/// Absolute path of the workspace root (the parent of `xtask/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
