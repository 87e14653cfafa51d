//! The command line itself, through the real binary: every command's `--help` has examples and
//! its exit codes, completions for every shell, `--version` names the commit, and usage errors
//! exit with a code of their own; colour is decided per stream.

use clap::CommandFactory as _;
use omsup::cli::{Cli, help};

use crate::support::{omsup, workspace_root};

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
    assert_eq!(checked, 13, "every command checked");
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

/// Runs omsup with `stdout` and a terminal (a pty) as stderr, colour left to each stream;
/// returns the exit code and what reached the terminal.
fn with_terminal_stderr(args: &[&str], stdout: std::process::Stdio) -> (Option<i32>, String) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::io::Read as _;

    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    // Read the terminal while omsup writes to it (once every copy of its other end is
    // closed, the read ends with an error).
    let mut master = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(read @ 1..) = master.read(&mut buffer) {
            seen.extend_from_slice(&buffer[..read]);
        }
        seen
    });
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_omsup"))
        .args(args)
        .current_dir(workspace_root())
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CI")
        .env("TERM", "xterm-256color")
        .stdout(stdout)
        .stderr(terminal)
        .status()
        .unwrap();
    let seen = reader.join().unwrap();
    (status.code(), String::from_utf8_lossy(&seen).into_owned())
}

/// As `omsup lint plans/*.toml > report.txt` typed at a terminal: stdout is a file, stderr the
/// terminal. The findings in the file carry no escape codes (colour decided from stderr alone,
/// the old way, wrote them into the file), while errors on the terminal stay coloured.
#[test]
fn colour_is_decided_per_stream_so_a_redirected_stdout_gets_no_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.txt");
    let lint = ["lint", "tests/lint/three-mistakes.toml"];
    let (code, _) = with_terminal_stderr(&lint, std::fs::File::create(&report).unwrap().into());
    assert_eq!(code, Some(1), "the corpus file has errors");
    let in_file = std::fs::read_to_string(&report).unwrap();
    assert!(
        in_file.contains("error["),
        "no findings in the file: {in_file}"
    );
    assert!(
        !in_file.contains('\x1b'),
        "escape codes in the redirected stdout: {in_file:?}"
    );

    // The same findings, on stderr (the terminal) this time, are coloured.
    let plan = ["plan", "-f", "tests/lint/three-mistakes.toml"];
    let (code, on_terminal) = with_terminal_stderr(&plan, std::process::Stdio::null());
    assert_eq!(code, Some(1));
    assert!(
        on_terminal.contains("three-mistakes.toml") && on_terminal.contains('\x1b'),
        "the findings on the terminal are not coloured: {on_terminal:?}"
    );
}
