//! `omsup report` checked in a real headless browser (Debian's chromium): the page loads from
//! a file with nothing fetched, and the browser's DOM holds every journaled step, each attempt
//! (a failed one and its retry), the downtime band, the HA markers and the backup sizes.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::apply::show;
use crate::support::omsup;

/// The DOM chromium built from `page` (`--dump-dom`), or a loud failure when chromium is not
/// installed (`cargo xtask ci` installs it).
pub fn browser_dom(page: &Path) -> String {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run chromium: {error}\nhint: `cargo xtask ci` installs it (Debian's `chromium`)")
        });
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `omsup report` of the last run of `plan`, loaded in chromium; checks it against the
/// journal (`omsup status --format json`). `retried` is a step whose first attempt failed.
pub fn assert_report_shows_the_run(plan: &str, dir: &Path, status: &Value, retried: &str) {
    let page = dir.join("run.html");
    let run = omsup(&["report", "-f", plan, "--out", page.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", show(&run));
    assert_eq!(run.stdout.trim(), page.to_str().unwrap());
    let html = std::fs::read_to_string(&page).unwrap();
    for fetch in ["src=", "href=", "<script", "<link"] {
        assert!(
            !html.contains(fetch),
            "the page must be self-contained: {fetch}"
        );
    }
    let dom = browser_dom(&page);
    let steps = status["run"]["steps"].as_array().expect("journaled steps");
    let mut found = 0;
    for step in steps {
        let id = step["step_id"].as_str().unwrap();
        let row = format!("<g class=\"row\" data-step=\"{id}\"");
        assert!(
            dom.contains(&row),
            "the browser's DOM lacks the row of {id}"
        );
        found += 1;
    }
    assert!(found >= 10, "only {found} steps");
    let row_start = dom
        .find(&format!("<g class=\"row\" data-step=\"{retried}\""))
        .unwrap();
    let row = &dom[row_start..row_start + dom[row_start..].find("</g>").unwrap()];
    assert!(
        row.contains("class=\"bar failed\" data-attempt=\"1\""),
        "{row}"
    );
    assert!(
        row.contains("class=\"bar succeeded\" data-attempt=\"2\""),
        "{row}"
    );
    assert!(dom.contains("<rect class=\"downtime\""), "no downtime band");
    assert!(dom.contains(">HA off</text>") && dom.contains(">HA on</text>"));
    assert!(dom.contains("dump "), "no backup size");
}
