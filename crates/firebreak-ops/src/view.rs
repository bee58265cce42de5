//! The cluster as one member sees it: its own report, every other
//! member's report fetched over the peer transport (or why it could not
//! be), and the risk. What `/api/cluster`, the dashboard and `firebreak
//! status` show.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firebreak_raft::report::{MemberReport, Role};
use firebreak_raft::Node;
use serde::{Deserialize, Serialize};

use crate::risk::{assess, Risk};

/// How long the view waits for another member's report.
pub const PEER_REPORT_TIMEOUT: Duration = Duration::from_millis(800);

/// One member in the view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    /// Member id, hexadecimal (as etcdctl prints it).
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub room: Option<String>,
    pub rack: Option<String>,
    pub host: Option<String>,
    pub client_url: String,
    /// `leader`, `follower` or `learner`: its place in the cluster (a
    /// candidate, or a member that cannot be reached, shows as the voter
    /// or learner it is configured as).
    pub role: String,
    /// What it reports itself: `leader`, `follower`, `candidate`,
    /// `learner`, `stopped`, or `unreachable`.
    pub state: String,
    /// Whether this member could fetch its report.
    pub reachable: bool,
    /// Why not, if it could not.
    pub error: Option<String>,
    /// Reachable, knows a leader that has a quorum, and has no alarm.
    pub healthy: bool,
    pub term: Option<u64>,
    pub applied_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub durable_index: Option<u64>,
    /// Entries of the leader's log it has not stored (from the leader).
    pub lag_entries: Option<u64>,
    /// How long it has missed its oldest missing entry, in seconds.
    pub lag_seconds: Option<f64>,
    /// How long ago it last acknowledged the leader, in ms (from the
    /// leader; 0 for the leader itself).
    pub last_contact_ms_ago: Option<u64>,
    pub fsync_mean_ms: Option<f64>,
    pub fsync_p99_ms: Option<f64>,
    pub db_size: Option<i64>,
    pub alarms: Vec<String>,
}

/// One direction of one link between members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub from: String,
    pub to: String,
    pub rtt_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
    /// How long ago the latest round trip was measured, in ms.
    pub rtt_measured_ms_ago: Option<u64>,
}

/// A leader change in the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderChangeView {
    pub at_unix_ms: u64,
    pub term: u64,
    /// The new leader's name; `None` during an election.
    pub leader: Option<String>,
}

/// The cluster as one member sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The member that made this view.
    pub observer: String,
    pub at_unix_ms: u64,
    /// The leader's name, if one with a quorum is known.
    pub leader: Option<String>,
    pub term: u64,
    pub members: Vec<MemberView>,
    pub links: Vec<LinkView>,
    pub risk: Risk,
    /// Datacenter → whether the cluster carries on, losing no
    /// acknowledged write, if that datacenter is lost now.
    pub survives_loss_of: BTreeMap<String, bool>,
    /// Leader changes the observer saw, oldest first.
    pub leader_changes: Vec<LeaderChangeView>,
    /// Every alarm any reachable member reports.
    pub alarms: Vec<String>,
    /// Members the observer could not reach, by name.
    pub unreachable: Vec<String>,
    pub etcd_version: String,
    /// The observer's election timeout: a member silent for longer is
    /// counted out of the quorum.
    pub election_timeout_ms: u64,
    /// The election timeout the observer's timer uses now: the configured
    /// one, or longer when the round trips to the voters or the gaps
    /// between the leader's messages call for it.
    pub election_timeout_effective_ms: Option<u64>,
    pub heartbeat_interval_ms: u64,
}

fn state_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        Role::Stopped => "stopped",
    }
}

/// Builds the view from the observer's own report and what it got from
/// the others (`Err` with the reason where it got nothing).
pub fn compose(own: MemberReport, others: BTreeMap<u64, Result<MemberReport, String>>) -> ClusterView {
    let members = own.members.clone();
    let mut reports: BTreeMap<u64, Result<MemberReport, String>> = others;
    reports.insert(own.id, Ok(own.clone()));
    let name = |id: u64| {
        members
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| format!("{id:x}"), |m| m.name.clone())
    };
    // The leader: a member that leads with a quorum, the newest term if
    // (for a moment) two believe they lead.
    let leader: Option<&MemberReport> = reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| r.role == Role::Leader && r.leader_has_quorum == Some(true))
        .max_by_key(|r| r.term);
    let term = reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.term)
        .max()
        .unwrap_or(own.term);
    let reachable: BTreeSet<u64> = reports.iter().filter(|(_, r)| r.is_ok()).map(|(id, _)| *id).collect();
    let risk = assess(&members, leader, &reachable);

    let member_views = members
        .iter()
        .map(|m| {
            let report = reports.get(&m.id);
            let ok = report.and_then(|r| r.as_ref().ok());
            let error = match report {
                Some(Err(e)) => Some(e.clone()),
                None => Some("not asked".to_string()),
                Some(Ok(_)) => None,
            };
            let progress = leader
                .and_then(|l| l.replication.as_ref())
                .and_then(|p| p.iter().find(|p| p.id == m.id));
            let is_leader = leader.is_some_and(|l| l.id == m.id);
            let healthy = ok.is_some_and(|r| {
                r.alarms.is_empty() && leader.is_some_and(|l| r.leader == Some(l.id) && r.term == l.term)
            });
            MemberView {
                id: format!("{:x}", m.id),
                name: m.name.clone(),
                datacenter: m.domains.datacenter.clone(),
                room: m.domains.room.clone(),
                rack: m.domains.rack.clone(),
                host: m.domains.host.clone(),
                client_url: m.client_url.clone(),
                role: if is_leader {
                    "leader"
                } else if m.is_learner {
                    "learner"
                } else {
                    "follower"
                }
                .to_string(),
                state: ok.map_or("unreachable", |r| state_name(r.role)).to_string(),
                reachable: ok.is_some(),
                error,
                healthy,
                term: ok.map(|r| r.term),
                applied_index: ok.map(|r| r.applied_index),
                commit_index: ok.map(|r| r.commit_index),
                durable_index: ok.map(|r| r.durable_index).or(progress.and_then(|p| p.durable_index)),
                lag_entries: if is_leader {
                    Some(0)
                } else {
                    progress.and_then(|p| p.lag_entries)
                },
                lag_seconds: if is_leader {
                    Some(0.0)
                } else {
                    progress.and_then(|p| p.lag_seconds)
                },
                last_contact_ms_ago: if is_leader {
                    Some(0)
                } else {
                    leader
                        .and_then(|l| l.peers.iter().find(|p| p.id == m.id))
                        .and_then(|p| p.last_ack_ms_ago)
                },
                fsync_mean_ms: ok.and_then(|r| r.fsync.mean_ms),
                fsync_p99_ms: ok.and_then(|r| r.fsync.p99_ms),
                db_size: ok.map(|r| r.db_size),
                alarms: ok.map(|r| r.alarms.clone()).unwrap_or_default(),
            }
        })
        .collect::<Vec<_>>();
    let links = reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|r| {
            r.peers.iter().map(move |p| LinkView {
                from: name(r.id),
                to: name(p.id),
                rtt_ms: p.rtt_ms,
                rtt_max_ms: p.rtt_max_ms,
                rtt_measured_ms_ago: p.rtt_measured_ms_ago,
            })
        })
        .collect();
    let mut alarms: Vec<String> = member_views.iter().flat_map(|m| m.alarms.clone()).collect();
    alarms.sort();
    alarms.dedup();
    ClusterView {
        observer: own.name.clone(),
        at_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        leader: leader.map(|l| name(l.id)),
        term,
        survives_loss_of: risk
            .datacenters
            .iter()
            .map(|(dc, l)| (dc.clone(), l.survives))
            .collect(),
        risk,
        unreachable: member_views
            .iter()
            .filter(|m| !m.reachable)
            .map(|m| m.name.clone())
            .collect(),
        members: member_views,
        links,
        leader_changes: own
            .leader_changes
            .iter()
            .map(|c| LeaderChangeView {
                at_unix_ms: c.at_unix_ms,
                term: c.term,
                leader: c.leader.map(name),
            })
            .collect(),
        alarms,
        etcd_version: own.etcd_version.clone(),
        election_timeout_ms: own.election_timeout_ms,
        election_timeout_effective_ms: own.election_timeout_effective_ms,
        heartbeat_interval_ms: own.heartbeat_interval_ms,
    }
}

/// The view from `node`: its own report and every other member's, asked
/// at once.
pub async fn gather(node: &Arc<Node>) -> ClusterView {
    let own = node.report();
    let asks = own.members.iter().filter(|m| m.id != own.id).map(|m| {
        let node = node.clone();
        let id = m.id;
        async move { (id, node.peer_report(id, PEER_REPORT_TIMEOUT).await) }
    });
    let others = futures::future::join_all(asks).await.into_iter().collect();
    compose(own, others)
}
