//! The faults of one drill as a timeline: which fault strikes when, and
//! when each is undone, planned from the scenario and the seed before the
//! load starts (so a seed replays the same sequence).
//!
//! - A datacenter-wide scenario (`fire`, `isolate`, ...) is one fault at
//!   `--fault-at`, undone `--restore-after` later.
//! - `restart` kills a member and starts it again at once, every 1.5 to 4
//!   s (seeded) from `--fault-at` for `--restore-after` seconds (or until
//!   shortly before the load ends), the leader seven times in ten.
//! - `chaos` mixes every fault from `--fault-at` until shortly before the
//!   load ends: a datacenter-wide fault lasts 2 to 6 s; the next fault
//!   starts 0.5 to 3 s after the one before, so faults overlap, but two
//!   different datacenters are never down at the same time (the cluster
//!   keeps a quorum between restarts); every fault is undone before the
//!   load ends, so the drill can measure that service came back.
//!
//! # Correctness
//! - Every datacenter fault has exactly one undo, later than it.
//! - A target is named by role (the leader) or index; the drill resolves
//!   the leader when the step runs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scenario::{DcFault, Fault, Scenario, Target};

/// A member to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberPick {
    /// Whichever member leads when the step runs.
    Leader,
    /// The member at this index.
    Index(usize),
}

/// What one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fault `target` with `fault`; `id` names it for its undo.
    Down { id: usize, fault: DcFault, target: Target },
    /// Undo fault `id`.
    Up { id: usize },
    /// SIGKILL a member and start it again at once.
    Restart { member: MemberPick },
}

/// One step of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Seconds after the load starts.
    pub at_s: f64,
    pub action: Action,
}

/// The timing the plan works within, in seconds from the load's start.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub fault_at: f64,
    /// `--restore-after`, if not `never`.
    pub restore_after: Option<f64>,
    pub duration: f64,
    /// Members in the lab, datacenter by datacenter.
    pub members: usize,
    pub dcs: usize,
    /// Whether power cuts are possible (the FUSE layer is mounted).
    pub power_loss: bool,
}

/// Faults end this long before the load does, so that recovery can be seen.
const QUIET_END_S: f64 = 5.0;

/// The timeline of `scenario`, sorted by time.
pub fn plan(scenario: &Scenario, seed: u64, w: Window) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17_0000_0000);
    let last = (w.duration - QUIET_END_S).max(w.fault_at);
    let mut steps = match scenario.fault {
        Fault::Dc(fault) => {
            let mut steps = vec![Step {
                at_s: w.fault_at,
                action: Action::Down {
                    id: 0,
                    fault,
                    target: scenario.target,
                },
            }];
            if let Some(after) = w.restore_after {
                steps.push(Step {
                    at_s: w.fault_at + after,
                    action: Action::Up { id: 0 },
                });
            }
            steps
        }
        Fault::Restart => {
            let until = w.restore_after.map_or(last, |a| (w.fault_at + a).min(last));
            let mut steps = Vec::new();
            let mut t = w.fault_at;
            loop {
                steps.push(Step {
                    at_s: t,
                    action: Action::Restart {
                        member: pick_member(&mut rng, w.members),
                    },
                });
                t += rng.gen_range(1.5..4.0);
                if t > until {
                    break;
                }
            }
            steps
        }
        Fault::Chaos => chaos(&mut rng, w, last),
    };
    steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    steps
}

fn pick_member(rng: &mut StdRng, members: usize) -> MemberPick {
    if rng.gen_bool(0.7) {
        MemberPick::Leader
    } else {
        MemberPick::Index(rng.gen_range(0..members))
    }
}

fn chaos(rng: &mut StdRng, w: Window, last: f64) -> Vec<Step> {
    let mut steps = Vec::new();
    // The datacenter fault under way: (dc or leader, until).
    let mut down: Option<(Target, f64)> = None;
    let mut next_id = 0;
    let mut t = w.fault_at;
    while t < last {
        if down.is_some_and(|(_, until)| until <= t) {
            down = None;
        }
        let roll: f64 = rng.gen();
        let dc_fault = if roll < 0.35 {
            None
        } else if roll < 0.50 {
            Some(DcFault::Fire)
        } else if roll < 0.65 {
            Some(if w.power_loss {
                DcFault::PowerLoss
            } else {
                DcFault::Fire
            })
        } else if roll < 0.80 {
            Some(DcFault::Isolate)
        } else {
            Some(DcFault::Pause)
        };
        match dc_fault {
            // One datacenter down at a time: while one is, the others only
            // see restarts.
            Some(fault) if down.is_none() => {
                let target = if rng.gen_bool(0.5) {
                    Target::Leader
                } else {
                    Target::Dc(rng.gen_range(0..w.dcs))
                };
                let until = (t + rng.gen_range(2.0..6.0)).min(last);
                steps.push(Step {
                    at_s: t,
                    action: Action::Down {
                        id: next_id,
                        fault,
                        target,
                    },
                });
                steps.push(Step {
                    at_s: until,
                    action: Action::Up { id: next_id },
                });
                next_id += 1;
                down = Some((target, until));
            }
            _ => steps.push(Step {
                at_s: t,
                action: Action::Restart {
                    member: pick_member(rng, w.members),
                },
            }),
        }
        t += rng.gen_range(0.5..3.0);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::ScenarioArg;

    fn window() -> Window {
        Window {
            fault_at: 10.0,
            restore_after: Some(15.0),
            duration: 60.0,
            members: 3,
            dcs: 3,
            power_loss: true,
        }
    }

    fn scenario(arg: ScenarioArg) -> Scenario {
        Scenario::expand(arg, None)[0]
    }

    #[test]
    fn a_datacenter_fault_is_one_fault_and_its_undo() {
        let steps = plan(&scenario(ScenarioArg::Fire), 1, window());
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].at_s, 10.0);
        assert!(matches!(
            steps[0].action,
            Action::Down {
                id: 0,
                fault: DcFault::Fire,
                ..
            }
        ));
        assert_eq!(steps[1].at_s, 25.0);
        let never = Window {
            restore_after: None,
            ..window()
        };
        assert_eq!(plan(&scenario(ScenarioArg::Pause), 1, never).len(), 1);
    }

    #[test]
    fn restarts_are_seeded_spaced_and_mostly_the_leaders() {
        let a = plan(&scenario(ScenarioArg::Restart), 7, window());
        assert_eq!(a, plan(&scenario(ScenarioArg::Restart), 7, window()), "a seed replays");
        assert_ne!(a, plan(&scenario(ScenarioArg::Restart), 8, window()));
        assert!(a.len() >= 4, "{a:?}");
        assert!(a.iter().all(|s| (10.0..=25.0).contains(&s.at_s)));
        assert!(a.windows(2).all(|p| p[1].at_s - p[0].at_s >= 1.5));
        let leaders = (0..50)
            .flat_map(|seed| plan(&scenario(ScenarioArg::Restart), seed, window()))
            .filter(|s| {
                s.action
                    == Action::Restart {
                        member: MemberPick::Leader,
                    }
            })
            .count() as f64;
        let all = (0..50)
            .map(|seed| plan(&scenario(ScenarioArg::Restart), seed, window()).len())
            .sum::<usize>() as f64;
        assert!((0.6..0.8).contains(&(leaders / all)), "{leaders} of {all}");
    }

    #[test]
    fn chaos_overlaps_faults_but_keeps_one_datacenter_down_at_most() {
        let mut overlapped = 0;
        for seed in 0..30 {
            let steps = plan(&scenario(ScenarioArg::Chaos), seed, window());
            let mut down: Option<usize> = None;
            let mut downs = 0;
            for s in &steps {
                assert!(s.at_s <= 55.0, "every fault ends before the quiet end");
                match s.action {
                    Action::Down { id, .. } => {
                        assert!(down.is_none(), "seed {seed}: two datacenters down at once");
                        down = Some(id);
                        downs += 1;
                    }
                    Action::Up { id } => {
                        assert_eq!(down, Some(id), "seed {seed}: an undo of a fault not under way");
                        down = None;
                    }
                    Action::Restart { .. } => overlapped += usize::from(down.is_some()),
                }
            }
            assert!(down.is_none(), "seed {seed}: a fault is never undone");
            assert!(downs >= 2, "seed {seed}: {steps:?}");
        }
        assert!(overlapped > 10, "restarts overlap datacenter faults");
        let no_fuse = Window {
            power_loss: false,
            ..window()
        };
        assert!((0..30)
            .flat_map(|s| plan(&scenario(ScenarioArg::Chaos), s, no_fuse))
            .all(|s| !matches!(
                s.action,
                Action::Down {
                    fault: DcFault::PowerLoss,
                    ..
                }
            )));
    }
}
