//! What one member knows about itself and the cluster, for the operations
//! plane (`/metrics`, `/api/status`, the dashboard, `firebreak status`).
//!
//! A [`MemberReport`] is a snapshot of this member's own facts: its role,
//! term, indexes, what it has on disk, round trips to its peers, fsync
//! latency, the leader changes it saw, and, on the leader, each follower's
//! durable progress. Other members fetch it over the peer transport
//! ([`crate::transport::PeerRequest::Report`]), so any member can show the
//! whole cluster while the others live, and say what it cannot see when
//! they do not. Nothing here feeds back into Raft.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firebreak_config::Domains;
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;
use serde::{Deserialize, Serialize};

use crate::node::Node;
use crate::types::NodeId;

/// Leader changes remembered for the timeline.
const TIMELINE_KEPT: usize = 64;

/// A member's role as the operations plane names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Stopped,
}

impl Role {
    fn of(state: ServerState) -> Role {
        match state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Stopped,
        }
    }
}

/// One member of the configuration, as a report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredMember {
    pub id: u64,
    pub name: String,
    pub domains: Domains,
    pub client_url: String,
    pub peer_url: String,
    pub is_learner: bool,
}

/// One leader change this member saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderChange {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    pub term: u64,
    /// The new leader; `None` while there is none (an election).
    pub leader: Option<u64>,
}

/// The link from this member to one peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerLink {
    pub id: u64,
    /// Smoothed round trip of messages that need no disk write, in ms.
    pub rtt_ms: Option<f64>,
    /// Largest recent round trip, in ms.
    pub rtt_max_ms: Option<f64>,
    /// How long ago the latest round trip was measured, in ms.
    pub rtt_measured_ms_ago: Option<u64>,
    /// On the leader: how long ago the peer last acknowledged this
    /// leadership, in ms.
    pub last_ack_ms_ago: Option<u64>,
}

/// On the leader: how far one member's durable log is behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowerProgress {
    pub id: u64,
    /// The last index the member has stored durably, as far as the leader
    /// knows (it answers appends only once they are on its disk); `None`
    /// while this leader has not heard from it.
    pub durable_index: Option<u64>,
    /// Entries of the leader's log the member has not stored (`None`:
    /// unknown).
    pub lag_entries: Option<u64>,
    /// How long the member has been missing its oldest missing entry, in
    /// seconds (0 if caught up; `None`: unknown).
    pub lag_seconds: Option<f64>,
}

/// fsync latency of the Raft log on this member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FsyncStats {
    pub count: u64,
    pub mean_ms: Option<f64>,
    /// Upper bound of the histogram bucket that holds the 99th percentile.
    pub p99_ms: Option<f64>,
}

/// What one member knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    pub id: u64,
    pub name: String,
    pub domains: Domains,
    pub role: Role,
    pub term: u64,
    pub leader: Option<u64>,
    /// Whether this member, as leader, heard from a quorum within one
    /// election timeout (`None` if it does not lead).
    pub leader_has_quorum: Option<bool>,
    pub last_log_index: u64,
    /// The last index of this member's log that is on its disk.
    pub durable_index: u64,
    /// The highest commit index this member has seen.
    pub commit_index: u64,
    pub applied_index: u64,
    pub revision: i64,
    pub db_size: i64,
    pub alarms: Vec<String>,
    pub members: Vec<ConfiguredMember>,
    pub peers: Vec<PeerLink>,
    /// On the leader: every other member's durable progress.
    pub replication: Option<Vec<FollowerProgress>>,
    pub election_timeout_ms: u64,
    /// The election timeout this member's timer uses now: the configured
    /// one, or longer when the round trips to the voters or the gaps
    /// between the leader's messages call for it (`crate::election`).
    pub election_timeout_effective_ms: Option<u64>,
    /// The longest gap between two messages of the current leader seen in
    /// the last minute (on followers).
    pub heartbeat_gap_max_ms: Option<f64>,
    pub heartbeat_interval_ms: u64,
    pub fsync: FsyncStats,
    pub leader_changes: Vec<LeaderChange>,
    pub uptime_seconds: f64,
    /// etcd's API version whose semantics this member implements.
    pub etcd_version: String,
    pub firebreak_version: String,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// fsync statistics from the process's WAL fsync histogram.
fn fsync_stats() -> FsyncStats {
    let h = firebreak_metrics::summarize(&firebreak_metrics::metrics().wal_fsync_duration);
    FsyncStats {
        count: h.count,
        mean_ms: h.mean.map(|s| s * 1000.0),
        p99_ms: h.p99_bound.map(|s| s * 1000.0),
    }
}

impl Node {
    /// This member's report, as of now.
    pub fn report(&self) -> MemberReport {
        let m = self.raft.metrics().borrow_watched().clone();
        let now = std::time::Instant::now();
        let last_log_index = m.last_log_index.unwrap_or(0);
        let leading = m.state == ServerState::Leader && m.current_leader == Some(self.id);
        let members: Vec<ConfiguredMember> = self
            .members()
            .into_iter()
            .map(|i| ConfiguredMember {
                id: i.id,
                name: i.member.name,
                domains: i.member.domains,
                client_url: i.member.client_url,
                peer_url: i.member.peer_url,
                is_learner: i.is_learner,
            })
            .collect();
        let me = members.iter().find(|c| c.id == self.id);
        let peers = members
            .iter()
            .filter(|c| c.id != self.id)
            .map(|c| {
                let rtt = self.peers.known(c.id);
                let rtt = rtt.as_ref().map(|p| p.round_trips());
                PeerLink {
                    id: c.id,
                    rtt_ms: rtt.and_then(|r| r.smoothed()).map(ms),
                    rtt_max_ms: rtt.and_then(|r| r.recent_max()).map(ms),
                    rtt_measured_ms_ago: rtt
                        .and_then(|r| r.last_measured())
                        .map(|at| now.saturating_duration_since(at).as_millis() as u64),
                    last_ack_ms_ago: leading
                        .then(|| crate::quorum_contact::peer_acked_ago(&m, c.id))
                        .flatten()
                        .map(|ago| ago.as_millis() as u64),
                }
            })
            .collect();
        let replication = leading.then(|| {
            let matched = m.replication.clone().unwrap_or_default();
            members
                .iter()
                .filter(|c| c.id != self.id)
                .map(|c| {
                    // openraft reports `None` both for "nothing matched yet"
                    // and for a member this leader has not heard from.
                    let durable_index = matched.get(&c.id).copied().flatten().map(|l| l.index);
                    let lag_entries = durable_index.map(|d| last_log_index.saturating_sub(d));
                    let lag_seconds = durable_index.map(|d| {
                        if d >= last_log_index {
                            0.0
                        } else {
                            self.progress
                                .appended_after(d)
                                .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64())
                        }
                    });
                    FollowerProgress {
                        id: c.id,
                        durable_index,
                        lag_entries,
                        lag_seconds,
                    }
                })
                .collect()
        });
        let status = self.status();
        MemberReport {
            id: self.id,
            name: me.map(|c| c.name.clone()).unwrap_or_default(),
            domains: me.map(|c| c.domains.clone()).unwrap_or_default(),
            role: Role::of(m.state),
            term: m.current_term,
            leader: self.known_leader(),
            leader_has_quorum: leading.then(|| self.serving_term().is_some()),
            last_log_index,
            durable_index: self.durability.durable_through(last_log_index),
            commit_index: self.progress.commit_index(),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            revision: status.header.revision,
            db_size: status.db_size,
            alarms: status.errors,
            members,
            peers,
            replication,
            election_timeout_ms: self.election_timeout.as_millis() as u64,
            election_timeout_effective_ms: self.election_state.effective_timeout().map(|t| t.as_millis() as u64),
            heartbeat_gap_max_ms: self.election_state.heartbeat_gap_max().map(ms),
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            fsync: fsync_stats(),
            leader_changes: self.timeline.lock().expect("timeline lock").iter().cloned().collect(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            etcd_version: firebreak_metrics::ETCD_VERSION.to_string(),
            firebreak_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The report of member `id`, asked over the peer transport.
    pub async fn peer_report(&self, id: NodeId, timeout: Duration) -> Result<MemberReport, String> {
        let member = self
            .members()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| format!("member {id:x} is not in the configuration"))?;
        let client = self.peers.get(id, &member.member.peer_addr);
        match client.call(&crate::transport::PeerRequest::Report, timeout).await {
            Ok(crate::transport::PeerResponse::Report(report)) => Ok(*report),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// How often each member measures the round trip to each peer.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Measures the round trip to every peer once a [`PROBE_INTERVAL`], with a
/// message that needs no disk write, so that every link has a fresh
/// figure, whichever member leads (as etcd's prober does).
pub(crate) async fn probe_peers(node: std::sync::Weak<Node>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        let peers: Vec<(NodeId, String)> = node
            .members()
            .into_iter()
            .filter(|m| m.id != node.id)
            .map(|m| (m.id, m.member.peer_addr))
            .collect();
        let probes = peers.into_iter().map(|(id, addr)| {
            let client = node.peers.get(id, &addr);
            async move {
                // The answer itself carries nothing; the exchange is timed
                // by the client.
                let _ = client.call(&crate::transport::PeerRequest::Ping, PROBE_INTERVAL).await;
            }
        });
        let probes = futures::future::join_all(probes);
        drop(node);
        probes.await;
    }
}

/// Records each change of leader this member sees (and counts them as
/// etcd's `etcd_server_leader_changes_seen_total` does: every new leader).
pub(crate) async fn watch_leadership(
    mut metrics: openraft::alias::WatchReceiverOf<crate::types::TypeConfig, crate::types::RaftMetrics>,
    timeline: Arc<Mutex<VecDeque<LeaderChange>>>,
) {
    let mut last: Option<(u64, Option<u64>)> = None;
    loop {
        let (term, leader) = {
            let m = metrics.borrow_and_update();
            (m.current_term, m.current_leader)
        };
        let seen = (term, leader);
        // Each new (term, leader) is a change: a member re-elected in a new
        // term went through an election all the same.
        if last != Some(seen) {
            if leader.is_some() {
                firebreak_metrics::metrics().leader_changes_seen.inc();
            }
            let mut t = timeline.lock().expect("timeline lock");
            if t.len() == TIMELINE_KEPT {
                t.pop_front();
            }
            t.push_back(LeaderChange {
                at_unix_ms: unix_ms(),
                term,
                leader,
            });
        }
        last = Some(seen);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
