//! When the leader last heard from a quorum: etcd's CheckQuorum, which
//! openraft 0.9 lacks.
//!
//! A leader cut off from its followers keeps believing it leads until it
//! hears of a newer term, which, cut off, it never does. Raft keeps its log
//! safe regardless (nothing it proposes commits), but what a leader answers
//! alone would contradict the majority: lease renewals and remaining TTLs
//! (the majority elects a new leader and expires the lease on its own
//! clock), and leader-only admin requests. So a leader answers those only
//! while it has heard from a quorum within one election timeout, as etcd's
//! leader steps down after an election timeout without one.
//!
//! [`QuorumContact`] records, for each peer, the send time of the latest
//! AppendEntries (heartbeats included) it answered as a follower of this
//! member's current term; [`QuorumContact::quorum_acked`] is the latest
//! instant that a quorum of every voter configuration had acknowledged.
//!
//! # Correctness
//! - An acknowledgement counts from when its request was *sent*: the
//!   follower accepted this leadership at some time after that.
//! - Only answers that accept this member's leadership count, and only for
//!   the term they were sent in: success, partial success and a log
//!   conflict do; a higher vote, an error, and the commit notices that are
//!   sent without waiting ([`crate::network`]) do not.
//! - The quorum is a majority of every voter configuration (both, during
//!   joint consensus); the leader counts as acknowledged now if it is a
//!   voter.
//! - Why a renewal that passes this check is safe: say the old leader
//!   renews at `t` with the quorum instant `s > t - election_timeout`. A
//!   new leader needs votes from a majority, which shares a member with
//!   that quorum; that member accepted the old leadership at or after `s`,
//!   and voted for the new term only afterwards, so the new leader is
//!   promoted at `p > s`. It gives every lease its full TTL plus one
//!   election timeout from its promotion ([`crate::lessor`]), so no lease
//!   expires on the majority side before `p + ttl + election_timeout >
//!   t + ttl`, when the renewal at `t` runs out. This holds even if the
//!   followers restarted and forgot their own leader leases.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use crate::types::NodeId;

/// Acknowledgements of this member's leadership, by peer.
#[derive(Default)]
pub struct QuorumContact {
    /// Peer → (term of the leadership it acknowledged, send time of the
    /// request it acknowledged).
    acks: Mutex<HashMap<NodeId, (u64, Instant)>>,
}

impl QuorumContact {
    /// `peer` accepted this member as leader of `term` in answer to a
    /// request sent at `sent`.
    pub fn acknowledged(&self, peer: NodeId, term: u64, sent: Instant) {
        let mut acks = self.acks.lock().expect("quorum contact lock");
        let entry = acks.entry(peer).or_insert((term, sent));
        if (term, sent) > *entry {
            *entry = (term, sent);
        }
    }

    /// When `peer` last acknowledged this member as leader of `term`.
    pub fn acked_in(&self, peer: NodeId, term: u64) -> Option<Instant> {
        let acks = self.acks.lock().expect("quorum contact lock");
        acks.get(&peer).filter(|(t, _)| *t == term).map(|(_, at)| *at)
    }

    /// The latest instant by which a majority of every configuration in
    /// `configs` had acknowledged `me` as leader of `term`; `me` counts as
    /// acknowledging at `now`. `None` if some configuration has no such
    /// majority yet.
    pub fn quorum_acked(&self, me: NodeId, term: u64, configs: &[BTreeSet<NodeId>], now: Instant) -> Option<Instant> {
        let acks = self.acks.lock().expect("quorum contact lock");
        let mut oldest: Option<Instant> = None;
        for voters in configs {
            if voters.is_empty() {
                continue;
            }
            let mut times: Vec<Instant> = voters
                .iter()
                .filter_map(|v| {
                    if *v == me {
                        Some(now)
                    } else {
                        acks.get(v).filter(|(t, _)| *t == term).map(|(_, at)| *at)
                    }
                })
                .collect();
            let majority = voters.len() / 2 + 1;
            if times.len() < majority {
                return None;
            }
            // Newest first: the majority-th newest is when this
            // configuration's majority had all acknowledged.
            times.sort_unstable_by(|a, b| b.cmp(a));
            let at = times[majority - 1];
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
        oldest
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn configs(sets: &[&[NodeId]]) -> Vec<BTreeSet<NodeId>> {
        sets.iter().map(|s| s.iter().copied().collect()).collect()
    }

    #[test]
    fn a_majority_of_each_configuration_is_needed() {
        let c = QuorumContact::default();
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(10);
        let three = configs(&[&[1, 2, 3]]);
        assert_eq!(c.quorum_acked(1, 5, &three, now), None, "no follower has answered");
        c.acknowledged(2, 5, t0 + Duration::from_secs(1));
        assert_eq!(c.quorum_acked(1, 5, &three, now), Some(t0 + Duration::from_secs(1)));
        c.acknowledged(3, 5, t0 + Duration::from_secs(4));
        assert_eq!(
            c.quorum_acked(1, 5, &three, now),
            Some(t0 + Duration::from_secs(4)),
            "the newest majority counts"
        );
        // Joint consensus: the new configuration has heard from nobody yet.
        let joint = configs(&[&[1, 2, 3], &[1, 4, 5]]);
        assert_eq!(c.quorum_acked(1, 5, &joint, now), None);
        c.acknowledged(4, 5, t0 + Duration::from_secs(2));
        assert_eq!(c.quorum_acked(1, 5, &joint, now), Some(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn acknowledgements_of_another_term_do_not_count() {
        let c = QuorumContact::default();
        let t0 = Instant::now();
        c.acknowledged(2, 4, t0);
        c.acknowledged(3, 4, t0);
        assert_eq!(c.quorum_acked(1, 5, &configs(&[&[1, 2, 3]]), t0), None);
        // An older request answered late never moves the instant back.
        c.acknowledged(2, 5, t0 + Duration::from_secs(3));
        c.acknowledged(2, 5, t0 + Duration::from_secs(1));
        assert_eq!(
            c.quorum_acked(1, 5, &configs(&[&[1, 2, 3]]), t0 + Duration::from_secs(9)),
            Some(t0 + Duration::from_secs(3))
        );
    }

    #[test]
    fn a_leader_that_is_not_a_voter_needs_a_majority_of_others() {
        let c = QuorumContact::default();
        let t0 = Instant::now();
        c.acknowledged(2, 1, t0);
        assert_eq!(c.quorum_acked(9, 1, &configs(&[&[2, 3]]), t0), None);
        c.acknowledged(3, 1, t0 + Duration::from_secs(1));
        assert_eq!(c.quorum_acked(9, 1, &configs(&[&[2, 3]]), t0), Some(t0));
        assert_eq!(
            c.quorum_acked(1, 1, &configs(&[&[1]]), t0),
            Some(t0),
            "a lone voter is its own quorum"
        );
    }
}
