//! The lab's processes: members and workload clients, each started inside
//! its datacenter's network namespace, and the signals a scenario sends
//! them. [`Processes`] owns every child and kills them all when dropped.
//!
//! Each child is started with `setns(2)` into its datacenter's namespace
//! (what `ip netns exec` does), in a process group of its own datacenter
//! (so the terminal's Ctrl-C reaches only the drill, and one `kill(2)` on
//! the group hits the whole datacenter at the same instant), and with
//! `PR_SET_PDEATHSIG = SIGKILL`, so no child outlives the drill even if the
//! drill is killed outright.
//!
//! # Correctness
//!
//! - Children are spawned from threads that live as long as the drill's
//!   runtime (never from a blocking-pool thread), because the death signal
//!   fires when the spawning *thread* exits.
//! - The registry of live pids and their datacenters is what the loopback
//!   relay uses to tell datacenters apart; a pid leaves it when its process
//!   is killed or reaped.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::DrillError;

/// What a process is in the drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A `firebreak serve` member.
    Member,
    /// A `firebreak drill-client` workload client.
    Client,
}

/// Live pids and their datacenters (shared with the loopback relay).
pub use firebreak_netlab::relay::Registry;

/// One child process.
struct Proc {
    name: String,
    dc: usize,
    role: Role,
    child: Child,
    stopped: bool,
    exited: bool,
}

/// Every child of the drill.
pub struct Processes {
    procs: Vec<Proc>,
    registry: Registry,
    /// Process group of each datacenter's live processes.
    groups: HashMap<usize, i32>,
}

impl Default for Processes {
    fn default() -> Self {
        Processes {
            procs: Vec::new(),
            registry: Arc::new(Mutex::new(HashMap::new())),
            groups: HashMap::new(),
        }
    }
}

fn send(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a pid (or -pgid) of our own children.
    unsafe {
        libc::kill(pid, signal);
    }
}

impl Processes {
    /// The shared pid registry.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Starts `cmd` as `name` in datacenter `dc`, inside the namespace
    /// `netns` if given.
    pub fn spawn(
        &mut self,
        name: &str,
        dc: usize,
        role: Role,
        mut cmd: Command,
        netns: Option<RawFd>,
    ) -> Result<u32, DrillError> {
        self.reap();
        let group = self.groups.get(&dc).copied().unwrap_or(0);
        // SAFETY: between fork and exec only async-signal-safe calls:
        // setns, setpgid, prctl, getppid.
        let parent = unsafe { libc::getpid() };
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = netns {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setpgid(0, group) != 0 && libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(DrillError::io(
            "cannot start a process",
            format!("{name} ({:?})", cmd.get_program()),
        ))?;
        let pid = child.id();
        // SAFETY: getpgid on our own child.
        let pgid = unsafe { libc::getpgid(pid as i32) };
        if pgid > 0 {
            self.groups.insert(dc, pgid);
        }
        self.registry.lock().expect("registry lock").insert(pid, dc);
        self.procs.push(Proc {
            name: name.to_owned(),
            dc,
            role,
            child,
            stopped: false,
            exited: false,
        });
        Ok(pid)
    }

    fn live(&mut self, dc: usize) -> impl Iterator<Item = &mut Proc> {
        self.procs.iter_mut().filter(move |p| p.dc == dc && !p.exited)
    }

    /// SIGKILLs every process of `dc` at once (one signal to the
    /// datacenter's process group, then to each pid in case one left it),
    /// reaps them, and returns their names.
    pub fn kill_dc(&mut self, dc: usize) -> Vec<String> {
        if let Some(group) = self.groups.remove(&dc) {
            send(-group, libc::SIGKILL);
        }
        let pids: Vec<i32> = self.live(dc).map(|p| p.child.id() as i32).collect();
        for pid in pids {
            send(pid, libc::SIGKILL);
        }
        let mut names = Vec::new();
        for p in self.live(dc) {
            let _ = p.child.wait();
            p.exited = true;
            names.push(p.name.clone());
        }
        self.forget_exited();
        names
    }

    /// SIGKILLs the process called `name` and reaps it; whether it ran.
    pub fn kill(&mut self, name: &str) -> bool {
        let mut killed = false;
        for p in self.procs.iter_mut().filter(|p| p.name == name && !p.exited) {
            send(p.child.id() as i32, libc::SIGKILL);
            let _ = p.child.wait();
            p.exited = true;
            killed = true;
        }
        self.forget_exited();
        killed
    }

    /// SIGSTOPs every process of `dc`; returns their names.
    pub fn stop_dc(&mut self, dc: usize) -> Vec<String> {
        if let Some(group) = self.groups.get(&dc) {
            send(-group, libc::SIGSTOP);
        }
        let mut names = Vec::new();
        for p in self.live(dc) {
            send(p.child.id() as i32, libc::SIGSTOP);
            p.stopped = true;
            names.push(p.name.clone());
        }
        names
    }

    /// SIGCONTs every stopped process of `dc`.
    pub fn cont_dc(&mut self, dc: usize) {
        if let Some(group) = self.groups.get(&dc) {
            send(-group, libc::SIGCONT);
        }
        for p in self.live(dc) {
            send(p.child.id() as i32, libc::SIGCONT);
            p.stopped = false;
        }
    }

    /// Whether the process called `name` is running (or stopped).
    pub fn is_alive(&mut self, name: &str) -> bool {
        self.reap();
        self.procs.iter().any(|p| p.name == name && !p.exited)
    }

    /// Whether any client process is still running.
    pub fn clients_running(&mut self) -> bool {
        self.reap();
        self.procs.iter().any(|p| p.role == Role::Client && !p.exited)
    }

    /// SIGKILLs the clients still running; returns their names.
    pub fn kill_clients(&mut self) -> Vec<String> {
        let mut names = Vec::new();
        for p in self.procs.iter_mut().filter(|p| p.role == Role::Client && !p.exited) {
            let _ = p.child.kill();
            let _ = p.child.wait();
            p.exited = true;
            names.push(p.name.clone());
        }
        self.forget_exited();
        names
    }

    /// Names and exit statuses of processes that exited on their own since
    /// the last call (members that crashed, clients that finished).
    pub fn reap(&mut self) -> Vec<(String, Role, std::process::ExitStatus)> {
        let mut out = Vec::new();
        for p in self.procs.iter_mut().filter(|p| !p.exited) {
            if let Ok(Some(status)) = p.child.try_wait() {
                p.exited = true;
                out.push((p.name.clone(), p.role, status));
            }
        }
        self.forget_exited();
        out
    }

    fn forget_exited(&mut self) {
        let mut registry = self.registry.lock().expect("registry lock");
        for p in self.procs.iter().filter(|p| p.exited) {
            registry.remove(&p.child.id());
        }
    }

    /// Stops everything: SIGTERM (members flush their logs), SIGCONT for
    /// stopped ones, then SIGKILL whatever is left after `grace`.
    pub fn terminate_all(&mut self, grace: Duration) {
        for p in self.procs.iter_mut().filter(|p| !p.exited) {
            send(p.child.id() as i32, libc::SIGTERM);
            if p.stopped {
                send(p.child.id() as i32, libc::SIGCONT);
                p.stopped = false;
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.procs.iter().any(|p| !p.exited) {
            self.reap();
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in self.procs.iter_mut().filter(|p| !p.exited) {
            let _ = p.child.kill();
            let _ = p.child.wait();
            p.exited = true;
        }
        self.forget_exited();
        self.groups.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().filter(|p| !p.exited) {
            let _ = p.child.kill();
            let _ = p.child.wait();
            p.exited = true;
        }
    }
}
