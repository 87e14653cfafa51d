//! `omsup lint FILE...`: every finding in every file, as snippets, JSON or GitHub annotations.
//!
//! Exit codes: 0 no error-level finding (warnings allowed), 1 at least one error-level
//! finding, 2 a file could not be read (the other files are still checked and reported).

use omsup_model::Severity;
use omsup_model::lint::lint_source;
use serde::Serialize;

use crate::cli::{LintArgs, LintFormat};
use crate::diagnostics::{line_column, render_github, render_human};
use crate::exit_codes;
use crate::report::CliError;
use crate::style::Style;

/// `--format json`: version 1 of the lint report. Fields are only ever added.
#[derive(Debug, Serialize)]
pub struct LintReportJson {
    pub format_version: u32,
    pub files: Vec<LintFileJson>,
    pub summary: LintSummaryJson,
}

#[derive(Debug, Serialize)]
pub struct LintFileJson {
    pub path: String,
    /// Set when the file could not be read; `findings` is then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
    pub findings: Vec<LintFindingJson>,
}

#[derive(Debug, Serialize)]
pub struct LintFindingJson {
    pub severity: &'static str,
    pub code: &'static str,
    pub message: String,
    /// Where in the plan, like `region[0].node[1].ip` (empty for the file as a whole).
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct LintSummaryJson {
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    pub unreadable: usize,
}

pub fn run(args: &LintArgs, style: &Style) -> Result<u8, CliError> {
    let mut report = LintReportJson {
        format_version: 1,
        files: Vec::new(),
        summary: LintSummaryJson::default(),
    };
    let mut out = String::new();
    for file in &args.files {
        let display = file.display().to_string();
        report.summary.files += 1;
        let source = match std::fs::read_to_string(file) {
            Ok(source) => source,
            Err(error) => {
                report.summary.unreadable += 1;
                let message = format!("cannot read `{display}`: {error}");
                match args.format {
                    LintFormat::Human => {
                        out.push_str(&CliError::new(message.clone()).render(style))
                    }
                    LintFormat::Github => {
                        out.push_str(&format!("::error file={display}::{message}\n"))
                    }
                    LintFormat::Json => {}
                }
                report.files.push(LintFileJson {
                    path: display,
                    read_error: Some(message),
                    findings: Vec::new(),
                });
                continue;
            }
        };
        let linted = lint_source(&source);
        let mut findings_json = Vec::new();
        for finding in &linted.findings {
            match finding.severity {
                Severity::Error => report.summary.errors += 1,
                Severity::Warning => report.summary.warnings += 1,
            }
            match args.format {
                LintFormat::Human => out.push_str(&render_human(&display, &source, finding, style)),
                LintFormat::Github => out.push_str(&render_github(&display, &source, finding)),
                LintFormat::Json => {
                    let span = finding.span.clone().unwrap_or(0..0);
                    let (line, column) = line_column(&source, span.start);
                    let (end_line, end_column) = line_column(&source, span.end);
                    findings_json.push(LintFindingJson {
                        severity: finding.severity.as_str(),
                        code: finding.code,
                        message: finding.message.clone(),
                        path: finding.path.to_string(),
                        line,
                        column,
                        end_line,
                        end_column,
                        hint: finding.hint.clone(),
                    });
                }
            }
        }
        report.files.push(LintFileJson {
            path: display,
            read_error: None,
            findings: findings_json,
        });
    }
    match args.format {
        LintFormat::Json => {
            out = serde_json::to_string_pretty(&report).expect("the lint report serializes") + "\n";
        }
        LintFormat::Human => out.push_str(&summary_line(&report.summary, style)),
        LintFormat::Github => {}
    }
    anstream::print!("{out}");
    Ok(if report.summary.unreadable > 0 {
        exit_codes::USAGE
    } else if report.summary.errors > 0 {
        exit_codes::FAILURE
    } else {
        exit_codes::SUCCESS
    })
}

fn summary_line(summary: &LintSummaryJson, style: &Style) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut parts = vec![
        plural(summary.errors, "error"),
        plural(summary.warnings, "warning"),
    ];
    if summary.unreadable > 0 {
        parts.push(format!("{} unreadable", summary.unreadable));
    }
    let text = format!(
        "{} checked: {}",
        plural(summary.files, "file"),
        parts.join(", ")
    );
    let painted = if summary.errors + summary.unreadable > 0 {
        style.red(&text)
    } else {
        style.green(&text)
    };
    format!("{painted}\n")
}
