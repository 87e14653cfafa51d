//! Repository rules as tests (rust-analyzer's tidy): the generated schema is fresh, every
//! example plan lints clean and validates against it, every Rust module starts with a `//!`.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Rewrites a stale file and fails, so that the fix is one commit away.
fn ensure_file_contents(path: &Path, contents: &str) {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    if old == contents {
        return;
    }
    std::fs::write(path, contents).unwrap();
    panic!(
        "{} was stale and has been regenerated: commit it (or run `cargo xtask codegen`)",
        path.display()
    );
}

#[test]
fn the_plan_schema_is_fresh() {
    let schema =
        serde_json::to_string_pretty(&omsup_model::PlanFile::json_schema()).unwrap() + "\n";
    ensure_file_contents(&workspace_root().join("schemas/plan.schema.json"), &schema);
}

fn example_plans() -> Vec<PathBuf> {
    let mut plans: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("plans"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    plans.sort();
    assert!(
        plans.len() >= 3,
        "plans/ should hold the examples: {plans:?}"
    );
    plans
}

#[test]
fn every_example_plan_lints_clean_and_matches_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("schemas/plan.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for plan in example_plans() {
        let text = std::fs::read_to_string(&plan).unwrap();
        assert!(
            text.starts_with("#:schema ../schemas/plan.schema.json\n"),
            "{} lacks the `#:schema` line",
            plan.display()
        );
        let linted = omsup_model::lint::lint_source(&text);
        assert!(
            linted.findings.is_empty(),
            "{}: {:#?}",
            plan.display(),
            linted.findings
        );
        let instance: serde_json::Value = toml::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", plan.display());
    }
}

#[test]
fn every_rust_module_starts_with_a_module_doc() {
    let mut missing = Vec::new();
    let mut stack = vec![
        workspace_root().join("crates"),
        workspace_root().join("xtask"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n != "target" && n != "snapshots")
                {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:#?}"
    );
}
