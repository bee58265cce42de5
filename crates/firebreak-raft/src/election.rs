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
//! - The leader lease (L = 4T/5): a follower that heard from its leader
//!   within L refuses pre-votes and votes (openraft refuses votes within
//!   its `leader_lease`, which is set to L). L is shorter than T so that
//!   when the leader is gone, the other followers, which lost it at about
//!   the same moment, already answer yes when the first timer runs out; it
//!   is over twice the heartbeat interval, so a follower of a live leader
//!   never answers yes. openraft gives a (pre-)vote request at most its
//!   `election_timeout_min`, which must not exceed the lease: 4L/5, 0.64 T
//!   (192 ms with the defaults). With L = T/2 that was 120 ms, which a
//!   loaded machine missed again and again: the members of a drill on two
//!   busy cores elected nobody for 30 s.
//! - After an election of its own that elected nobody (two candidates
//!   split the vote), a member asks again after a short random wait
//!   (T/10 to T/4): every voter's vote is then uncommitted, so no leader
//!   lease delays the next election, and a whole timeout more would
//!   double the outage.
//! - The timeout adapts to what this member measures, so that one default
//!   suits loopback and datacenters far apart, an idle cluster and a
//!   loaded one: it is at least ten of the largest round trips recently
//!   measured to a voter ([`crate::report`]'s probes), and at least four
//!   of the longest gap between two messages of one leader seen in the
//!   last minute (a leader or follower slowed by load, a disk stall or a
//!   starved CPU widens the gaps, and the timeout grows with them before
//!   a late heartbeat looks like a dead leader). A gap is only measured
//!   between messages of the same leader: the silence of a dead leader,
//!   and the election after it, never lengthen the next timeout.
//!
//! # Correctness
//! Safety does not depend on this module: every election, pre-vote
//! included, is openraft's, with its vote rules and durable votes; this
//! timer only decides *when* a member asks. What it changes is liveness:
//! a member whose leader is silent asks within 1.2 T, and a lone voter
//! elects itself at once (without a pre-vote, as nobody else could vote).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    leader_silent: AtomicBool,
    /// The longest gap between two messages of one leader within
    /// [`GAP_WINDOW`], µs.
    heartbeat_gap_max_us: AtomicU64,
    /// The election timeout in force at the last look, µs.
    effective_timeout_us: AtomicU64,
}

impl ElectionState {
    fn set_leader_silent(&self, silent: bool) {
        self.leader_silent.store(silent, Ordering::Relaxed);
    }

    /// The longest recent gap between two messages of one leader, as this
    /// member saw them (none measured yet: `None`).
    pub fn heartbeat_gap_max(&self) -> Option<Duration> {
        match self.heartbeat_gap_max_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The election timeout this member's timer last used (none yet: `None`).
    pub fn effective_timeout(&self) -> Option<Duration> {
        match self.effective_timeout_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Whether this member's leader has been silent for an election
    /// timeout (it then reports no leader).
    pub fn leader_silent(&self) -> bool {
        self.leader_silent.load(Ordering::Relaxed)
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
            lease: election_timeout * 4 / 5,
            tick: (election_timeout / 50).clamp(Duration::from_millis(5), Duration::from_millis(50)),
        }
    }
}

/// How long a gap between a leader's messages counts toward the timeout.
const GAP_WINDOW: Duration = Duration::from_secs(60);

/// The election timeout is at least this many of the longest recent gaps
/// between one leader's messages.
const GAPS_PER_TIMEOUT: u32 = 4;

/// The election timeout is at least this many of the largest recent round
/// trips to a voter.
const ROUND_TRIPS_PER_TIMEOUT: u32 = 10;

/// The gaps between the messages of one leader, as a follower sees them:
/// when its vote (which the leader's every message refreshes) was
/// refreshed, and the longest gaps of the last [`GAP_WINDOW`].
#[derive(Default)]
struct HeartbeatGaps {
    /// The leader's vote (term, leader) and its last refresh.
    last: Option<(u64, NodeId, openraft::TokioInstant)>,
    /// (when seen, gap) of recent gaps, each longer than every later one
    /// (a longer later gap replaces the shorter earlier ones): the front is
    /// the window's maximum.
    recent: VecDeque<(Instant, Duration)>,
}

impl HeartbeatGaps {
    /// Records a look at the vote: a refresh by the same leader since the
    /// last look is a gap; a new leader (or none) starts over, so that an
    /// election is never taken for a slow leader. A gap of `timeout` or
    /// more was an outage the timer judged (this member was cut off or
    /// paused, and asked for a pre-vote or would have), not a slow leader:
    /// it is not counted, or a healed partition would stretch the timeout
    /// to four times its length.
    fn observe(&mut self, vote: Option<(u64, NodeId, openraft::TokioInstant)>, now: Instant, timeout: Duration) {
        if let (Some((term, leader, at)), Some((last_term, last_leader, last_at))) = (vote, self.last) {
            if term == last_term && leader == last_leader && at > last_at && at - last_at < timeout {
                let gap = at - last_at;
                while self.recent.back().is_some_and(|&(_, g)| g <= gap) {
                    self.recent.pop_back();
                }
                self.recent.push_back((now, gap));
            }
        }
        while self
            .recent
            .front()
            .is_some_and(|&(t, _)| now.duration_since(t) > GAP_WINDOW)
        {
            self.recent.pop_front();
        }
        self.last = vote;
    }

    fn max(&self) -> Option<Duration> {
        self.recent.front().map(|&(_, g)| g)
    }
}

/// How openraft last saw the vote: the vote's term, whether it is
/// committed (a leader was elected), and when it last changed or was
/// refreshed by the leader's messages.
struct VoteView {
    term: u64,
    leader: NodeId,
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
                term: st.vote_ref().leader_id().term,
                leader: st.vote_ref().leader_id().node_id,
                committed: st.vote_ref().is_committed(),
                utime: st.vote_last_modified(),
            })
            .await
            .ok()
    }

    /// The floor of the election timeout: the configured one, or ten of
    /// the largest recent round trips to a voter if that is longer.
    fn election_timeout_floor(&self, voters: &BTreeSet<NodeId>) -> Duration {
        let slowest = voters
            .iter()
            .filter(|&&v| v != self.id)
            .filter_map(|&v| self.peers.known(v))
            .filter_map(|c| c.round_trips().recent_max())
            .max()
            .unwrap_or_default();
        self.election.timeout.max(slowest * ROUND_TRIPS_PER_TIMEOUT)
    }

    /// Records the election timeout in force and the gap it came from, for
    /// the member's reports.
    fn report_election_timeout(&self, timeout: Duration, gaps: &HeartbeatGaps) {
        let gap = gaps.max().unwrap_or_default();
        self.election_state
            .effective_timeout_us
            .store(timeout.as_micros() as u64, Ordering::Relaxed);
        self.election_state
            .heartbeat_gap_max_us
            .store(gap.as_micros() as u64, Ordering::Relaxed);
    }
}

impl HeartbeatGaps {
    /// The election timeout in force: `floor`, or four of the longest
    /// recent gap between the leader's messages if that is longer.
    fn timeout(&self, floor: Duration) -> Duration {
        floor.max(self.max().unwrap_or_default() * GAPS_PER_TIMEOUT)
    }
}

/// Runs the election timer of `node` until it is dropped.
pub(crate) async fn run(node: Weak<Node>) {
    let started = Instant::now();
    let mut last_attempt = started;
    // The wait of this round, and whether it was drawn after an election
    // of this member's own that elected nobody.
    let mut next_wait: Option<(bool, Duration)> = None;
    let mut gaps = HeartbeatGaps::default();
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
            // A leader measures no gaps; its timeout in force is the one it
            // would start from after losing leadership.
            let timeout = gaps.timeout(node.election_timeout_floor(&voters));
            gaps.observe(None, Instant::now(), timeout);
            node.report_election_timeout(timeout, &gaps);
            next_wait = None;
            last_attempt = Instant::now();
            continue;
        }
        let Some(view) = node.vote_view().await else { return };
        let refreshed = view
            .utime
            .filter(|_| view.committed)
            .map(|t| (view.term, view.leader, t));
        // A gap is judged against the timeout in force before it, then may
        // lengthen it.
        let floor = node.election_timeout_floor(&voters);
        gaps.observe(refreshed, Instant::now(), gaps.timeout(floor));
        let timeout = gaps.timeout(floor);
        node.report_election_timeout(timeout, &gaps);
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds refreshes of one leader at the given offsets (ms).
    fn feed(gaps: &mut HeartbeatGaps, term: u64, leader: NodeId, base: openraft::TokioInstant, at_ms: &[u64]) {
        let now = Instant::now();
        for &t in at_ms {
            gaps.observe(Some((term, leader, base + Duration::from_millis(t))), now, 300 * MS);
        }
    }

    #[test]
    fn the_longest_gap_of_one_leader_is_kept() {
        let base = openraft::TokioInstant::now();
        let mut gaps = HeartbeatGaps::default();
        assert_eq!(gaps.max(), None);
        feed(&mut gaps, 3, 1, base, &[0, 50, 100, 220, 270, 290]);
        assert_eq!(gaps.max(), Some(120 * MS));
        // The same refresh seen twice is no gap.
        feed(&mut gaps, 3, 1, base, &[290]);
        assert_eq!(gaps.max(), Some(120 * MS));
    }

    #[test]
    fn a_new_leader_or_an_outage_is_no_gap() {
        let base = openraft::TokioInstant::now();
        let mut gaps = HeartbeatGaps::default();
        feed(&mut gaps, 3, 1, base, &[0, 50]);
        // Another leader's first message, 900 ms after the old one's last.
        feed(&mut gaps, 4, 2, base, &[950, 1000]);
        assert_eq!(gaps.max(), Some(50 * MS));
        // No leader seen for a while, then the same one again.
        gaps.observe(None, Instant::now(), 300 * MS);
        feed(&mut gaps, 4, 2, base, &[1400]);
        assert_eq!(gaps.max(), Some(50 * MS));
        // Cut off for longer than the timeout, then healed: an outage.
        feed(&mut gaps, 4, 2, base, &[1450, 5450]);
        assert_eq!(gaps.max(), Some(50 * MS));
    }

    #[test]
    fn gaps_older_than_the_window_are_forgotten() {
        let base = openraft::TokioInstant::now();
        let mut gaps = HeartbeatGaps::default();
        let then = Instant::now();
        gaps.observe(Some((1, 1, base)), then, 300 * MS);
        gaps.observe(Some((1, 1, base + 200 * MS)), then, 300 * MS);
        assert_eq!(gaps.max(), Some(200 * MS));
        let later = then + GAP_WINDOW + Duration::from_secs(1);
        gaps.observe(Some((1, 1, base + 250 * MS)), later, 300 * MS);
        assert_eq!(gaps.max(), Some(50 * MS));
    }
}
