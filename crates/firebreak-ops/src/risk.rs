//! "Could we lose data right now?": from the leader's report, for each
//! datacenter, whether losing it now would lose an acknowledged write,
//! whether the rest would still hold a quorum, and how long until writes
//! are served again.
//!
//! # How it is computed
//! - The newest acknowledged write is at most the leader's commit index (a
//!   write is acknowledged once applied, after it commits): the entry at
//!   that index stands for every acknowledged write, since Raft logs are
//!   prefixes of each other.
//! - It is *held durably* by the leader if its own log is on disk through
//!   that index, and by a follower if the leader knows the follower has
//!   stored it (followers answer an append only after its fsync). Only
//!   voters count: a new leader is elected from the voters, so an entry
//!   only a learner holds would not survive an election.
//! - Losing datacenter D loses an acknowledged write iff no voter outside D
//!   holds the newest one.
//! - The rest keeps a quorum iff the voters outside D that the leader
//!   heard from within one election timeout (the leader itself included,
//!   if outside D) are a majority of all voters.
//! - Recovery: nothing to wait for if D does not hold the leader (the
//!   leader keeps its quorum). If it does, the survivors wait out their
//!   election timeout (openraft: the leader's lease, 0.6 of the configured
//!   timeout, plus a random 0.4 to 0.6: at most 1.2 times it), then one
//!   round trip for the votes and one for the first commit, at the largest
//!   round trip measured between the survivors and the leader.
//!
//! Without a leader that has a quorum, nothing is known about durability
//! and the answer says so; quorum is then judged from the members this one
//! can reach.

use std::collections::{BTreeMap, BTreeSet};

use firebreak_raft::report::MemberReport;
use serde::{Deserialize, Serialize};

/// The newest acknowledged write and where it is on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewestWrite {
    /// Its log index (the leader's commit index).
    pub index: u64,
    /// Voters that hold it durably, by name.
    pub held_durably_by: Vec<String>,
    /// Their datacenters.
    pub held_durably_in: Vec<String>,
}

/// What losing one datacenter now would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatacenterLoss {
    /// Whether an acknowledged write would be lost (`None`: unknown).
    pub loses_acknowledged_writes: Option<bool>,
    /// Whether the members outside it would still hold a quorum.
    pub keeps_quorum: bool,
    /// Whether the leader is in it.
    pub holds_leader: bool,
    /// Predicted time until writes are served again, in ms (`None`: they
    /// would not be, without a quorum, or it is unknown).
    pub predicted_recovery_ms: Option<u64>,
    /// No acknowledged write lost and a quorum kept: the cluster carries on.
    pub survives: bool,
}

/// The answer to "could we lose data right now?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Whether it comes from a leader that has a quorum.
    pub known: bool,
    /// Why it is not known, if it is not.
    pub reason: Option<String>,
    pub newest_write: Option<NewestWrite>,
    /// By datacenter.
    pub datacenters: BTreeMap<String, DatacenterLoss>,
}

/// The risk as `leader`'s report shows it, if it leads with a quorum;
/// otherwise the little that `reachable` (ids of voters this member can
/// reach and that have a leader-independent view) allow.
pub fn assess(
    members: &[firebreak_raft::report::ConfiguredMember],
    leader: Option<&MemberReport>,
    reachable: &BTreeSet<u64>,
) -> Risk {
    let voters: Vec<_> = members.iter().filter(|m| !m.is_learner).collect();
    let majority = voters.len() / 2 + 1;
    let datacenters: BTreeSet<&str> = members.iter().map(|m| m.domains.datacenter.as_str()).collect();
    let name = |id: u64| {
        members
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| format!("{id:x}"), |m| m.name.clone())
    };

    let Some(leader) = leader.filter(|l| l.leader_has_quorum == Some(true) && l.replication.is_some()) else {
        let reason = match leader {
            Some(l) => format!(
                "the leader {} has not heard from a quorum within an election timeout",
                l.name
            ),
            None => "no leader is reachable from this member".to_string(),
        };
        let by_dc = datacenters
            .iter()
            .map(|dc| {
                let alive = voters
                    .iter()
                    .filter(|v| v.domains.datacenter != *dc && reachable.contains(&v.id))
                    .count();
                let loss = DatacenterLoss {
                    loses_acknowledged_writes: None,
                    keeps_quorum: alive >= majority,
                    holds_leader: false,
                    predicted_recovery_ms: None,
                    survives: false,
                };
                (dc.to_string(), loss)
            })
            .collect();
        return Risk {
            known: false,
            reason: Some(reason),
            newest_write: None,
            datacenters: by_dc,
        };
    };

    let commit = leader.commit_index;
    let progress = leader.replication.as_deref().unwrap_or_default();
    let durable = |id: u64| -> u64 {
        if id == leader.id {
            leader.durable_index
        } else {
            progress
                .iter()
                .find(|p| p.id == id)
                .and_then(|p| p.durable_index)
                .unwrap_or(0)
        }
    };
    let holders: Vec<_> = voters.iter().filter(|v| durable(v.id) >= commit).collect();
    let live = |id: u64| -> bool {
        id == leader.id
            || leader
                .peers
                .iter()
                .find(|p| p.id == id)
                .and_then(|p| p.last_ack_ms_ago)
                .is_some_and(|ago| ago <= leader.election_timeout_ms)
    };
    let leader_dc = members
        .iter()
        .find(|m| m.id == leader.id)
        .map(|m| m.domains.datacenter.clone())
        .unwrap_or_default();
    let by_dc = datacenters
        .iter()
        .map(|dc| {
            let survivors: Vec<_> = voters.iter().filter(|v| v.domains.datacenter != *dc).collect();
            let keeps_quorum = survivors.iter().filter(|v| live(v.id)).count() >= majority;
            let loses = !holders.iter().any(|h| h.domains.datacenter != *dc);
            let holds_leader = *dc == leader_dc;
            let predicted_recovery_ms = keeps_quorum.then(|| {
                if !holds_leader {
                    return 0;
                }
                let rtt = survivors
                    .iter()
                    .filter_map(|v| leader.peers.iter().find(|p| p.id == v.id))
                    .filter_map(|p| p.rtt_max_ms.or(p.rtt_ms))
                    .fold(0.0f64, f64::max);
                let timeout = leader
                    .election_timeout_effective_ms
                    .unwrap_or(leader.election_timeout_ms);
                (timeout as f64 * 1.2 + 2.0 * rtt).ceil() as u64
            });
            let loss = DatacenterLoss {
                loses_acknowledged_writes: Some(loses),
                keeps_quorum,
                holds_leader,
                predicted_recovery_ms,
                survives: !loses && keeps_quorum,
            };
            (dc.to_string(), loss)
        })
        .collect();
    let mut held_in: Vec<String> = holders.iter().map(|h| h.domains.datacenter.clone()).collect();
    held_in.sort();
    held_in.dedup();
    Risk {
        known: true,
        reason: None,
        newest_write: Some(NewestWrite {
            index: commit,
            held_durably_by: holders.iter().map(|h| name(h.id)).collect(),
            held_durably_in: held_in,
        }),
        datacenters: by_dc,
    }
}

#[cfg(test)]
mod tests {
    use firebreak_config::Domains;
    use firebreak_raft::report::{ConfiguredMember, FollowerProgress, FsyncStats, PeerLink, Role};

    use super::*;

    fn member(id: u64, dc: &str) -> ConfiguredMember {
        ConfiguredMember {
            id,
            name: format!("m{id}"),
            domains: Domains {
                datacenter: dc.into(),
                ..Default::default()
            },
            client_url: String::new(),
            peer_url: String::new(),
            is_learner: false,
        }
    }

    /// A leader (id 1, in dc1) whose followers hold `durable` and last
    /// answered `ago` ms ago.
    fn leader(members: &[ConfiguredMember], commit: u64, follower: &[(u64, u64, Option<u64>)]) -> MemberReport {
        MemberReport {
            id: 1,
            name: "m1".into(),
            domains: members[0].domains.clone(),
            role: Role::Leader,
            term: 2,
            leader: Some(1),
            leader_has_quorum: Some(true),
            last_log_index: commit,
            durable_index: commit,
            commit_index: commit,
            applied_index: commit,
            revision: 1,
            db_size: 0,
            alarms: vec![],
            members: members.to_vec(),
            peers: follower
                .iter()
                .map(|&(id, _, ago)| PeerLink {
                    id,
                    rtt_ms: Some(2.0),
                    rtt_max_ms: Some(4.0),
                    rtt_measured_ms_ago: Some(100),
                    last_ack_ms_ago: ago,
                })
                .collect(),
            replication: Some(
                follower
                    .iter()
                    .map(|&(id, durable, _)| FollowerProgress {
                        id,
                        durable_index: Some(durable),
                        lag_entries: Some(commit - durable),
                        lag_seconds: Some(0.0),
                    })
                    .collect(),
            ),
            election_timeout_ms: 1000,
            election_timeout_effective_ms: None,
            heartbeat_gap_max_ms: None,
            heartbeat_interval_ms: 100,
            fsync: FsyncStats {
                count: 0,
                mean_ms: None,
                p99_ms: None,
            },
            leader_changes: vec![],
            uptime_seconds: 1.0,
            etcd_version: "3.5.0".into(),
            firebreak_version: "0".into(),
        }
    }

    #[test]
    fn three_datacenters_in_step_survive_any_loss() {
        let members = [member(1, "dc1"), member(2, "dc2"), member(3, "dc3")];
        let l = leader(&members, 10, &[(2, 10, Some(50)), (3, 10, Some(50))]);
        let risk = assess(&members, Some(&l), &BTreeSet::new());
        assert!(risk.known);
        assert_eq!(
            risk.newest_write.as_ref().unwrap().held_durably_in,
            ["dc1", "dc2", "dc3"]
        );
        for (dc, loss) in &risk.datacenters {
            assert!(loss.survives, "{dc}: {loss:?}");
        }
        // Losing the leader's datacenter costs an election: 1.2 x 1000 ms
        // plus two of the largest round trips (4 ms).
        assert_eq!(risk.datacenters["dc1"].predicted_recovery_ms, Some(1208));
        assert_eq!(risk.datacenters["dc2"].predicted_recovery_ms, Some(0));
    }

    #[test]
    fn a_datacenter_that_falls_behind_leaves_no_spare() {
        // dc3 is cut off: it has not answered for 5 s and lacks entries.
        let members = [member(1, "dc1"), member(2, "dc2"), member(3, "dc3")];
        let l = leader(&members, 10, &[(2, 10, Some(50)), (3, 4, Some(5000))]);
        let risk = assess(&members, Some(&l), &BTreeSet::new());
        assert_eq!(risk.newest_write.as_ref().unwrap().held_durably_in, ["dc1", "dc2"]);
        // Losing dc1 or dc2 now loses no write (the other has it) but
        // leaves one live voter of three: no quorum.
        for dc in ["dc1", "dc2"] {
            let loss = &risk.datacenters[dc];
            assert_eq!(loss.loses_acknowledged_writes, Some(false), "{dc}");
            assert!(!loss.keeps_quorum, "{dc}");
            assert!(!loss.survives, "{dc}");
            assert_eq!(loss.predicted_recovery_ms, None, "{dc}");
        }
        assert!(risk.datacenters["dc3"].survives);
    }

    #[test]
    fn an_unsafe_topology_can_lose_writes() {
        // Two voters in dc1 form a quorum alone; dc2 lags.
        let members = [member(1, "dc1"), member(2, "dc1"), member(3, "dc2")];
        let l = leader(&members, 10, &[(2, 10, Some(50)), (3, 7, Some(50))]);
        let risk = assess(&members, Some(&l), &BTreeSet::new());
        assert_eq!(risk.datacenters["dc1"].loses_acknowledged_writes, Some(true));
        assert!(!risk.datacenters["dc1"].survives);
        assert_eq!(risk.datacenters["dc2"].loses_acknowledged_writes, Some(false));
    }

    #[test]
    fn without_a_leader_durability_is_unknown() {
        let members = [member(1, "dc1"), member(2, "dc2"), member(3, "dc3")];
        let mut l = leader(&members, 10, &[(2, 10, Some(50)), (3, 10, Some(50))]);
        l.leader_has_quorum = Some(false);
        let reachable: BTreeSet<u64> = [1, 2].into();
        let risk = assess(&members, Some(&l), &reachable);
        assert!(!risk.known);
        assert!(risk.reason.as_deref().unwrap().contains("quorum"));
        assert!(risk.datacenters["dc3"].keeps_quorum);
        assert!(!risk.datacenters["dc1"].keeps_quorum);
        assert!(risk.datacenters.values().all(|l| !l.survives));
    }
}
