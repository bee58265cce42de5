//! The scenarios: what happens to the faulted datacenter, what comes back,
//! and the hypothesis each one tests.
//!
//! | scenario | at the fault | on restore |
//! | --- | --- | --- |
//! | `fire` | SIGKILL every member and client of the datacenter at one instant, cut its network | heal, restart its members on the same data directories, start new clients there |
//! | `leader-fire` | a `fire` in whichever datacenter holds the leader | same |
//! | `isolate` | cut its network both ways (relay and nftables); processes keep running | heal |
//! | `leader-isolate` | an `isolate` of whichever datacenter holds the leader | same |
//! | `pause` | SIGSTOP every member and client of the datacenter | SIGCONT |
//! | `power-loss` | a `fire` whose members also lose every write they had not fsynced (their data directories sit on a FUSE layer that drops it) | as `fire`, on what survived |
//! | `restart` | SIGKILL one member and start it again at once, again and again, the leader most often | (nothing: each restart is immediate) |
//! | `chaos` | a seeded random sequence of all of the above, several overlapping | each datacenter fault is undone in turn |
//!
//! The timeline of each is planned in [`crate::schedule`].

use crate::args::ScenarioArg;

/// What a datacenter-wide fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcFault {
    /// Kill every process and cut the network.
    Fire,
    /// A fire whose members lose what they had not fsynced.
    PowerLoss,
    /// Cut the network; processes keep running.
    Isolate,
    /// Freeze every process.
    Pause,
}

impl DcFault {
    /// The fault, as a verb phrase for the terminal and the report.
    pub fn action(self, dc: &str) -> String {
        match self {
            DcFault::Fire => format!("{dc} burns: every member and client killed (SIGKILL), network cut"),
            DcFault::PowerLoss => format!(
                "{dc} loses power: every member and client killed (SIGKILL), network cut, and every write its \
                 members had not fsynced dropped"
            ),
            DcFault::Isolate => format!("{dc} is cut off: network dropped both ways, processes keep running"),
            DcFault::Pause => format!("{dc} freezes: every member and client stopped (SIGSTOP)"),
        }
    }

    /// The undoing, as a verb phrase.
    pub fn recovery(self, dc: &str) -> String {
        match self {
            DcFault::Fire => format!("{dc} comes back: members restarted on their data, network healed, new clients"),
            DcFault::PowerLoss => {
                format!("{dc} comes back: members restarted on what their disks kept, network healed, new clients")
            }
            DcFault::Isolate => format!("{dc} is reconnected"),
            DcFault::Pause => format!("{dc} resumes (SIGCONT)"),
        }
    }

    /// Whether the datacenter's processes die (and are started again on
    /// restore).
    pub fn kills(self) -> bool {
        matches!(self, DcFault::Fire | DcFault::PowerLoss)
    }
}

/// What a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// One datacenter-wide fault, undone after `--restore-after`.
    Dc(DcFault),
    /// Members killed and restarted at once, repeatedly.
    Restart,
    /// A seeded random mix of the others, overlapping.
    Chaos,
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
    /// Its name in reports: `fire`, `leader-fire`, `isolate`, ...
    pub name: &'static str,
    /// What it does.
    pub fault: Fault,
    /// To which datacenter (for a datacenter-wide fault).
    pub target: Target,
}

impl Scenario {
    /// The scenarios `--scenario` asks for, in order (`all` is each in turn);
    /// `dc` is `--dc` (0-based), which the `leader-` scenarios ignore.
    pub fn expand(arg: ScenarioArg, dc: Option<usize>) -> Vec<Scenario> {
        let target = dc.map_or(Target::Leader, Target::Dc);
        let dc_fault = |name, fault, target| Scenario {
            name,
            fault: Fault::Dc(fault),
            target,
        };
        let fire = dc_fault("fire", DcFault::Fire, target);
        let leader_fire = dc_fault("leader-fire", DcFault::Fire, Target::Leader);
        let isolate = dc_fault("isolate", DcFault::Isolate, target);
        let leader_isolate = dc_fault("leader-isolate", DcFault::Isolate, Target::Leader);
        let pause = dc_fault("pause", DcFault::Pause, target);
        let power_loss = dc_fault("power-loss", DcFault::PowerLoss, target);
        let restart = Scenario {
            name: "restart",
            fault: Fault::Restart,
            target: Target::Leader,
        };
        let chaos = Scenario {
            name: "chaos",
            fault: Fault::Chaos,
            target: Target::Leader,
        };
        match arg {
            ScenarioArg::Fire => vec![fire],
            ScenarioArg::LeaderFire => vec![leader_fire],
            ScenarioArg::Isolate => vec![isolate],
            ScenarioArg::LeaderIsolate => vec![leader_isolate],
            ScenarioArg::Pause => vec![pause],
            ScenarioArg::PowerLoss => vec![power_loss],
            ScenarioArg::Restart => vec![restart],
            ScenarioArg::Chaos => vec![chaos],
            ScenarioArg::All => vec![
                fire,
                isolate,
                leader_fire,
                pause,
                restart,
                power_loss,
                leader_isolate,
                chaos,
            ],
        }
    }

    /// Whether the scenario needs the FUSE layer under the members' data
    /// directories.
    pub fn needs_power_loss(&self) -> bool {
        self.fault == Fault::Dc(DcFault::PowerLoss)
    }

    /// The hypothesis the drill tests.
    pub fn hypothesis(&self, dc: &str) -> String {
        let common = "no acknowledged write is lost, every answer any client got is linearizable, \
                      revisions never go backwards, multi-key txns keep their invariant, no lock is held \
                      twice, no watcher misses or repeats an event, and clients in the other datacenters \
                      get service back within seconds";
        match self.fault {
            Fault::Dc(DcFault::Fire) => format!(
                "If datacenter {dc} burns down under load (every Firebreak process and client in it \
                 killed at the same instant, its network gone), {common}; when {dc} comes back on its \
                 old disks it catches up and all replicas agree."
            ),
            Fault::Dc(DcFault::PowerLoss) => format!(
                "If datacenter {dc} loses power under load (every process in it killed at the same \
                 instant, and every write its members had not fsynced gone, files and directory entries \
                 alike), {common}; no member lost anything it had already applied; when {dc} comes back \
                 on what its disks kept it catches up and all replicas agree."
            ),
            Fault::Dc(DcFault::Isolate) => format!(
                "If datacenter {dc} is cut off from the others while its processes keep running (and its \
                 own clients keep talking to it), its members serve no linearizable result and renew no \
                 lease while cut off, {common}; once reconnected it catches up and all replicas agree."
            ),
            Fault::Dc(DcFault::Pause) => format!(
                "If every process in datacenter {dc} freezes (a stalled host, a long GC pause) and later \
                 resumes as if nothing happened, nothing stale is served after it resumes, {common}; \
                 all replicas agree afterwards."
            ),
            Fault::Restart => format!(
                "If members are killed (SIGKILL) and started again at once, again and again, the leader \
                 most often, well inside an election timeout, {common}; all replicas agree afterwards."
            ),
            Fault::Chaos => format!(
                "Under a seeded random sequence of fires, power cuts, isolations, pauses and fast \
                 restarts, several overlapping, {common} once the faults are undone; all replicas agree \
                 afterwards."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_runs_each_scenario_once_and_the_leader_scenarios_ignore_dc() {
        let all = Scenario::expand(ScenarioArg::All, Some(1));
        let names: Vec<&str> = all.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "fire",
                "isolate",
                "leader-fire",
                "pause",
                "restart",
                "power-loss",
                "leader-isolate",
                "chaos"
            ]
        );
        assert_eq!(all[0].target, Target::Dc(1));
        assert_eq!(all[2].target, Target::Leader);
        assert_eq!(all[6].target, Target::Leader);
        assert_eq!(Scenario::expand(ScenarioArg::Fire, None)[0].target, Target::Leader);
        assert!(all[5].needs_power_loss() && !all[0].needs_power_loss());
    }
}
