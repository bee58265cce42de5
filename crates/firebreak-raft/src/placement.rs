//! Where the leader lives, and a voter set that grows by itself.
//!
//! - **Leader placement** (`leader_priority`): the leader moves to the most
//!   preferred datacenter that has a healthy, caught-up voter, through a
//!   real leader transfer ([`Node::move_leader`]). After a failover it moves
//!   back once the preferred datacenter has recovered and caught up. A
//!   candidate must stay eligible for `leader_failback_after_ms` without a
//!   break ([`FailbackTimer`]), so a flapping link never bounces the leader.
//!   etcd has nothing like it; CockroachDB's lease preferences and TiKV's
//!   leader rules are the model.
//! - **Learner promotion** (`auto_promote_learners`): the leader promotes a
//!   learner once it holds everything the leader had applied and the
//!   topology rule allows the larger voter set (the same checks as
//!   `etcdctl member promote`), up to `voters` voters.
//! - **Voter replacement** (`replace_unreachable_voter_after_ms`, with
//!   promotion on): a voter the leader has not heard from for that long
//!   is swapped for a caught-up learner in one membership change (a learner
//!   in the same datacenter first), if the topology rule allows the new
//!   voter set; the old voter stays a learner and catches up when it
//!   returns. So a learner standing by in each datacenter replaces a burned
//!   member without a person, and the cluster can lose another.
//!
//! Only the leader acts, and only while it serves (`Node::serving_term`):
//! a leader cut off from its quorum moves nothing.
//!
//! # Correctness
//! Neither changes what Raft guarantees: a transfer is an ordinary election
//! that the target wins because it is caught up, and a promotion is an
//! ordinary joint-consensus membership change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Weak;
use std::time::{Duration, Instant};

use firebreak_config::Placement;

use openraft::async_runtime::WatchReceiver as _;
use openraft::ChangeMembers;

use crate::membership::MembershipChange;
use crate::node::Node;
use crate::types::NodeId;

/// How often the leader looks.
const PERIOD: Duration = Duration::from_millis(250);
/// A voter this many entries behind the leader's log still counts as
/// caught up for a transfer (under load a follower is always a little
/// behind; the transfer itself waits for it to catch up fully).
const CAUGHT_UP_ENTRIES: u64 = 64;

/// Tells when a candidate has been eligible long enough to move the leader
/// to it. Pure: it sees only the instants it is given.
#[derive(Debug)]
pub struct FailbackTimer {
    hold: Duration,
    eligible_since: HashMap<NodeId, Instant>,
}

impl FailbackTimer {
    pub fn new(hold: Duration) -> FailbackTimer {
        FailbackTimer {
            hold,
            eligible_since: HashMap::new(),
        }
    }

    /// Records that `eligible` (best first) are the voters the leader could
    /// move to at `now`; answers the best one that has been eligible for the
    /// whole hold time without a break. A voter missing from one
    /// observation starts its hold again.
    pub fn observe(&mut self, now: Instant, eligible: &[NodeId]) -> Option<NodeId> {
        self.eligible_since.retain(|id, _| eligible.contains(id));
        for id in eligible {
            self.eligible_since.entry(*id).or_insert(now);
        }
        eligible
            .iter()
            .copied()
            .find(|id| now.duration_since(self.eligible_since[id]) >= self.hold)
    }

    /// Forgets every candidate (the leader changed, or a move was tried).
    pub fn reset(&mut self) {
        self.eligible_since.clear();
    }
}

/// The last log index the leader knows `id` to hold (`None`: nothing yet,
/// or this member does not lead).
pub(crate) fn matched_index(m: &crate::types::RaftMetrics, id: NodeId) -> Option<u64> {
    m.replication.as_ref()?.get(&id).cloned().flatten().map(|l| l.index)
}

/// The rank of `dc` in `priority`: 0 is the most preferred; a datacenter
/// not listed comes after every listed one.
pub fn rank(priority: &[String], dc: &str) -> usize {
    priority.iter().position(|p| p == dc).unwrap_or(priority.len())
}

/// Runs leader placement and learner promotion for `node` until it is
/// dropped.
pub(crate) async fn run(node: Weak<Node>, placement: Placement) {
    let mut timer = FailbackTimer::new(placement.failback_after);
    let mut silent_since: HashMap<NodeId, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(PERIOD).await;
        let Some(node) = node.upgrade() else { return };
        let Some(term) = node.serving_term() else {
            timer.reset();
            silent_since.clear();
            continue;
        };
        if placement.auto_promote_learners {
            node.maintain_voters(&placement, term, &mut silent_since).await;
        }
        if placement.leader_priority.is_empty() {
            continue;
        }
        let eligible = node.better_placed_voters(&placement.leader_priority, term);
        if let Some(target) = timer.observe(Instant::now(), &eligible) {
            tracing::info!(
                target = format_args!("{target:x}"),
                "a more preferred datacenter has been healthy and caught up for {:?}: moving the leader there",
                placement.failback_after
            );
            if let Err(e) = node.move_leader(target).await {
                tracing::warn!(error = %e, "moving the leader to a more preferred datacenter failed");
            }
            timer.reset();
        }
    }
}

impl Node {
    /// Whether `peer` acknowledged this leader of `term` within an election
    /// timeout.
    fn heard_lately(&self, peer: NodeId, term: u64) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.current_term == term
            && crate::quorum_contact::peer_acked_ago(&m, peer).is_some_and(|ago| ago < self.election_timeout)
    }

    /// Voters in datacenters that `priority` prefers to this member's, that
    /// acknowledged this leader of `term` within an election timeout and
    /// are caught up; best first (by rank, then by lag).
    fn better_placed_voters(&self, priority: &[String], term: u64) -> Vec<NodeId> {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let nodes: BTreeMap<NodeId, crate::types::Member> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let my_rank = nodes
            .get(&self.id)
            .map_or(priority.len(), |me| rank(priority, &me.domains.datacenter));
        let last = m.last_log_index.unwrap_or(0);
        let mut better: Vec<(usize, u64, NodeId)> = membership
            .voter_ids()
            .filter(|&v| v != self.id)
            .filter_map(|v| {
                let r = rank(priority, &nodes.get(&v)?.domains.datacenter);
                let healthy = self.heard_lately(v, term);
                let matched = matched_index(&m, v).unwrap_or(0);
                let lag = last.saturating_sub(matched);
                (r < my_rank && healthy && lag <= CAUGHT_UP_ENTRIES).then_some((r, lag, v))
            })
            .collect();
        better.sort();
        better.into_iter().map(|(_, _, v)| v).collect()
    }

    /// Replaces a voter silent for too long by a caught-up learner, or
    /// promotes a caught-up learner while there are fewer voters than
    /// wanted; one change at a time. `silent_since` remembers when each
    /// voter was first seen silent by this leader.
    async fn maintain_voters(&self, placement: &Placement, term: u64, silent_since: &mut HashMap<NodeId, Instant>) {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        if membership.get_joint_config().len() > 1 {
            return; // a change is under way
        }
        let nodes: BTreeMap<NodeId, crate::types::Member> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let applied = m.last_applied.map_or(0, |l| l.index);
        let ready: Vec<NodeId> = nodes
            .iter()
            .filter(|(id, member)| !voters.contains(id) && !member.domains.datacenter.is_empty())
            .filter(|(id, _)| applied > 0 && matched_index(&m, **id).unwrap_or(0) >= applied)
            .map(|(id, _)| *id)
            .collect();

        // Voters this leader has not heard from within an election timeout.
        let now = Instant::now();
        silent_since.retain(|id, _| voters.contains(id));
        for &v in voters.iter().filter(|&&v| v != self.id) {
            if self.heard_lately(v, term) {
                silent_since.remove(&v);
            } else {
                silent_since.entry(v).or_insert(now);
            }
        }
        if let Some(after) = placement.replace_unreachable_voter_after {
            let dead = silent_since
                .iter()
                .filter(|(_, since)| now.duration_since(**since) >= after)
                .map(|(id, _)| *id)
                .min();
            if let Some(dead) = dead {
                let dc = nodes
                    .get(&dead)
                    .map(|n| n.domains.datacenter.clone())
                    .unwrap_or_default();
                // A learner in the dead voter's datacenter first.
                let mut candidates = ready.clone();
                candidates.sort_by_key(|id| nodes[id].domains.datacenter != dc);
                for learner in candidates {
                    let mut after_set = voters.clone();
                    after_set.remove(&dead);
                    after_set.insert(learner);
                    if crate::membership::check_voters(&after_set, &nodes).is_err() {
                        continue;
                    }
                    match self
                        .raft
                        .change_membership(ChangeMembers::ReplaceAllVoters(after_set), true)
                        .await
                    {
                        Ok(_) => {
                            tracing::warn!(
                                dead = format_args!("{dead:x}"),
                                learner = format_args!("{learner:x}"),
                                "a voter silent for {after:?} was replaced by a caught-up learner; it stays a learner"
                            );
                            silent_since.remove(&dead);
                        }
                        Err(e) => tracing::warn!(error = %e, "replacing a silent voter failed"),
                    }
                    return;
                }
            }
        }

        if placement.voters.is_some_and(|wanted| voters.len() >= wanted) {
            return;
        }
        for id in ready {
            match self.leader_change_members(MembershipChange::Promote { id }).await {
                Ok(_) => {
                    tracing::info!(member = format_args!("{id:x}"), "promoted a caught-up learner to voter");
                    return;
                }
                Err(e) => tracing::debug!(member = format_args!("{id:x}"), error = %e, "learner not promoted"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_must_stay_eligible_for_the_whole_hold() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timer = FailbackTimer::new(10 * s);
        assert_eq!(timer.observe(t0, &[7]), None);
        assert_eq!(timer.observe(t0 + 9 * s, &[7]), None);
        // A flap: missing from one observation, its hold starts again.
        assert_eq!(timer.observe(t0 + 9 * s + s / 2, &[]), None);
        assert_eq!(timer.observe(t0 + 10 * s, &[7]), None);
        assert_eq!(timer.observe(t0 + 19 * s, &[7]), None);
        assert_eq!(timer.observe(t0 + 20 * s, &[7]), Some(7));
    }

    #[test]
    fn the_best_candidate_that_held_long_enough_wins() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timer = FailbackTimer::new(5 * s);
        assert_eq!(timer.observe(t0, &[2]), None);
        // 1 is better but has only just become eligible.
        assert_eq!(timer.observe(t0 + 5 * s, &[1, 2]), Some(2));
        assert_eq!(timer.observe(t0 + 10 * s, &[1, 2]), Some(1));
        timer.reset();
        assert_eq!(timer.observe(t0 + 11 * s, &[1, 2]), None);
    }

    #[test]
    fn unlisted_datacenters_rank_last() {
        let p: Vec<String> = ["dc1", "dc2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rank(&p, "dc1"), 0);
        assert_eq!(rank(&p, "dc2"), 1);
        assert_eq!(rank(&p, "dc3"), 2);
        assert_eq!(rank(&[], "dc1"), 0);
    }
}
