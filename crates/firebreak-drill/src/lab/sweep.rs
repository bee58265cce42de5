//! Removing what drills that died without cleaning up (SIGKILL, power loss)
//! left behind: namespaces `fbdrill<pid>-dc<n>`, links `fbd<pid>h<n>`,
//! nftables tables `inet fbdrill<pid>`, power-cut layers (FUSE) mounted
//! under `$TMPDIR/fbdrill<pid>-mnt-*` and temporary data directories
//! `$TMPDIR/fbdrill<pid>-*` whose pid is no longer a running `firebreak`
//! process. Their members and clients died with them (`PR_SET_PDEATHSIG`).
//!
//! # Correctness
//!
//! A leftover is removed only if its pid is not alive as a `firebreak`
//! process, so a drill running concurrently is never touched; a recycled pid
//! that now belongs to another program does not protect a leftover.

use super::cmd;

/// Whether `pid` is a live `firebreak` process.
pub fn drill_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "firebreak",
        Err(_) => false,
    }
}

/// The pid in a leftover's name: `<prefix><digits><rest>`.
pub fn pid_in(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

/// Removes every leftover of dead drills (network objects only with
/// `network`); returns what was removed.
pub fn sweep(network: bool) -> Vec<String> {
    let mut removed = Vec::new();
    let me = std::process::id();
    let dead = |pid: u32| pid != me && !drill_alive(pid);

    // The power-cut layers of dead drills first: their mount points sit in
    // the temporary directories removed below.
    let temp = std::env::temp_dir();
    for point in firebreak_faultfs::faultfs_mounts().unwrap_or_default() {
        let Ok(rel) = point.strip_prefix(&temp) else { continue };
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if pid_in(&first, "fbdrill").is_some_and(dead) && firebreak_faultfs::unmount_lazy(&point).unwrap_or(false) {
            removed.push(format!("power-cut layer mounted on {}", point.display()));
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_data = pid_in(&name, "fbdrill").is_some_and(dead) && name.contains('-');
            if is_data && entry.path().is_dir() && std::fs::remove_dir_all(entry.path()).is_ok() {
                removed.push(format!("data directory {}", entry.path().display()));
            }
        }
    }
    if !network {
        return removed;
    }

    if let Ok(list) = cmd::run("ip", &["netns", "list"]) {
        for line in list.lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if pid_in(name, "fbdrill").is_some_and(dead) {
                cmd::run_quietly("ip", &["netns", "del", name]);
                removed.push(format!("namespace {name}"));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if pid_in(&name, "fbd").is_some_and(dead) {
                cmd::run_quietly("ip", &["link", "del", &name]);
                removed.push(format!("link {name}"));
            }
        }
    }
    if let Ok(tables) = cmd::run("nft", &["list", "tables"]) {
        for line in tables.lines() {
            let mut words = line.split_whitespace();
            let (Some("table"), Some(family), Some(name)) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            if pid_in(name, "fbdrill").is_some_and(dead) {
                cmd::run_quietly("nft", &["delete", "table", family, name]);
                removed.push(format!("nftables table {family} {name}"));
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_read_from_names() {
        assert_eq!(pid_in("fbdrill1234-dc1", "fbdrill"), Some(1234));
        assert_eq!(pid_in("fbd77h3", "fbd"), Some(77));
        assert_eq!(pid_in("fbdrill", "fbdrill"), None);
        assert_eq!(pid_in("fbdx1", "fbd"), None);
        assert_eq!(pid_in("eth0", "fbd"), None);
    }

    #[test]
    fn only_live_firebreak_processes_count() {
        // This test binary is not called `firebreak`.
        assert!(!drill_alive(std::process::id()));
        assert!(!drill_alive(u32::MAX));
    }
}
