//! Who and where: the user, host name and pid recorded with runs and locks, and whether a
//! process on this host is still alive (to call a lock stale). The kernel answers through
//! rustix (`uname`, `getuid`, `kill(pid, 0)`), not by reading `/proc`.

use rustix::process::{Pid, test_kill_process};

/// The user running omsup: `$USER`, else `$LOGNAME`, else `uid <n>`.
pub fn current_user() -> String {
    for variable in ["USER", "LOGNAME"] {
        if let Ok(user) = std::env::var(variable)
            && !user.trim().is_empty()
        {
            return user;
        }
    }
    format!("uid {}", rustix::process::getuid().as_raw())
}

/// This machine's host name, as the kernel knows it (`uname`), else `unknown`.
pub fn current_host() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    let name = name.trim();
    if name.is_empty() {
        "unknown".to_owned()
    } else {
        name.to_owned()
    }
}

/// Whether process `pid` on this host is alive: `Some(false)` when the kernel says there is no
/// such process, `Some(true)` when there is one (even one we may not signal, and a zombie
/// that its parent has not reaped yet), `None` for a pid that cannot be asked about (0, or
/// beyond the kernel's range).
pub fn process_alive(pid: u32) -> Option<bool> {
    let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
    match test_kill_process(pid) {
        Ok(()) => Some(true),
        Err(rustix::io::Errno::SRCH) => Some(false),
        Err(_) => Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert_eq!(process_alive(std::process::id()), Some(true));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(process_alive(pid), Some(false));
        assert_eq!(process_alive(0), None);
    }

    #[test]
    fn the_host_name_is_the_kernels() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(current_host(), kernel.trim());
        assert!(!current_user().is_empty());
    }
}
