//! `cargo xtask bench [NAME...]`: the project's benchmarks, a list of named benchmarks run in
//! order (all of them, or the ones named). Each prints figures; none asserts a timing, since a
//! shared 2-core machine makes timings vary.
//!
//! - `synthetic-dag`: the pure engine and the renderers on synthetic worlds (no Docker, no
//!   database): `omsup_engine::plan` (diff, step DAG, facts and fingerprint) and the human,
//!   JSON and DOT renderings, for 100 regions × 10 nodes, against 1 region × 2 nodes measured
//!   in the same run as the baseline (the ratio of the per-node costs shows how it scales).
//! - `plan-on-world`: the real `omsup plan` binary on a two-node test world (see
//!   `bench_plan.rs`; needs the services, like the tests).
//! - `apply-on-world`: the downtime window of a real `omsup apply` on a two-node world, against
//!   one OMS container restarted until healthy (see `bench_apply.rs`); a smoke test of the
//!   toy world.
//! - `apply-at-scale` (only when named: it moves GiBs): the downtime window on a world of
//!   production size against the seed runbook scripted and the critical path (see
//!   `bench_scale.rs` and `scale_world.rs`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omsup::render::{render_dot, render_plan_human, render_plan_json};
use omsup::style::Style;
use omsup_engine::observed::ObservedWorld;
use omsup_engine::synthetic;
use omsup_model::PlanFile;

/// One named benchmark.
struct Benchmark {
    name: &'static str,
    about: &'static str,
    run: fn() -> Result<()>,
    /// Runs only when named.
    on_request: bool,
}

const BENCHMARKS: &[Benchmark] = &[
    Benchmark {
        name: "synthetic-dag",
        about: "diff + step DAG + renderings, 100 regions x 10 nodes vs 1 x 2",
        run: synthetic_dag,
        on_request: false,
    },
    Benchmark {
        name: "plan-on-world",
        about: "`omsup plan` on a two-node test world vs `omsup lint`",
        run: crate::bench_plan::plan_on_world,
        on_request: false,
    },
    Benchmark {
        name: "apply-on-world",
        about: "downtime window of `omsup apply` on a two-node world vs one OMS restart",
        run: crate::bench_apply::apply_on_world,
        on_request: false,
    },
    Benchmark {
        name: "apply-at-scale",
        about: "downtime at production scale: omsup vs the runbook scripted vs the critical path",
        run: crate::bench_scale::apply_at_scale,
        on_request: true,
    },
];

/// Runs every benchmark, or those named in `args`.
pub fn run(args: &[String]) -> Result<()> {
    for name in args {
        if !BENCHMARKS.iter().any(|b| b.name == name) {
            let known: Vec<&str> = BENCHMARKS.iter().map(|b| b.name).collect();
            bail!(
                "unknown benchmark `{name}`; the benchmarks are: {}",
                known.join(", ")
            );
        }
    }
    for benchmark in BENCHMARKS {
        let named = args.iter().any(|a| a == benchmark.name);
        if (!args.is_empty() || benchmark.on_request) && !named {
            continue;
        }
        println!("== {}: {}", benchmark.name, benchmark.about);
        (benchmark.run)().with_context(|| format!("benchmark `{}` failed", benchmark.name))?;
    }
    Ok(())
}

/// Median, min and max of several timed runs.
struct Timing {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn time(runs: usize, mut work: impl FnMut()) -> Timing {
    work(); // warm-up, not counted
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    times.sort();
    Timing {
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
    }
}

/// A synthetic deployment: the plan file, its bytes, and a world on 4.2.8 with HA on.
struct Shape {
    regions: usize,
    nodes_per_region: usize,
    plan_file: PlanFile,
    bytes: Vec<u8>,
    world: ObservedWorld,
}

impl Shape {
    fn new(regions: usize, nodes_per_region: usize) -> Result<Self> {
        let text = synthetic::plan_toml(regions, nodes_per_region);
        let plan_file: PlanFile =
            toml::from_str(&text).context("the synthetic plan file does not parse")?;
        let world = synthetic::world(&plan_file, "4.2.8");
        Ok(Self {
            regions,
            nodes_per_region,
            plan_file,
            bytes: text.into_bytes(),
            world,
        })
    }

    fn nodes(&self) -> usize {
        self.regions * self.nodes_per_region
    }
}

/// The figures of one shape.
struct ShapeFigures {
    steps: usize,
    lanes: usize,
    plan: Timing,
    human: Timing,
    json: Timing,
    dot: Timing,
    output_bytes: [usize; 3],
}

fn measure_shape(shape: &Shape, runs: usize) -> Result<ShapeFigures> {
    let planned = omsup_engine::plan(&shape.plan_file, &shape.bytes, &shape.world);
    if planned.has_blocking_findings() || planned.is_empty() {
        bail!(
            "the synthetic {}x{} world should plan a full upgrade with no errors: {:?}",
            shape.regions,
            shape.nodes_per_region,
            planned.blocking_findings().collect::<Vec<_>>()
        );
    }
    let style = Style::plain();
    let plan = time(runs, || {
        black_box(omsup_engine::plan(
            &shape.plan_file,
            &shape.bytes,
            &shape.world,
        ));
    });
    let human = time(runs, || {
        black_box(render_plan_human(&planned, &style));
    });
    let json = time(runs, || {
        black_box(render_plan_json(&planned));
    });
    let dot = time(runs, || {
        black_box(render_dot(&planned));
    });
    Ok(ShapeFigures {
        steps: planned.steps.len(),
        lanes: planned.lanes().len(),
        plan,
        human,
        json,
        dot,
        output_bytes: [
            render_plan_human(&planned, &style).len(),
            render_plan_json(&planned).len(),
            render_dot(&planned).len(),
        ],
    })
}

fn synthetic_dag() -> Result<()> {
    const BASELINE_RUNS: usize = 51;
    const LARGE_RUNS: usize = 11;
    let baseline_shape = Shape::new(1, 2)?;
    let large_shape = Shape::new(100, 10)?;
    let baseline = measure_shape(&baseline_shape, BASELINE_RUNS)?;
    let large = measure_shape(&large_shape, LARGE_RUNS)?;
    let profile = if cfg!(debug_assertions) {
        "debug build (`cargo xtask` runs the dev profile)"
    } else {
        "release build"
    };
    println!(
        "synthetic-dag: {profile}; medians of {LARGE_RUNS} (large) and {BASELINE_RUNS} (baseline) runs after a warm-up"
    );
    for (shape, figures) in [(&baseline_shape, &baseline), (&large_shape, &large)] {
        println!(
            "synthetic-dag: {} regions x {} nodes = {} nodes, {} steps in {} lanes; output {} B human, {} B JSON, {} B DOT",
            shape.regions,
            shape.nodes_per_region,
            shape.nodes(),
            figures.steps,
            figures.lanes,
            figures.output_bytes[0],
            figures.output_bytes[1],
            figures.output_bytes[2]
        );
    }
    println!(
        "synthetic-dag: {:<34} {:>12} {:>12} {:>12} {:>18}",
        "what", "1x2 median", "100x10 median", "100x10 min..max", "per-node ratio"
    );
    let rows = [
        ("plan: diff + DAG + facts", &baseline.plan, &large.plan),
        ("render human", &baseline.human, &large.human),
        ("render JSON", &baseline.json, &large.json),
        ("render DOT", &baseline.dot, &large.dot),
    ];
    for (what, small, big) in rows {
        println!(
            "synthetic-dag: {what:<34} {:>12} {:>12} {:>12} {:>18}",
            format!("{:.1?}", small.median),
            format!("{:.1?}", big.median),
            format!("{:.0?}..{:.0?}", big.min, big.max),
            format!(
                "{:.2}x",
                per_node_ratio(
                    small.median,
                    baseline_shape.nodes(),
                    big.median,
                    large_shape.nodes()
                )
            ),
        );
    }
    let total_small =
        baseline.plan.median + baseline.human.median + baseline.json.median + baseline.dot.median;
    let total_large = large.plan.median + large.human.median + large.json.median + large.dot.median;
    println!(
        "synthetic-dag: plan and all three renderings of 1000 nodes take {:.1?} ({:.1?} for 2 nodes; per-node cost ratio {:.2}x, 1.00x = linear)",
        total_large,
        total_small,
        per_node_ratio(
            total_small,
            baseline_shape.nodes(),
            total_large,
            large_shape.nodes()
        )
    );
    Ok(())
}

/// How much more one node costs in the large shape than in the small one (1.0 = linear).
fn per_node_ratio(small: Duration, small_nodes: usize, large: Duration, large_nodes: usize) -> f64 {
    let small_per_node = small.as_secs_f64() / small_nodes as f64;
    let large_per_node = large.as_secs_f64() / large_nodes as f64;
    if small_per_node == 0.0 {
        return f64::NAN;
    }
    large_per_node / small_per_node
}
