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

/// Where `line` reads a value by a string key: `x["key"]`, `.get("key")`, `.pointer("/key")`.
fn string_keyed_read(line: &str) -> Option<&'static str> {
    let code = line.split("//").next().unwrap_or_default();
    let bytes = code.as_bytes();
    let indexed = code.match_indices("[\"").any(|(at, _)| {
        at > 0 && {
            let before = bytes[at - 1];
            before.is_ascii_alphanumeric() || matches!(before, b'_' | b')' | b']')
        }
    });
    if indexed {
        return Some("`[\"key\"]`");
    }
    [".get(\"", ".get_mut(\"", ".pointer(\""]
        .into_iter()
        .find(|pattern| code.contains(pattern))
}

/// The lines of `text` before its test module (by convention, `#[cfg(test)]` ends a file).
fn outside_tests(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .enumerate()
}

#[test]
fn the_string_key_scan_finds_what_it_should() {
    assert!(string_keyed_read(r#"let t1 = output["stopped_at"].as_u64();"#).is_some());
    assert!(string_keyed_read(r#"v.get("previous").cloned()"#).is_some());
    assert!(string_keyed_read(r#"json["data"]["healthy"]"#).is_some());
    assert!(string_keyed_read(r#"let names = vec!["a", "b"];"#).is_none());
    assert!(string_keyed_read(r#"for table in ["oms_project"] {"#).is_none());
    assert!(string_keyed_read(r#"// value["key"] in a comment"#).is_none());
}

/// Step outputs, captures and `ha.config` are types (ARCHITECTURE.md, "Data between parts is
/// typed"): the engine and the executors read no JSON by string key outside tests.
#[test]
fn engine_and_exec_read_no_json_by_string_key() {
    let mut found = Vec::new();
    let mut scanned = 0;
    let mut json_files = 0;
    for krate in ["omsup-engine", "omsup-exec"] {
        let mut stack = vec![workspace_root().join("crates").join(krate).join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    scanned += 1;
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Only files that handle JSON can read it by key; elsewhere `.get("K")`
                    // is a typed map (an env var, a config.yaml key).
                    if !text.contains("serde_json") {
                        continue;
                    }
                    json_files += 1;
                    for (index, line) in outside_tests(&text) {
                        if let Some(what) = string_keyed_read(line) {
                            found.push(format!(
                                "{}:{}: {what}: {}",
                                path.display(),
                                index + 1,
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(scanned >= 20, "scanned only {scanned} files");
    assert!(json_files >= 5, "only {json_files} files handle JSON");
    assert!(
        found.is_empty(),
        "JSON read by string key (use a type and serde): {found:#?}"
    );
}

/// What one crate may depend on: the workspace crates (normal and dev), and the outside crates
/// it must not know (ARCHITECTURE.md, "Invariants").
struct Layer {
    name: &'static str,
    dependencies: &'static [&'static str],
    dev_dependencies: &'static [&'static str],
    /// Groups of outside crates the crate must not depend on (normal dependencies).
    forbidden: &'static [&'static [&'static str]],
    /// When set, every outside (non-workspace) normal dependency must be one of these.
    only_outside: Option<&'static [&'static str]>,
}

/// Docker, SQL and the async runtime.
const WORLD: &[&str] = &["bollard", "sqlx", "tokio", "tokio-util"];
/// Terminals, clap and output formats.
const TERMINAL: &[&str] = &[
    "clap",
    "indicatif",
    "annotate-snippets",
    "tracing-subscriber",
];

const LAYERS: &[Layer] = &[
    Layer {
        name: "omsup-model",
        dependencies: &[],
        dev_dependencies: &[],
        forbidden: &[WORLD, TERMINAL],
        only_outside: None,
    },
    Layer {
        name: "omsup-engine",
        dependencies: &["omsup-model"],
        dev_dependencies: &[],
        forbidden: &[WORLD, TERMINAL],
        only_outside: Some(&[
            "petgraph",
            "serde",
            "serde_json",
            "thiserror",
            "sha2",
            "hex",
        ]),
    },
    Layer {
        name: "omsup-journal",
        dependencies: &["omsup-model"],
        dev_dependencies: &["omsup-testworld"],
        forbidden: &[&["bollard"], TERMINAL],
        only_outside: None,
    },
    Layer {
        name: "omsup-exec",
        dependencies: &["omsup-model", "omsup-engine"],
        dev_dependencies: &["omsup-testworld"],
        forbidden: &[TERMINAL],
        only_outside: None,
    },
    Layer {
        name: "omsup",
        dependencies: &["omsup-model", "omsup-engine", "omsup-exec", "omsup-journal"],
        dev_dependencies: &["omsup-testworld"],
        forbidden: &[],
        only_outside: None,
    },
    Layer {
        name: "omsup-testworld",
        dependencies: &["omsup-model"],
        dev_dependencies: &[],
        forbidden: &[TERMINAL],
        only_outside: None,
    },
    Layer {
        // Fuzz targets drive the parsers of every layer; only xtask (its corpus) uses them.
        name: "omsup-fuzz",
        dependencies: &["omsup-model", "omsup-exec", "omsup-journal", "omsup"],
        dev_dependencies: &[],
        forbidden: &[],
        only_outside: None,
    },
    Layer {
        name: "oms-sim",
        dependencies: &[],
        dev_dependencies: &[],
        forbidden: &[],
        only_outside: None,
    },
    Layer {
        name: "xtask",
        dependencies: &[
            "omsup-testworld",
            "omsup-model",
            "omsup-engine",
            "omsup",
            "omsup-fuzz",
        ],
        dev_dependencies: &[],
        forbidden: &[],
        only_outside: None,
    },
];

fn is_workspace_crate(name: &str) -> bool {
    name.starts_with("omsup") || name == "oms-sim" || name == "xtask"
}

/// The dependency names of one table (`dependencies`, `dev-dependencies`,
/// `build-dependencies`) of a manifest, renamed packages by their package name.
fn dependency_names(manifest: &toml::Table, table: &str) -> Vec<String> {
    let Some(entries) = manifest.get(table).and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|(key, value)| {
            value
                .get("package")
                .and_then(toml::Value::as_str)
                .unwrap_or(key)
                .to_owned()
        })
        .collect()
}

/// The edges of `manifest` that its layer does not allow, as `from -> to (table)`.
fn layering_violations(manifest: &toml::Table) -> Vec<String> {
    let name = manifest["package"]["name"].as_str().unwrap();
    let Some(layer) = LAYERS.iter().find(|layer| layer.name == name) else {
        return vec![format!(
            "crate `{name}` has no layer in repo_rules.rs: add it (and to ARCHITECTURE.md)"
        )];
    };
    let mut violations = Vec::new();
    if manifest.contains_key("target") {
        violations.push(format!(
            "{name}: platform-specific dependency tables are not checked; avoid them"
        ));
    }
    for (table, allowed) in [
        ("dependencies", layer.dependencies),
        ("build-dependencies", layer.dependencies),
        ("dev-dependencies", layer.dev_dependencies),
    ] {
        let normal = table != "dev-dependencies";
        for dependency in dependency_names(manifest, table) {
            let dependency = dependency.as_str();
            if is_workspace_crate(dependency) {
                // A dev-dependency may also be anything the crate may depend on normally.
                if !(allowed.contains(&dependency) || layer.dependencies.contains(&dependency)) {
                    violations.push(format!("{name} -> {dependency} ({table})"));
                }
            } else if !normal {
            } else if layer
                .forbidden
                .iter()
                .any(|group| group.contains(&dependency))
            {
                violations.push(format!("{name} -> {dependency} ({table}): forbidden"));
            } else if let Some(only) = layer.only_outside
                && !only.contains(&dependency)
            {
                violations.push(format!(
                    "{name} -> {dependency} ({table}): only {only:?} are allowed"
                ));
            }
        }
    }
    violations
}

#[test]
fn crates_depend_only_along_the_layers_of_the_architecture() {
    let root = workspace_root();
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("Cargo.toml"))
        .filter(|path| path.is_file())
        .collect();
    manifests.push(root.join("xtask/Cargo.toml"));
    let mut checked = Vec::new();
    let mut violations = Vec::new();
    for path in &manifests {
        let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        violations.extend(layering_violations(&manifest));
        checked.push(manifest["package"]["name"].as_str().unwrap().to_owned());
    }
    checked.sort();
    let mut expected: Vec<&str> = LAYERS.iter().map(|layer| layer.name).collect();
    expected.sort_unstable();
    assert_eq!(
        checked, expected,
        "every crate has a layer and every layer a crate"
    );
    assert!(
        violations.is_empty(),
        "dependencies that break ARCHITECTURE.md's layering: {violations:#?}"
    );
}

#[test]
fn the_layering_rule_catches_a_model_on_docker_and_an_executor_on_the_journal() {
    let manifest = |text: &str| -> toml::Table { toml::from_str(text).unwrap() };
    let model = manifest(
        "[package]\nname = \"omsup-model\"\n[dependencies]\nserde = \"1\"\nbollard = \"0.21\"\nomsup-engine = { path = \"../omsup-engine\" }\n",
    );
    assert_eq!(
        layering_violations(&model),
        [
            "omsup-model -> bollard (dependencies): forbidden",
            "omsup-model -> omsup-engine (dependencies)"
        ]
    );
    let exec = manifest(
        "[package]\nname = \"omsup-exec\"\n[dev-dependencies]\njournal = { package = \"omsup-journal\", path = \"../omsup-journal\" }\n",
    );
    assert_eq!(
        layering_violations(&exec),
        ["omsup-exec -> omsup-journal (dev-dependencies)"]
    );
    let engine =
        manifest("[package]\nname = \"omsup-engine\"\n[dependencies]\nreqwest = \"0.12\"\n");
    assert_eq!(layering_violations(&engine).len(), 1);
}
