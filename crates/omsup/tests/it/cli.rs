//! The command line itself, through the real binary: every command's `--help` has examples and
//! its exit codes, completions for every shell, `--version` names the commit, and usage errors
//! exit with a code of their own.

use clap::CommandFactory as _;
use omsup::cli::{Cli, help};

use crate::support::omsup;

#[test]
fn every_command_help_has_examples_and_exit_codes() {
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|name| name != "help")
        .collect();
    let documented: Vec<&str> = help::ALL.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, documented, "help::ALL lists every command, in order");
    let mut checked = 0;
    for name in &names {
        let run = omsup(&[name, "--help"]);
        assert_eq!(run.code, 0, "{name} --help\n{}", run.stderr);
        assert!(
            run.stdout.contains("\nExamples:\n  omsup "),
            "{name}\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("\nExit codes:\n  0 "),
            "{name}\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("\n  64  usage error"),
            "{name}\n{}",
            run.stdout
        );
        checked += 1;
    }
    assert_eq!(checked, 12, "every command checked");
    let root = omsup(&["--help"]);
    for line in [
        "Exit codes:",
        "  2   plan --detailed-exitcode: the plan has changes",
        "  64  usage error",
    ] {
        assert!(root.stdout.contains(line), "{line}\n{}", root.stdout);
    }
}

#[test]
fn completions_for_every_shell_name_the_commands() {
    let mut shells = 0;
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = omsup(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}\n{}", run.stderr);
        for command in ["rollback", "resume", "detailed-exitcode"] {
            assert!(run.stdout.contains(command), "{shell}: {command}");
        }
        shells += 1;
    }
    assert_eq!(shells, 5);
    let unknown = omsup(&["completions", "tcsh"]);
    assert_eq!(unknown.code, 64, "{}", unknown.stderr);
}

#[test]
fn version_names_the_commit() {
    let run = omsup(&["--version"]);
    assert_eq!(run.code, 0);
    let line = run.stdout.trim();
    assert!(line.starts_with("omsup 0.0.0 ("), "{line}");
    let inside = &line["omsup 0.0.0 (".len()..line.len() - 1];
    let (hash, date) = inside.split_once(' ').expect("hash and date");
    assert!(
        hash.len() == 10 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{line}"
    );
    assert_eq!(date.len(), 10, "{line}");
}

#[test]
fn an_unknown_flag_exits_64_which_no_plan_outcome_uses() {
    let run = omsup(&[
        "plan",
        "-f",
        "plans/two-nodes-ha.toml",
        "--detailed-exitcodes",
    ]);
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert!(run.stderr.contains("--detailed-exitcode"), "{}", run.stderr);
}
