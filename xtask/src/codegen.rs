//! `cargo xtask codegen [--check]`: writes the generated files (`schemas/plan.schema.json`,
//! from the plan model's serde/schemars types); `--check` fails when one is stale.

use anyhow::{Result, bail};

/// Every generated file: its path under the workspace root and its fresh contents.
pub fn generated_files() -> Vec<(&'static str, String)> {
    let schema = serde_json::to_string_pretty(&omsup_model::PlanFile::json_schema())
        .expect("a schema serializes");
    vec![("schemas/plan.schema.json", schema + "\n")]
}

pub fn run(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask codegen [--check]"),
    };
    let mut stale = Vec::new();
    for (path, contents) in generated_files() {
        let full = crate::workspace_root().join(path);
        if std::fs::read_to_string(&full).is_ok_and(|old| old == contents) {
            continue;
        }
        if check {
            stale.push(path);
        } else {
            std::fs::create_dir_all(full.parent().expect("generated files live in a directory"))?;
            std::fs::write(&full, contents)?;
            eprintln!("codegen: wrote {path}");
        }
    }
    if !stale.is_empty() {
        bail!(
            "stale generated files: {}\nhint: run `cargo xtask codegen` and commit the result",
            stale.join(", ")
        );
    }
    Ok(())
}
