//! Benchmark `apply-at-scale` (issue #15): downtime at production scale, measured. Per run,
//! two identical scale worlds (see `scale_world.rs`), one after the other:
//!
//! 1. `omsup plan` (timed) and `omsup apply --format jsonl` on the first: the downtime window
//!    (first stop -> last node ONLINE) from its `run_finished` event, and each step's start
//!    and end as the bench read its JSON Lines (stamped when read).
//! 2. The seed runbook as a sequential script on the second, in the runbook's order, with
//!    ideal waits (polls, never `sleep 300`): HA off; then, timed as its window, `docker stop`
//!    on each node, the heartbeat delete in each region, `mariadb-dump` of rm, cm and each
//!    cm_hb one by one, `docker load -i` on each node, `docker rename` + `docker run` on each
//!    node, the wait for each node's `OMS service start successfully`, `docker_init.sh` once
//!    per region, and the wait until every node is ONLINE.
//! 3. The critical path, from the runbook's steps (each ran alone): the slowest stop, the
//!    slowest single dump, the slowest container start until ready, every init (they run one
//!    after another by design), and the ONLINE wait: what no tool can leave out of the window.
//!
//! Prints medians over the runs, the ratios, the window broken down by phase, the image loads'
//! throughput against `docker load -i`, `plan`'s time, and the projection at the documented
//! durations (a start of minutes, inits of 2-5 minutes), where those dominate every tool alike.
//! The simulator's own start and init stay short here so that omsup's overhead shows.
//! Figures only, no assertions. The worlds are removed after each measurement, their hosts'
//! Docker data roots with them; `df` before and after is printed.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omsup_testworld::World;
use omsup_testworld::world::{exec_init, image_tag, wait_for_log};

use crate::scale_world::{self, Knobs};

/// The documented durations the projection uses.
const DOCUMENTED_START: Duration = Duration::from_secs(180);
const DOCUMENTED_INIT: [Duration; 2] = [Duration::from_secs(120), Duration::from_secs(300)];

/// The window's phases, in order.
const PHASES: [Phase; 8] = [
    Phase::Stop,
    Phase::Prune,
    Phase::Backup,
    Phase::Load,
    Phase::Start,
    Phase::Ready,
    Phase::Init,
    Phase::Online,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Stop,
    Prune,
    Backup,
    Load,
    Start,
    Ready,
    Init,
    Online,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Stop => "stop old containers",
            Self::Prune => "heartbeat prune",
            Self::Backup => "backups (dumps)",
            Self::Load => "image loads",
            Self::Start => "create + start new",
            Self::Ready => "wait until started",
            Self::Init => "init (docker_init.sh)",
            Self::Online => "wait until ONLINE",
        }
    }

    /// The omsup step kind of this phase, when omsup has it in the window.
    fn omsup_kind(self) -> Option<&'static str> {
        match self {
            Self::Stop => Some("stop-old"),
            Self::Backup => Some("backup"),
            Self::Start => Some("start-new"),
            Self::Ready => Some("wait-ready"),
            Self::Init => Some("init"),
            Self::Online => Some("online.verify"),
            Self::Prune | Self::Load => None,
        }
    }
}

/// What one omsup run measured.
struct OmsupRun {
    window: Duration,
    plan: Duration,
    /// Per phase: the time from the previous phase's last end to this one's last end.
    phases: BTreeMap<Phase, Duration>,
    /// From the first backup's start to the last one's end.
    backup_span: Duration,
    /// Each node's `load-image` step (outside the window).
    loads: Vec<Duration>,
    /// From the first load's start to the last one's end.
    load_span: Duration,
    inits: usize,
    /// Between steps of the window: from a step's end to the next step's start on the
    /// critical chain, per gap (scheduling and journal writes).
    gaps: Vec<Duration>,
    /// Steps of the run and the journal time per step (`journal_us` of `step_succeeded`).
    journal_per_step: Vec<Duration>,
}

/// One step of an omsup run, as its JSON Lines told it (stamped when read).
struct SeenStep {
    kind: String,
    started: Instant,
    ended: Option<Instant>,
    took: Duration,
    journal_us: Option<u64>,
}

/// What one runbook run measured: every step alone, in order.
struct RunbookRun {
    window: Duration,
    steps: Vec<(Phase, String, Duration)>,
    /// Per node: from `docker run` to its `OMS service start successfully`.
    start_to_ready: Vec<Duration>,
}

impl RunbookRun {
    fn phase(&self, phase: Phase) -> Duration {
        self.steps
            .iter()
            .filter(|(p, _, _)| *p == phase)
            .map(|(_, _, d)| *d)
            .sum()
    }

    fn max_of(&self, phase: Phase) -> Duration {
        self.steps
            .iter()
            .filter(|(p, _, _)| *p == phase)
            .map(|(_, _, d)| *d)
            .max()
            .unwrap_or_default()
    }

    fn inits(&self) -> usize {
        self.steps
            .iter()
            .filter(|(p, _, _)| *p == Phase::Init)
            .count()
    }

    /// The critical path's phases: the slowest stop and dump, the slowest start until ready,
    /// every init, the ONLINE wait.
    fn critical(&self) -> BTreeMap<Phase, Duration> {
        let ready = self
            .start_to_ready
            .iter()
            .max()
            .copied()
            .unwrap_or_default();
        let start = self.max_of(Phase::Start).min(ready);
        BTreeMap::from([
            (Phase::Stop, self.max_of(Phase::Stop)),
            (Phase::Backup, self.max_of(Phase::Backup)),
            (Phase::Start, start),
            (Phase::Ready, ready - start),
            (Phase::Init, self.phase(Phase::Init)),
            (Phase::Online, self.phase(Phase::Online)),
        ])
    }
}

pub fn apply_at_scale() -> Result<()> {
    let knobs = Knobs::from_env()?;
    let binary = build_omsup(knobs.release)?;
    let package = scale_world::scale_package(knobs.filler_mib)?;
    let package_bytes = scale_world::package_size(&package)?;
    scale_world::clean_leftovers()?;
    let df_before = df();
    let runtime = tokio::runtime::Runtime::new()?;
    let mut omsup_runs = Vec::new();
    let mut runbook_runs = Vec::new();
    for run in 1..=knobs.runs {
        let world = runtime.block_on(scale_world::up(&knobs, &package))?;
        let measured = measure_omsup(&binary, &world);
        if let Err(error) = &measured {
            eprintln!("apply_at_scale: omsup on {} failed: {error:#}", world.id);
        }
        runtime.block_on(world.down())?;
        let measured = measured?;
        println!(
            "apply_at_scale: run {run}: omsup window {:.2} s (plan {:.2?})",
            measured.window.as_secs_f64(),
            measured.plan
        );
        omsup_runs.push(measured);

        let world = runtime.block_on(scale_world::up(&knobs, &package))?;
        let measured = runtime.block_on(runbook(&world, &package));
        if let Err(error) = &measured {
            eprintln!(
                "apply_at_scale: the runbook on {} failed: {error:#}",
                world.id
            );
        }
        runtime.block_on(world.down())?;
        let measured = measured?;
        println!(
            "apply_at_scale: run {run}: runbook window {:.2} s",
            measured.window.as_secs_f64()
        );
        runbook_runs.push(measured);
        // The figures so far after every run, the medians of all runs at the end.
        if run < knobs.runs {
            println!("apply_at_scale: -- after {run} of {} runs --", knobs.runs);
            report(&knobs, package_bytes, &omsup_runs, &runbook_runs);
        }
    }
    println!("apply_at_scale: -- all {} runs --", knobs.runs);
    report(&knobs, package_bytes, &omsup_runs, &runbook_runs);
    println!("apply_at_scale: disk before: {df_before}; after: {}", df());
    Ok(())
}

fn build_omsup(release: bool) -> Result<std::path::PathBuf> {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "omsup"]);
    if release {
        build.arg("--release");
    }
    let status = build
        .current_dir(crate::workspace_root())
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("`cargo build -p omsup` failed");
    }
    omsup_testworld::services::ensure(omsup_testworld::services::DEFAULT_NODES)?;
    crate::sim_images::run(&[])?;
    Ok(omsup_testworld::world::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("omsup"))
}

fn df() -> String {
    Command::new("df")
        .args(["-h", "--output=used,avail", "/"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" used, ")
                + " free"
        })
        .unwrap_or_default()
}

/// `omsup plan` three times (median), then `omsup apply --yes --format jsonl`, each line
/// stamped as it is read.
fn measure_omsup(binary: &Path, world: &World) -> Result<OmsupRun> {
    let mut plans = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let output = Command::new(binary)
            .args(["plan", "-f"])
            .arg(&world.plan_path)
            .env("NO_COLOR", "1")
            .output()?;
        plans.push(started.elapsed());
        if !matches!(output.status.code(), Some(0 | 2)) {
            bail!(
                "`omsup plan` failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let mut child = Command::new(binary)
        .args(["apply", "--yes", "--format", "jsonl", "-f"])
        .arg(&world.plan_path)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let mut events: Vec<(Instant, serde_json::Value)> = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
            events.push((Instant::now(), event));
        }
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "`omsup apply` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let finished = events
        .iter()
        .find(|(_, e)| e["type"] == "run_finished")
        .context("no run_finished event")?;
    let window = Duration::from_millis(
        finished.1["downtime_ms"]
            .as_u64()
            .context("run_finished has no downtime_ms")?,
    );
    let mut steps: BTreeMap<String, SeenStep> = BTreeMap::new();
    for (at, event) in &events {
        let id = event["step"].as_str().unwrap_or_default().to_owned();
        match event["type"].as_str() {
            Some("step_started") => {
                let kind = event["kind"].as_str().unwrap_or_default().to_owned();
                steps.insert(
                    id,
                    SeenStep {
                        kind,
                        started: *at,
                        ended: None,
                        took: Duration::ZERO,
                        journal_us: None,
                    },
                );
            }
            Some("step_succeeded") => {
                if let Some(step) = steps.get_mut(&id) {
                    step.ended = Some(*at);
                    step.took = Duration::from_millis(event["took_ms"].as_u64().unwrap_or(0));
                    step.journal_us = event["journal_us"].as_u64();
                }
            }
            _ => {}
        }
    }
    let of_kind = |kind: &str| -> Vec<(Instant, Instant, Duration)> {
        steps
            .values()
            .filter(|s| s.kind == kind)
            .map(|s| (s.started, s.ended.unwrap_or(s.started), s.took))
            .collect()
    };
    let opened = of_kind("stop-old")
        .into_iter()
        .map(|s| s.0)
        .min()
        .context("no stop-old step")?;
    let mut phases = BTreeMap::new();
    let mut previous_end = opened;
    let mut gaps = Vec::new();
    for phase in PHASES {
        let Some(kind) = phase.omsup_kind() else {
            continue;
        };
        let Some(end) = of_kind(kind).into_iter().map(|s| s.1).max() else {
            continue;
        };
        // The gap: from the previous phase's last end to this phase's last-ending step's start.
        if let Some(last_start) = of_kind(kind)
            .into_iter()
            .filter(|s| s.1 == end)
            .map(|s| s.0)
            .next()
            && phase != Phase::Stop
        {
            gaps.push(last_start.saturating_duration_since(previous_end));
        }
        phases.insert(phase, end.saturating_duration_since(previous_end));
        previous_end = end;
    }
    let span = |kind: &str| -> Duration {
        match (
            of_kind(kind).into_iter().map(|s| s.0).min(),
            of_kind(kind).into_iter().map(|s| s.1).max(),
        ) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    };
    Ok(OmsupRun {
        window,
        plan: median(plans),
        backup_span: span("backup"),
        loads: of_kind("load-image").into_iter().map(|s| s.2).collect(),
        load_span: span("load-image"),
        inits: of_kind("init").len(),
        phases,
        gaps,
        journal_per_step: steps
            .values()
            .filter_map(|s| s.journal_us)
            .map(Duration::from_micros)
            .collect(),
    })
}

/// The seed runbook as a sequential script, each step timed alone.
async fn runbook(world: &World, package: &Path) -> Result<RunbookRun> {
    let options = world.dir.join("runbook.cnf");
    write_option_file(world, &options)?;
    let mysql = |database: &str, sql: &str| -> Result<()> {
        let output = Command::new("mariadb")
            .arg(format!("--defaults-extra-file={}", options.display()))
            .arg(format!("-D{database}"))
            .arg("-e")
            .arg(sql)
            .output()?;
        if !output.status.success() {
            bail!(
                "mariadb -e {sql:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    };
    // HA off, before the window (the runbook's first step).
    mysql(
        &world.rm,
        "UPDATE oms_normal_config SET cfg_value = JSON_SET(cfg_value, '$.enable', false) WHERE cfg_name = 'ha.config'",
    )?;
    let mut steps = Vec::new();
    let opened = Instant::now();
    let mut timed = |phase: Phase, what: String, started: Instant| {
        steps.push((phase, what, started.elapsed()));
    };
    for node in &world.nodes {
        let started = Instant::now();
        docker_cli(node, &["stop", "-t", "30", &world.container])?;
        timed(
            Phase::Stop,
            format!("docker stop on node {}", node.index),
            started,
        );
    }
    for database in world.cm_hb.values() {
        let started = Instant::now();
        mysql(
            database,
            "DELETE FROM heatbeat_sequence WHERE id < (SELECT MAX(id) FROM heatbeat_sequence)",
        )?;
        timed(
            Phase::Prune,
            format!("delete heartbeats in {database}"),
            started,
        );
    }
    let dumps = world.dir.join("runbook-dumps");
    std::fs::create_dir_all(&dumps)?;
    for database in world.databases() {
        let started = Instant::now();
        let file = dumps.join(format!("{database}.sql"));
        let status = Command::new("mariadb-dump")
            .arg(format!("--defaults-extra-file={}", options.display()))
            .arg("--skip-triggers")
            .arg(&database)
            .stdout(std::fs::File::create(&file)?)
            .status()?;
        if !status.success() || std::fs::metadata(&file)?.len() == 0 {
            bail!("mariadb-dump {database} failed ({status})");
        }
        timed(Phase::Backup, format!("mariadb-dump {database}"), started);
    }
    for node in &world.nodes {
        let started = Instant::now();
        let package = package.to_str().context("the package path is not UTF-8")?;
        docker_cli(node, &["load", "-q", "-i", package])?;
        timed(
            Phase::Load,
            format!("docker load -i on node {}", node.index),
            started,
        );
    }
    let kept = format!("{}-428", world.container);
    let mut run_started = Vec::new();
    for node in &world.nodes {
        let started = Instant::now();
        docker_cli(node, &["rename", &world.container, &kept])?;
        let mut args: Vec<String> = ["run", "-dit", "--net", "host"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for bind in node.binds() {
            args.extend(["-v".to_owned(), bind]);
        }
        args.extend([
            "-e".to_owned(),
            format!("OMS_HOST_IP={}", node.ip),
            "-e".to_owned(),
            "IS_UPGRADE=true".to_owned(),
            "--pids-limit".to_owned(),
            "-1".to_owned(),
            "--ulimit".to_owned(),
            "nproc=65535:65535".to_owned(),
            "--name".to_owned(),
            world.container.clone(),
            image_tag(&world.spec.target_version),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_cli(node, &args)?;
        run_started.push(started);
        timed(
            Phase::Start,
            format!("docker run on node {}", node.index),
            started,
        );
    }
    let mut start_to_ready = Vec::new();
    for (node, run_start) in world.nodes.iter().zip(&run_started) {
        let started = Instant::now();
        wait_for_log(
            &node.docker()?,
            &world.container,
            "OMS service start successfully",
            Duration::from_secs(600),
        )
        .await?;
        start_to_ready.push(run_start.elapsed());
        timed(
            Phase::Ready,
            format!("wait for node {}", node.index),
            started,
        );
    }
    for region in &world.spec.regions {
        let node = world
            .nodes
            .iter()
            .find(|n| n.region == region.name)
            .context("a region without nodes")?;
        let started = Instant::now();
        let (code, output) = exec_init(&node.docker()?, &world.container, Vec::new()).await?;
        if code != 0 {
            bail!("docker_init.sh on node {} failed:\n{output}", node.index);
        }
        timed(
            Phase::Init,
            format!("docker_init.sh in {}", region.name),
            started,
        );
    }
    let started = Instant::now();
    world.wait_online(Duration::from_secs(600)).await?;
    timed(Phase::Online, "every node ONLINE".to_owned(), started);
    let window = opened.elapsed();
    Ok(RunbookRun {
        window,
        steps,
        start_to_ready,
    })
}

/// The meta database's connection as a 0600 option file in the world's dir (the runbook's
/// `-p<password>`, without the password on argv).
fn write_option_file(world: &World, path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let password = world.services.meta_password()?;
    let text = format!(
        "[client]\nhost={}\nport={}\nuser={}\npassword=\"{}\"\n",
        world.services.meta_host,
        world.services.meta_port,
        world.services.meta_user,
        password.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(())
}

/// `docker -H <node's socket> <args>`, as an operator types it on the node.
fn docker_cli(node: &omsup_testworld::WorldNode, args: &[&str]) -> Result<()> {
    let output = Command::new("docker")
        .arg("-H")
        .arg(node.host.unix_url())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !output.status.success() {
        bail!(
            "docker {} on node {}: {}",
            args.first().unwrap_or(&""),
            node.index,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn median(mut values: Vec<Duration>) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> String {
    format!(
        "{:.2}x",
        a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON)
    )
}

/// The projection: the measured window with its start wait and its inits replaced by the
/// documented durations.
fn project(
    window: Duration,
    ready: Duration,
    init: Duration,
    inits: usize,
    per_init: Duration,
) -> Duration {
    (window.saturating_sub(ready + init)) + DOCUMENTED_START + per_init * inits as u32
}

fn report(knobs: &Knobs, package_bytes: u64, omsup: &[OmsupRun], runbook: &[RunbookRun]) {
    let runs = omsup.len();
    let profile = if knobs.release {
        "release build"
    } else {
        "debug build"
    };
    println!(
        "apply_at_scale: {profile}; {runs} runs; world: 3 regions x 2 nodes, package {:.2} GiB ({} MiB random filler), {} heartbeat rows per region, {} MiB of rm/cm rows{}",
        package_bytes as f64 / (1u64 << 30) as f64,
        knobs.filler_mib,
        knobs.heartbeats_per_region,
        knobs.meta_mib,
        if knobs.full_size() {
            ""
        } else {
            " (SMALLER than the issue's scale world)"
        }
    );
    let omsup_window = median(omsup.iter().map(|r| r.window).collect());
    let runbook_window = median(runbook.iter().map(|r| r.window).collect());
    let critical_of = |r: &RunbookRun| r.critical().values().sum::<Duration>();
    let critical = median(runbook.iter().map(critical_of).collect());
    println!(
        "apply_at_scale: downtime window, medians: omsup {}, runbook script {}, critical path {}",
        secs(omsup_window),
        secs(runbook_window),
        secs(critical)
    );
    println!(
        "apply_at_scale: omsup / runbook = {} (target <= 0.25x); omsup / critical path = {} (target <= 1.15x)",
        ratio(omsup_window, runbook_window),
        ratio(omsup_window, critical)
    );
    println!(
        "apply_at_scale: {:<24} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "window, by phase", "omsup", "runbook", "critical", "omsup/rb", "omsup/crit"
    );
    for phase in PHASES {
        let o = median(
            omsup
                .iter()
                .map(|r| r.phases.get(&phase).copied().unwrap_or_default())
                .collect(),
        );
        let b = median(runbook.iter().map(|r| r.phase(phase)).collect());
        let c = median(
            runbook
                .iter()
                .map(|r| r.critical().get(&phase).copied().unwrap_or_default())
                .collect(),
        );
        let rel = |x: Duration, y: Duration| {
            if y.is_zero() {
                "-".to_owned()
            } else {
                ratio(x, y)
            }
        };
        println!(
            "apply_at_scale: {:<24} {:>10} {:>10} {:>10} {:>12} {:>12}",
            phase.name(),
            secs(o),
            secs(b),
            secs(c),
            rel(o, b),
            rel(o, c)
        );
    }
    let backup = median(omsup.iter().map(|r| r.backup_span).collect());
    let dumps_one_by_one = median(runbook.iter().map(|r| r.phase(Phase::Backup)).collect());
    println!(
        "apply_at_scale: backups: omsup {} (first start to last end) vs the same dumps one by one {}: {} faster (target >= 2x)",
        secs(backup),
        secs(dumps_one_by_one),
        ratio(dumps_one_by_one, backup)
    );
    let mib = package_bytes as f64 / (1u64 << 20) as f64;
    let omsup_load = median(omsup.iter().flat_map(|r| r.loads.clone()).collect());
    let load_span = median(omsup.iter().map(|r| r.load_span).collect());
    let docker_load = median(
        runbook
            .iter()
            .flat_map(|r| {
                r.steps
                    .iter()
                    .filter(|(p, _, _)| *p == Phase::Load)
                    .map(|(_, _, d)| *d)
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    let nodes = omsup.first().map_or(0, |r| r.loads.len());
    println!(
        "apply_at_scale: image loads (outside omsup's window): omsup, {nodes} nodes at once: {} for all ({:.0} MiB/s in total), {} per node ({:.0} MiB/s per node); `docker load -i` alone on one node: {} ({:.0} MiB/s); omsup in total / docker load -i = {:.2}x (target >= 0.9x)",
        secs(load_span),
        mib * nodes as f64 / load_span.as_secs_f64().max(f64::EPSILON),
        secs(omsup_load),
        mib / omsup_load.as_secs_f64().max(f64::EPSILON),
        secs(docker_load),
        mib / docker_load.as_secs_f64().max(f64::EPSILON),
        (mib * nodes as f64 / load_span.as_secs_f64().max(f64::EPSILON))
            / (mib / docker_load.as_secs_f64().max(f64::EPSILON)),
    );
    let plan = median(omsup.iter().map(|r| r.plan).collect());
    println!(
        "apply_at_scale: `omsup plan` on the scale world: median {:.2?} (target < 1 s)",
        plan
    );
    let gaps: Vec<Duration> = omsup.iter().flat_map(|r| r.gaps.clone()).collect();
    let journal: Vec<Duration> = omsup
        .iter()
        .flat_map(|r| r.journal_per_step.clone())
        .collect();
    println!(
        "apply_at_scale: between the window's phases, from one phase's end to the next's last step's start: median {:.1?}, max {:.1?}; journal writes per step: median {:.2?}, max {:.2?} over {} steps (target < 5 ms)",
        median(gaps.clone()),
        gaps.iter().max().copied().unwrap_or_default(),
        median(journal.clone()),
        journal.iter().max().copied().unwrap_or_default(),
        journal.len()
    );
    // The projection at the documented durations.
    let omsup_ready = median(
        omsup
            .iter()
            .map(|r| r.phases.get(&Phase::Ready).copied().unwrap_or_default())
            .collect(),
    );
    let omsup_init = median(
        omsup
            .iter()
            .map(|r| r.phases.get(&Phase::Init).copied().unwrap_or_default())
            .collect(),
    );
    let inits = omsup.first().map_or(0, |r| r.inits);
    let rb_ready = median(runbook.iter().map(|r| r.phase(Phase::Ready)).collect());
    let rb_init = median(runbook.iter().map(|r| r.phase(Phase::Init)).collect());
    let rb_inits = runbook.first().map_or(0, RunbookRun::inits);
    let crit_ready = median(
        runbook
            .iter()
            .map(|r| r.critical()[&Phase::Ready])
            .collect(),
    );
    for per_init in DOCUMENTED_INIT {
        let o = project(omsup_window, omsup_ready, omsup_init, inits, per_init);
        let b = project(runbook_window, rb_ready, rb_init, rb_inits, per_init);
        let c = project(critical, crit_ready, rb_init, rb_inits, per_init);
        println!(
            "apply_at_scale: projected at a {} min start and {} min inits ({rb_inits} of them): omsup {}, runbook {}, critical path {}; omsup/runbook {}, omsup/critical {}",
            DOCUMENTED_START.as_secs() / 60,
            per_init.as_secs() / 60,
            secs(o),
            secs(b),
            secs(c),
            ratio(o, b),
            ratio(o, c)
        );
    }
}
