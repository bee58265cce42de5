//! The scenarios: what happens to the faulted datacenter, what comes back,
//! and the hypothesis each one tests.
//!
//! | scenario | at the fault | on restore |
//! | --- | --- | --- |
//! | `fire` | SIGKILL every member and client of the datacenter at one instant, cut its network | heal, restart its members on the same data directories, start new clients there |
//! | `leader-fire` | a `fire` in whichever datacenter holds the leader | same |
//! | `isolate` | cut its network both ways (relay and nftables); processes keep running | heal |
//! | `pause` | SIGSTOP every member and client of the datacenter | SIGCONT |

use crate::args::ScenarioArg;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Kill every process and cut the network.
    Fire,
    /// Cut the network; processes keep running.
    Isolate,
    /// Freeze every process.
    Pause,
}

/// Which datacenter to fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The one whose member leads at the fault instant.
    Leader,
    /// This one (0-based).
    Dc(usize),
}

/// One scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Its name in reports: `fire`, `leader-fire`, `isolate`, `pause`.
    pub name: &'static str,
    /// What it does.
    pub fault: Fault,
    /// To which datacenter.
    pub target: Target,
}

impl Scenario {
    /// The scenarios `--scenario` asks for, in order (`all` is each in turn);
    /// `dc` is `--dc` (0-based), which `leader-fire` ignores.
    pub fn expand(arg: ScenarioArg, dc: Option<usize>) -> Vec<Scenario> {
        let target = dc.map_or(Target::Leader, Target::Dc);
        let fire = Scenario {
            name: "fire",
            fault: Fault::Fire,
            target,
        };
        let leader_fire = Scenario {
            name: "leader-fire",
            fault: Fault::Fire,
            target: Target::Leader,
        };
        let isolate = Scenario {
            name: "isolate",
            fault: Fault::Isolate,
            target,
        };
        let pause = Scenario {
            name: "pause",
            fault: Fault::Pause,
            target,
        };
        match arg {
            ScenarioArg::Fire => vec![fire],
            ScenarioArg::LeaderFire => vec![leader_fire],
            ScenarioArg::Isolate => vec![isolate],
            ScenarioArg::Pause => vec![pause],
            ScenarioArg::All => vec![fire, isolate, leader_fire, pause],
        }
    }

    /// The fault, as a verb phrase for the terminal and the report.
    pub fn action(&self, dc: &str) -> String {
        match self.fault {
            Fault::Fire => format!("{dc} burns: every member and client killed (SIGKILL), network cut"),
            Fault::Isolate => format!("{dc} is cut off: network dropped both ways, processes keep running"),
            Fault::Pause => format!("{dc} freezes: every member and client stopped (SIGSTOP)"),
        }
    }

    /// The undoing, as a verb phrase.
    pub fn recovery(&self, dc: &str) -> String {
        match self.fault {
            Fault::Fire => format!("{dc} comes back: members restarted on their data, network healed, new clients"),
            Fault::Isolate => format!("{dc} is reconnected"),
            Fault::Pause => format!("{dc} resumes (SIGCONT)"),
        }
    }

    /// The hypothesis the drill tests.
    pub fn hypothesis(&self, dc: &str) -> String {
        let common = "no acknowledged write is lost, every answer any client got is linearizable, \
                      revisions never go backwards, and clients in the other datacenters get service \
                      back within seconds";
        match self.fault {
            Fault::Fire => format!(
                "If datacenter {dc} burns down under load (every Firebreak process and client in it \
                 killed at the same instant, its network gone), {common}; when {dc} comes back on its \
                 old disks it catches up and all replicas agree."
            ),
            Fault::Isolate => format!(
                "If datacenter {dc} is cut off from the others while its processes keep running, its \
                 members serve no linearizable result while cut off, {common}; once reconnected it \
                 catches up and all replicas agree."
            ),
            Fault::Pause => format!(
                "If every process in datacenter {dc} freezes (a stalled host, a long GC pause) and later \
                 resumes as if nothing happened, nothing stale is served after it resumes, {common}; \
                 all replicas agree afterwards."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_runs_each_scenario_once_and_leader_fire_ignores_dc() {
        let all = Scenario::expand(ScenarioArg::All, Some(1));
        let names: Vec<&str> = all.iter().map(|s| s.name).collect();
        assert_eq!(names, ["fire", "isolate", "leader-fire", "pause"]);
        assert_eq!(all[0].target, Target::Dc(1));
        assert_eq!(all[2].target, Target::Leader);
        assert_eq!(Scenario::expand(ScenarioArg::Fire, None)[0].target, Target::Leader);
    }
}
