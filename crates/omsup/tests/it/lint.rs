//! `omsup lint`: the corpus of bad plan files under `tests/lint/`, each with a snapshot of
//! exactly what a user sees (`tests/lint/snapshots/`), and the output formats.
//!
//! To accept changed output after reviewing it: `INSTA_UPDATE=always cargo test -p omsup
//! --test it lint` (or `cargo insta review`), then commit the snapshots.

use crate::support::{omsup, workspace_root};

fn corpus() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("tests/lint"))
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension().is_some_and(|ext| ext == "toml"))
                .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_bad_plan_file_prints_what_a_user_sees() {
    let names = corpus();
    assert!(
        names.len() >= 30,
        "the corpus shrank to {} files",
        names.len()
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(workspace_root().join("tests/lint/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for name in &names {
            let file = format!("tests/lint/{name}.toml");
            let run = omsup(&["lint", &file]);
            assert!(
                run.stdout.contains(&format!("--> {file}:")),
                "{name}: no finding located in the file:\n{}",
                run.stdout
            );
            let expected_code = if name.starts_with("warning-") { 0 } else { 1 };
            assert_eq!(run.code, expected_code, "{name}:\n{}", run.stdout);
            insta::assert_snapshot!(
                name.as_str(),
                format!("exit code: {}\n{}", run.code, run.stdout)
            );
        }
    });
}

#[test]
fn the_example_plans_lint_clean() {
    let plans: Vec<String> = std::fs::read_dir(workspace_root().join("plans"))
        .unwrap()
        .map(|e| format!("plans/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".toml"))
        .collect();
    let mut args = vec!["lint"];
    args.extend(plans.iter().map(String::as_str));
    let run = omsup(&args);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!("{} files checked: 0 errors, 0 warnings\n", plans.len())
    );
}

#[test]
fn three_mistakes_give_three_located_findings_with_carets() {
    let run = omsup(&["lint", "tests/lint/three-mistakes.toml"]);
    assert_eq!(run.code, 1);
    let headers: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("error["))
        .collect();
    assert_eq!(headers.len(), 3, "{}", run.stdout);
    let locations: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| {
            l.trim_start()
                .starts_with("--> tests/lint/three-mistakes.toml:")
        })
        .collect();
    assert_eq!(locations.len(), 3, "{}", run.stdout);
    for location in locations {
        let mut parts = location.rsplit(':');
        let column: usize = parts.next().unwrap().parse().unwrap();
        let line: usize = parts.next().unwrap().parse().unwrap();
        assert!(line > 1 && column >= 1, "{location}");
    }
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('|') && l.contains('^'))
            .count(),
        3
    );
    assert!(
        run.stdout
            .ends_with("1 file checked: 3 errors, 0 warnings\n")
    );
}

/// `::error file=F,line=L,col=C,endLine=L,endColumn=C,title=T::message`, as GitHub parses it.
fn assert_github_annotation(line: &str) {
    let rest = line
        .strip_prefix("::error ")
        .or_else(|| line.strip_prefix("::warning "))
        .unwrap_or_else(|| panic!("not an annotation: {line}"));
    let (properties, message) = rest
        .split_once("::")
        .unwrap_or_else(|| panic!("no `::` before the message: {line}"));
    assert!(!message.is_empty() && !message.contains('\n'));
    let keys: Vec<&str> = properties
        .split(',')
        .map(|p| p.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        keys,
        ["file", "line", "col", "endLine", "endColumn", "title"],
        "{line}"
    );
    for property in properties.split(',') {
        let (key, value) = property.split_once('=').unwrap();
        if key != "file" && key != "title" {
            value
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("{key} is not a number in {line}"));
        }
        assert!(
            !value.contains(':') && !value.contains(','),
            "unescaped property in {line}"
        );
    }
}

#[test]
fn github_format_is_one_workflow_command_per_finding() {
    let run = omsup(&[
        "lint",
        "--format",
        "github",
        "tests/lint/many-findings.toml",
        "tests/lint/warning-tcp-without-tls.toml",
    ]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", run.stdout);
    lines.iter().for_each(|line| assert_github_annotation(line));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::warning file=tests/lint/warning-tcp-without-tls.toml,"))
    );
}

#[test]
fn json_format_is_versioned_and_locates_every_finding() {
    let run = omsup(&[
        "lint",
        "--format",
        "json",
        "tests/lint/three-mistakes.toml",
        "plans/single-node.toml",
    ]);
    assert_eq!(run.code, 1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["summary"]["errors"], 3);
    assert_eq!(report["files"][1]["findings"].as_array().unwrap().len(), 0);
    for finding in report["files"][0]["findings"].as_array().unwrap() {
        for key in [
            "severity",
            "code",
            "message",
            "path",
            "line",
            "column",
            "end_line",
            "end_column",
        ] {
            assert!(finding.get(key).is_some(), "{key} missing in {finding}");
        }
    }
    let codes: Vec<&str> = report["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["unknown-key", "literal-password", "duplicate-node-ip"]
    );
}

#[test]
fn an_unreadable_file_exits_64_and_the_others_are_still_checked() {
    let run = omsup(&[
        "lint",
        "tests/lint/does-not-exist.toml",
        "tests/lint/literal-password.toml",
    ]);
    assert_eq!(run.code, 64);
    assert!(
        run.stdout
            .contains("error: cannot read `tests/lint/does-not-exist.toml`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("error[literal-password]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("2 files checked: 1 error, 0 warnings, 1 unreadable\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let run = omsup(&["lint", "--help"]);
    assert_eq!(run.code, 0);
    for code in [
        "0   no findings at error level",
        "1   at least one finding at error level",
        "64  usage error",
    ] {
        assert!(run.stdout.contains(code), "{}", run.stdout);
    }
    let run = omsup(&["--help"]);
    assert!(run.stdout.contains("Exit codes:"), "{}", run.stdout);
}

#[test]
fn a_usage_error_exits_64_not_2_which_means_changes_for_plan() {
    let run = omsup(&["lint"]);
    assert_eq!(run.code, 64);
    assert!(run.stderr.contains("<FILE>"), "{}", run.stderr);
}
