//! The election timer, which starts openraft 0.10's pre-vote.
//!
//! A member that hears no leader for an election timeout and raises its
//! term at once (Raft without a pre-vote) does so over and over when it is
//! cut off from the others (an isolated datacenter, a member that was
//! down), and comes back with a term far above the cluster's. The leader's
//! next AppendEntries to it is then refused with that higher term, the
//! leader steps down, and the healthy majority is without a leader for a
//! whole election: a second outage, caused by the repair of the first.
//!
//! So every election here starts with openraft's Pre-Vote (Ongaro's
//! thesis, 9.6; `Trigger::elect(true)`): the member asks the voters whether
//! they *would* vote for it, without changing anyone's term, and raises its
//! term only when a majority of every voter configuration says yes. A
//! member says yes only when its leader lease has run out (or, as leader,
//! no quorum acknowledged it within the lease) and the candidate's log is
//! at least as up to date as its own.
//!
//! openraft's own timer is off (`enable_elect = false`) because its timeout
//! is fixed when the node starts: this timer's adapts to the round trips
//! measured between the members (below).
//!
//! # Timing
//! - `election_timeout` (T, `raft.election_timeout_ms`): a follower that
//!   hears no leader for a random time in `[T, 1.2 T)` asks for pre-votes,
//!   as openraft's own timer did with the settings of `crate::node`.
//! - The leader lease (L = T/2): a follower that heard from its leader
//!   within L refuses pre-votes and votes (openraft refuses votes within
//!   its `leader_lease`, which is set to L). L is shorter than T so that
//!   when the leader is gone, the other followers, which lost it at about
//!   the same moment, already answer yes when the first timer runs out; it
//!   is over twice the heartbeat interval, so a follower of a live leader
//!   never answers yes.
//! - After an election of its own that elected nobody (two candidates
//!   split the vote), a member asks again after a short random wait
//!   (T/10 to T/4): every voter's vote is then uncommitted, so no leader
//!   lease delays the next election, and a whole timeout more would
//!   double the outage.
//! - The timeout adapts to the network: it is at least ten of the largest
//!   round trips recently measured to a voter ([`crate::report`]'s probes),
//!   so the default suits loopback and datacenters far apart alike.
//!
//! # Correctness
//! Safety does not depend on this module: every election, pre-vote
//! included, is openraft's, with its vote rules and durable votes; this
//! timer only decides *when* a member asks. What it changes is liveness:
//! a member whose leader is silent asks within 1.2 T, and a lone voter
//! elects itself at once (without a pre-vote, as nobody else could vote).

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use openraft::async_runtime::Instant as _;
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;
use rand::Rng;
use tokio::time::Instant;

use crate::node::Node;
use crate::types::NodeId;

/// What the election timer learned, for the member's reports.
#[derive(Debug, Default)]
pub(crate) struct ElectionState {
    leader_silent: std::sync::atomic::AtomicBool,
}

impl ElectionState {
    fn set_leader_silent(&self, silent: bool) {
        self.leader_silent.store(silent, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this member's leader has been silent for an election
    /// timeout (it then reports no leader).
    pub fn leader_silent(&self) -> bool {
        self.leader_silent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The election timer's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElectionTiming {
    /// T: the configured election timeout.
    pub timeout: Duration,
    /// L: how long a follower trusts a leader it heard from (openraft's
    /// `leader_lease`).
    pub lease: Duration,
    /// How often the timer looks.
    pub tick: Duration,
}

impl ElectionTiming {
    pub fn new(election_timeout: Duration) -> ElectionTiming {
        ElectionTiming {
            timeout: election_timeout,
            lease: election_timeout / 2,
            tick: (election_timeout / 50).clamp(Duration::from_millis(5), Duration::from_millis(50)),
        }
    }
}

/// How openraft last saw the vote: the vote's term, whether it is
/// committed (a leader was elected), and when it last changed or was
/// refreshed by the leader's messages.
struct VoteView {
    committed: bool,
    /// When the vote was last refreshed (by the leader's messages), on
    /// openraft's clock: compared as is, never converted, so that two views
    /// of one refresh are equal.
    utime: Option<openraft::TokioInstant>,
}

impl Node {
    /// The leader this member relies on: openraft's current leader, unless
    /// it has been silent for an election timeout.
    pub fn known_leader(&self) -> Option<NodeId> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if m.state != ServerState::Leader && self.election_state.leader_silent() {
            return None;
        }
        m.current_leader
    }

    async fn vote_view(&self) -> Option<VoteView> {
        self.raft
            .with_raft_state(|st| VoteView {
                committed: st.vote_ref().is_committed(),
                utime: st.vote_last_modified(),
            })
            .await
            .ok()
    }

    /// The election timeout in force: the configured one, or ten of the
    /// largest recent round trips to a voter if that is longer.
    pub(crate) fn effective_election_timeout(&self, voters: &BTreeSet<NodeId>) -> Duration {
        let slowest = voters
            .iter()
            .filter(|&&v| v != self.id)
            .filter_map(|&v| self.peers.known(v))
            .filter_map(|c| c.round_trips().recent_max())
            .max()
            .unwrap_or_default();
        self.election.timeout.max(slowest * 10)
    }
}

/// Runs the election timer of `node` until it is dropped.
pub(crate) async fn run(node: Weak<Node>) {
    let started = Instant::now();
    let mut last_attempt = started;
    // The wait of this round, and whether it was drawn after an election
    // of this member's own that elected nobody.
    let mut next_wait: Option<(bool, Duration)> = None;
    loop {
        let tick = match node.upgrade() {
            Some(n) => n.election.tick,
            None => return,
        };
        tokio::time::sleep(tick).await;
        let Some(node) = node.upgrade() else { return };
        let m = node.raft.metrics().borrow_watched().clone();
        let configs = m.membership_config.membership().get_joint_config().clone();
        let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().collect();
        if m.state == ServerState::Leader {
            node.election_state.set_leader_silent(false);
            next_wait = None;
            last_attempt = Instant::now();
            continue;
        }
        let Some(view) = node.vote_view().await else { return };
        let timeout = node.effective_election_timeout(&voters);
        // A member that has not heard from its leader for an election
        // timeout no longer reports one (etcd's pre-candidate forgets its
        // leader too): `etcd_server_has_leader`, /health and Status say so.
        let heard = view.committed && view.utime.is_some_and(|t| t.elapsed() < timeout);
        node.election_state
            .set_leader_silent(!heard && started.elapsed() >= timeout);
        if !voters.contains(&node.id) {
            next_wait = None;
            last_attempt = Instant::now();
            continue;
        }
        // This member's own candidacy that elected nobody (yet): a split
        // vote, or a real election still under way.
        let campaigned = !view.committed && m.vote.leader_id().node_id == node.id && m.current_term > 0;
        // A new random wait for each round, as Raft's randomized timer; a
        // short one after an election of its own that elected nobody (a
        // split vote): nobody holds a leader lease then, and waiting a
        // whole timeout again would double the outage.
        let wait = match next_wait {
            Some((drawn_after_campaign, wait)) if drawn_after_campaign == campaigned => wait,
            _ => {
                let ms = timeout.as_millis() as u64;
                let range = if campaigned {
                    ms / 10..ms / 4 + 1
                } else {
                    ms..ms + ms / 5 + 1
                };
                let wait = Duration::from_millis(rand::thread_rng().gen_range(range));
                next_wait = Some((campaigned, wait));
                wait
            }
        };
        let quiet_for = [
            Some(started.elapsed()),
            Some(last_attempt.elapsed()),
            view.utime.map(|t| t.elapsed()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_default();
        if quiet_for < wait {
            continue;
        }
        // Failpoint `elect-without-pre-vote` (the `failpoints` feature only):
        // campaign as Raft without a pre-vote does.
        #[cfg(feature = "failpoints")]
        let pre_vote = voters.len() > 1 && fail::eval("elect-without-pre-vote", |_| ()).is_none();
        #[cfg(not(feature = "failpoints"))]
        let pre_vote = voters.len() > 1;
        tracing::debug!(
            term = m.current_term,
            pre_vote,
            "no leader within {wait:?}: asking for an election"
        );
        let _ = node.raft.trigger().elect(pre_vote).await;
        last_attempt = Instant::now();
        next_wait = None;
    }
}
