//! The election timer, with a pre-vote, which openraft 0.9 lacks.
//!
//! openraft 0.9 starts an election on its own timer: a member that hears no
//! leader for an election timeout raises its term and asks for votes. A
//! member cut off from the others (an isolated datacenter, a member that
//! was down) does this over and over, alone, and comes back with a term
//! far above the cluster's. The leader's next AppendEntries to it is then
//! refused with that higher term, the leader steps down, and the healthy
//! majority is without a leader for a whole election: a second outage,
//! caused by the repair of the first.
//!
//! So openraft's own timer is off (`enable_elect = false`) and this module
//! runs the timer instead, with Raft's pre-vote (Ongaro's thesis, 9.6): a
//! member whose timer runs out first asks the voters whether they *would*
//! vote for it, without changing anyone's term, and raises its term (through
//! `Trigger::elect`) only when a majority of every voter configuration says
//! yes. A member answers yes only when it has no live leader and the
//! candidate's log is at least as up to date as its own: exactly the check
//! openraft makes of a real vote, made without voting.
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
//! Safety does not depend on this module: every election is openraft's,
//! with its vote rules and durable votes; the pre-vote only decides *when*
//! a member asks. What it changes is liveness, and the rules above keep it:
//! - A leader that still hears from a quorum (`Node::serving_term`) says
//!   no, so a member coming back cannot unseat it; one that lost its quorum
//!   says yes, so the majority side can elect without it.
//! - A member never refuses because of terms: one whose term is behind
//!   (after a split vote elsewhere) still gets its pre-vote, and openraft's
//!   real vote then teaches it the newer term.
//! - A lone voter elects itself at once, as openraft does.

use openraft::async_runtime::Instant as _;
use openraft::async_runtime::WatchReceiver as _;
use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use openraft::ServerState;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::node::Node;
use crate::transport::{PeerRequest, PeerResponse};
use crate::types::{LogId, NodeId};

/// A member's question: would you vote for me now?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: NodeId,
    /// The id of the candidate's last log entry.
    pub last_log_id: Option<LogId>,
}

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

    /// Answers a pre-vote: yes if this member has no live leader and the
    /// candidate's log is at least as up to date as its own.
    pub(crate) async fn pre_vote(&self, req: PreVoteRequest) -> bool {
        let m = self.raft.metrics().borrow_watched().clone();
        if m.state == ServerState::Leader && m.current_leader == Some(self.id) {
            if self.serving_term().is_some() {
                return false;
            }
        } else {
            let Some(view) = self.vote_view().await else {
                return false;
            };
            let leader_alive = view.committed && view.utime.is_some_and(|t| t.elapsed() <= self.election.lease);
            if leader_alive {
                return false;
            }
        }
        let granted = req.last_log_id >= self.log_tail.last_log_id();
        tracing::debug!(candidate = req.candidate, granted, "pre-vote");
        granted
    }

    /// Asks every other voter for a pre-vote; true when a majority of every
    /// voter configuration (this member included) says yes.
    async fn pre_vote_round(&self, configs: &[BTreeSet<NodeId>]) -> bool {
        let req = PreVoteRequest {
            candidate: self.id,
            last_log_id: self.log_tail.last_log_id(),
        };
        let membership = self.raft.metrics().borrow_watched().membership_config.clone();
        let others: BTreeSet<NodeId> = configs.iter().flatten().copied().filter(|&v| v != self.id).collect();
        let asks = others.into_iter().filter_map(|v| {
            let member = membership.membership().get_node(&v)?.clone();
            let client = self.peers.get(v, &member.peer_addr);
            let req = PeerRequest::PreVote(req.clone());
            let wait = self.election.lease;
            Some(async move {
                let granted = matches!(client.call(&req, wait).await, Ok(PeerResponse::PreVote(true)));
                (v, granted)
            })
        });
        let answers = futures::future::join_all(asks).await;
        let yes: BTreeSet<NodeId> = answers
            .into_iter()
            .filter_map(|(v, granted)| granted.then_some(v))
            .chain([self.id])
            .collect();
        configs
            .iter()
            .all(|voters| voters.is_empty() || voters.iter().filter(|v| yes.contains(v)).count() * 2 > voters.len())
    }
}

/// Runs the election timer of `node` until it is dropped.
pub(crate) async fn run(node: Weak<Node>) {
    let started = Instant::now();
    let mut last_attempt = started;
    let mut next_wait: Option<Duration> = None;
    // Whether this member's last attempt was an election of its own that
    // has not (yet) produced a leader.
    let mut campaigned = false;
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
            campaigned = false;
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
        if view.committed {
            campaigned = false;
        }
        // A new random wait for each round, as Raft's randomized timer; a
        // short one after an election of its own that elected nobody (a
        // split vote): nobody holds a leader lease then, and waiting a
        // whole timeout again would double the outage.
        let wait = *next_wait.get_or_insert_with(|| {
            let ms = timeout.as_millis() as u64;
            let range = if campaigned {
                ms / 10..ms / 4 + 1
            } else {
                ms..ms + ms / 5 + 1
            };
            Duration::from_millis(rand::thread_rng().gen_range(range))
        });
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
        // campaign as openraft 0.9's own timer did, without asking first.
        #[cfg(feature = "failpoints")]
        let lone = voters.len() == 1 || fail::eval("elect-without-pre-vote", |_| ()).is_some();
        #[cfg(not(feature = "failpoints"))]
        let lone = voters.len() == 1;
        let mut granted = lone || node.pre_vote_round(&configs).await;
        last_attempt = Instant::now();
        next_wait = None;
        // While it asked, another candidate may have won this member's
        // vote (or a leader may have spoken): Raft restarts the timer then,
        // and campaigning now would unseat the candidate it just voted for.
        if granted && !lone {
            let now_view = node.vote_view().await;
            let m_now = node.raft.metrics().borrow_watched().clone();
            if m_now.current_term != m.current_term || now_view.is_none_or(|v| v.utime != view.utime) {
                tracing::debug!("the vote changed during the pre-vote: not campaigning");
                granted = false;
            }
        }
        if granted {
            tracing::info!(
                term = m.current_term,
                "no leader within {wait:?}, a majority would vote: campaigning"
            );
            let _ = node.raft.trigger().elect(false).await;
            campaigned = true;
        } else {
            campaigned = false;
            tracing::debug!("no leader within {wait:?}, but no majority would vote: waiting");
        }
    }
}
