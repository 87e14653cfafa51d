//! Who and where: the user, host name and pid recorded with runs and locks, and whether a
//! process on this host is still alive (to call a lock stale).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The user running omsup: `$USER`, else `$LOGNAME`, else `uid <n>`.
pub fn current_user() -> String {
    for variable in ["USER", "LOGNAME"] {
        if let Ok(user) = std::env::var(variable)
            && !user.trim().is_empty()
        {
            return user;
        }
    }
    match std::fs::metadata("/proc/self") {
        Ok(metadata) => format!("uid {}", metadata.uid()),
        Err(_) => "unknown".to_owned(),
    }
}

/// This machine's host name (from the kernel, else `/etc/hostname`, else `$HOSTNAME`).
pub fn current_host() -> String {
    for file in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(name) = std::fs::read_to_string(file) {
            let name = name.trim();
            if !name.is_empty() {
                return name.to_owned();
            }
        }
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether process `pid` on this host is alive: `Some(false)` when `/proc` shows it gone (or a
/// zombie), `None` when this system has no `/proc` to ask.
pub fn process_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            Some(!matches!(state, Some("Z") | Some("X")))
        }
        Err(_) => Some(false),
    }
}
