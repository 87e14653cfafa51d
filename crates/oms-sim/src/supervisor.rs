//! The supervisor's view of OMS's components, as `supervisorctl status` prints it.
//!
//! `oms-sim serve` records each component's state in a file inside the container
//! ([`Paths::supervisor_state`]); `oms-sim supervisorctl status` (what the image's
//! `supervisorctl` runs) prints it the way supervisor does, one line per component, and exits
//! 0 only when every component is RUNNING (3 otherwise, as supervisorctl 4 does). The components
//! are STARTING while the service starts and turn RUNNING a while after the start line
//! (`OMS_SIM_COMPONENTS_DELAY_MS` / `sim-components-delay-ms`, default 500), so an init started
//! on the start line alone finds them still starting.

use crate::Paths;

/// The components the zh-CN 4.2.x upgrade guides wait for.
pub const COMPONENTS: [&str; 5] = [
    "nginx",
    "oms_console",
    "oms_drc_cm",
    "oms_drc_supervisor",
    "sshd",
];

/// Records every component in `state` (`STARTING`, `RUNNING`).
pub fn record(paths: &Paths, state: &str) {
    let text: String = COMPONENTS
        .iter()
        .map(|component| format!("{component} {state}\n"))
        .collect();
    if let Some(parent) = paths.supervisor_state.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&paths.supervisor_state, text);
}

/// Every component and its state; `None` when the supervisor is not up (no state recorded).
pub fn states(paths: &Paths) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(&paths.supervisor_state).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(component, state)| (component.to_owned(), state.trim().to_owned()))
            .collect(),
    )
}

/// The components not RUNNING, as `name STATE`; empty when all run.
pub fn not_running(paths: &Paths) -> Vec<String> {
    match states(paths) {
        None => vec!["supervisord is not running".to_owned()],
        Some(states) => states
            .into_iter()
            .filter(|(_, state)| state != "RUNNING")
            .map(|(component, state)| format!("{component} {state}"))
            .collect(),
    }
}

/// `supervisorctl status`: prints the table; the exit code says whether all run.
pub fn supervisorctl(args: &[String]) -> Result<bool, String> {
    if args.first().map(String::as_str) != Some("status") {
        return Err("usage: supervisorctl status".to_owned());
    }
    let paths = Paths::from_env();
    let Some(states) = states(&paths) else {
        println!("unix:///tmp/supervisor.sock no such file");
        return Ok(false);
    };
    let mut all_running = true;
    for (component, state) in &states {
        all_running &= state == "RUNNING";
        let detail = if state == "RUNNING" {
            "pid 100, uptime 0:00:01"
        } else {
            ""
        };
        println!("{component:<33}{state:<10}{detail}");
    }
    Ok(all_running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_not_running_until_recorded_so() {
        let dir = std::env::temp_dir().join(format!("oms-sim-supervisor-{}", std::process::id()));
        let paths = Paths::under(&dir);
        assert_eq!(not_running(&paths), ["supervisord is not running"]);
        record(&paths, "STARTING");
        assert_eq!(not_running(&paths).len(), COMPONENTS.len());
        assert!(not_running(&paths).contains(&"oms_console STARTING".to_owned()));
        record(&paths, "RUNNING");
        assert!(not_running(&paths).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
