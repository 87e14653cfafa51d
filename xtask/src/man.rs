//! `cargo xtask man [DIR]`: man pages generated from omsup's clap definitions, one for
//! `omsup` and one per command (`omsup-plan.1`...), into `DIR` (default `target/man`).
//! Install with `cp target/man/*.1 /usr/local/share/man/man1/` (README).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory as _;

pub fn run(args: &[String]) -> Result<()> {
    let dir = match args {
        [] => crate::workspace_root().join("target/man"),
        [dir] => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask man [DIR]"),
    };
    let written = write_pages(&dir)?;
    eprintln!("man: {} pages in {}", written.len(), dir.display());
    Ok(())
}

/// Writes every page into `dir`; returns their paths.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root = omsup::cli::Cli::command().name("omsup");
    let mut pages = vec![("omsup".to_owned(), root.clone())];
    for sub in root.get_subcommands().filter(|c| c.get_name() != "help") {
        let name = format!("omsup-{}", sub.get_name());
        let bin_name = format!("omsup {}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).bin_name(bin_name)));
    }
    let mut written = Vec::new();
    for (name, command) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut bytes = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut bytes)
            .with_context(|| format!("cannot render {name}.1"))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_per_command_with_its_examples() {
        let dir = tempfile::tempdir().unwrap();
        let pages = super::write_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let expected: Vec<String> = [
            "",
            "-init",
            "-lint",
            "-plan",
            "-apply",
            "-resume",
            "-rollback",
            "-status",
            "-history",
            "-rehearse",
            "-graph",
            "-report",
            "-state",
            "-completions",
        ]
        .iter()
        .map(|c| format!("omsup{c}.1"))
        .collect();
        assert_eq!(names, expected, "omsup and a page per command");
        let plan = std::fs::read_to_string(dir.path().join("omsup-plan.1")).unwrap();
        assert!(plan.contains(".TH omsup-plan"), "{plan}");
        assert!(plan.contains("detailed\\-exitcode"), "{plan}");
        assert!(plan.contains("Exit codes:"), "{plan}");
    }
}
