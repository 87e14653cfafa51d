//! The fuzz corpus replayed as an ordinary test: every input under `corpus/<target>/` (and,
//! for the plan file, the lint corpus `tests/lint/` and the example plans `plans/`) through
//! its target, each bounded in time: no panic, no hang.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use omsup_fuzz::TARGETS;

/// Longer than any input takes on a loaded machine; a hang fails well before the suite's.
const PER_INPUT: Duration = Duration::from_secs(20);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// The inputs of `target`: its corpus folder, plus the repo's other plan files for `plan_file`.
fn inputs_of(target: &str) -> Vec<PathBuf> {
    let root = workspace_root();
    let mut inputs = files_in(&root.join("crates/omsup-fuzz/corpus").join(target));
    if target == "plan_file" {
        for dir in ["tests/lint", "plans"] {
            inputs.extend(
                files_in(&root.join(dir))
                    .into_iter()
                    .filter(|path| path.extension().is_some_and(|ext| ext == "toml")),
            );
        }
    }
    inputs
}

/// Runs `run(bytes)` on a thread of its own and fails when it panics or outlasts [`PER_INPUT`].
fn run_bounded(name: &str, path: &Path, run: fn(&[u8])) {
    let bytes = std::fs::read(path).unwrap();
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        run(&bytes);
        let _ = done.send(());
    });
    match finished.recv_timeout(PER_INPUT) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{name}: {} panicked (see above)", path.display())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: {} ran longer than {PER_INPUT:?}", path.display())
        }
    }
}

#[test]
fn every_corpus_input_runs_without_panic_or_hang() {
    let mut counts = Vec::new();
    for target in &TARGETS {
        let inputs = inputs_of(target.name);
        assert!(
            inputs.len() >= 4,
            "{}: only {} corpus inputs",
            target.name,
            inputs.len()
        );
        for path in &inputs {
            run_bounded(target.name, path, target.run);
        }
        counts.push(format!("{} {}", target.name, inputs.len()));
    }
    eprintln!("corpus replayed: {}", counts.join(", "));
}
