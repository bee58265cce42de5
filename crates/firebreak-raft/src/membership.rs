//! Membership changes at run time: add (as voter or learner), promote,
//! remove and update members, through openraft's joint consensus.
//!
//! etcd's `MemberAdd` carries only peer URLs. As in etcd, a member added
//! that way appears unstarted (no name, no client URL) and gets its name,
//! client URL and failure domains from its own configuration when it first
//! starts: it announces them to the leader ([`JoinRequest`], sent to the
//! members its `initial_cluster` lists), which records them through the
//! log and answers with the member's id and the cluster's id; the member
//! keeps both in its data directory ([`crate::identity`]). A learner can
//! always be added this way. A voter is checked against the topology rule,
//! which needs its datacenter: added directly as a voter, its peer URL
//! must name the datacenter; otherwise it is refused with a message to add
//! it as a learner first, start it, and promote it, and promotion checks
//! the rule with the domains the member announced.
//!
//! As a shortcut, the peer URL may carry the name and domains as query
//! parameters: `http://10.0.4.5:2380?name=dc4-a&datacenter=dc4&room=r1`.
//! The id is then derived from the name, as for the initial members, so a
//! new member whose `initial_cluster` lists only itself knows its id.
//!
//! # Correctness
//! - Every change that alters the voter set is checked against the
//!   topology rule of `firebreak-config` before it is proposed: no change
//!   may leave a voter set that spans fewer than three datacenters or in
//!   which one failure domain holds a quorum. Replacing a burned
//!   datacenter is therefore add-then-remove.
//! - Changes run on the leader (forwarded there from any member) and go
//!   through joint consensus, so there is never a moment with two
//!   disjoint majorities.

use std::collections::{BTreeMap, BTreeSet};

use firebreak_config::topology::{check_topology, Domains};
use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::error::NodeError;
use crate::node::{MemberInfo, Node};
use crate::transport::{ForwardError, PeerRequest, PeerResponse};
use crate::types::{Member, NodeId, TypeConfig};

/// A member that starts for the first time in a running cluster announces
/// itself: the leader finds the member added with this peer URL and
/// records its name, client URL and failure domains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub peer_url: String,
    pub name: String,
    pub client_url: String,
    pub domains: Domains,
}

/// The leader's answer to a [`JoinRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The member's id, as `MemberAdd` chose it.
    pub id: NodeId,
    /// The cluster's id.
    pub cluster_id: u64,
}

/// Forwarded joins answer with this.
pub type JoinResult = Result<Result<Joined, MembershipError>, ForwardError>;

/// A requested change, as it travels to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipChange {
    Add { peer_url: String, learner: bool },
    Remove { id: NodeId },
    Promote { id: NodeId },
    Update { id: NodeId, peer_url: String },
}

/// Why a membership change was refused.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipError {
    #[error("etcdserver: member not found")]
    NotFound,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: member ID already exist")]
    IdExists,
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: {0}")]
    BadUrl(String),
    #[error("etcdserver: membership change refused: {0}")]
    Topology(String),
    #[error("etcdserver: {0}")]
    Unavailable(String),
    /// A joining member whose peer URL no member has.
    #[error("no member has peer URL {0}: add it first (etcdctl member add NAME --peer-urls={0} [--learner])")]
    NotAdded(String),
}

/// A parsed peer URL: `host:port`, the URL without its query, and the
/// name and domains given in the query.
struct PeerUrl {
    addr: String,
    url: String,
    name: Option<String>,
    domains: Domains,
    has_datacenter: bool,
}

fn parse_peer_url(raw: &str) -> Result<PeerUrl, MembershipError> {
    let (url, query) = raw.split_once('?').unwrap_or((raw, ""));
    let addr = firebreak_config::url_host_port(url).to_string();
    if !addr.contains(':') {
        return Err(MembershipError::BadUrl(format!("peer URL {raw:?} has no host:port")));
    }
    let mut out = PeerUrl {
        addr,
        url: url.to_string(),
        name: None,
        domains: Domains::default(),
        has_datacenter: false,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = v.to_string();
        match k {
            "name" => out.name = Some(v),
            "datacenter" | "dc" => {
                out.domains.datacenter = v;
                out.has_datacenter = true;
            }
            "room" => out.domains.room = Some(v),
            "rack" => out.domains.rack = Some(v),
            "host" => out.domains.host = Some(v),
            other => {
                return Err(MembershipError::BadUrl(format!(
                    "unknown peer URL parameter {other:?} (use name, datacenter, room, rack, host)"
                )))
            }
        }
    }
    Ok(out)
}

impl Node {
    /// Applies a membership change (at the leader) and returns the members
    /// after it, with the id the change concerned.
    pub async fn change_members(&self, change: MembershipChange) -> Result<(NodeId, Vec<MemberInfo>), NodeError> {
        let result = self
            // A change waits for joint consensus at the leader: one attempt
            // gets the whole request time, so it is never proposed twice.
            .on_leader(
                self.request_timeout,
                |node| {
                    let change = change.clone();
                    async move {
                        match node.leader_change_members(change).await {
                            // Not serving as leader (any more): ask again,
                            // here or at the leader.
                            Err(MembershipError::Unavailable(_)) if node.serving_term().is_none() => {
                                Err(ForwardError::NotLeader)
                            }
                            other => Ok(other),
                        }
                    }
                },
                PeerRequest::Membership(change.clone()),
                |resp| match resp {
                    PeerResponse::Membership(r) => Some(r),
                    _ => None,
                },
            )
            .await?;
        match result {
            Ok(id) => {
                // The change ran at the leader; answer with a member list that
                // has it, even if this member had not received it yet.
                self.read_barrier().await?;
                Ok((id, self.members()))
            }
            Err(MembershipError::Unavailable(_)) => Err(crate::error::Unavailable::Timeout.into()),
            Err(e) => Err(NodeError::Membership(e)),
        }
    }

    pub(crate) async fn leader_change_members(&self, change: MembershipChange) -> Result<NodeId, MembershipError> {
        if self.serving_term_soon().await.is_none() {
            return Err(MembershipError::Unavailable("not the leader".into()));
        }
        let config = self.raft.metrics().borrow_watched().membership_config.clone();
        let membership = config.membership();
        let nodes: BTreeMap<NodeId, Member> = membership.nodes().map(|(id, m)| (*id, m.clone())).collect();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let raft_err = |e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>| match e {
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::LearnerNotFound(_))) => {
                MembershipError::NotFound
            }
            other => MembershipError::Unavailable(other.to_string()),
        };
        match change {
            MembershipChange::Add { peer_url, learner } => {
                let url = parse_peer_url(&peer_url)?;
                if !learner && !url.has_datacenter {
                    return Err(MembershipError::Topology(format!(
                        "a voter's datacenter must be known to check that no failure domain would hold a quorum, \
                         and {} has not started yet: add it as a learner first (etcdctl member add NAME --learner \
                         --peer-urls={}), start it, then promote it (etcdctl member promote ID)",
                        url.url, url.url
                    )));
                }
                if nodes.values().any(|m| m.peer_addr == url.addr) {
                    return Err(MembershipError::PeerUrlExists);
                }
                // Named in the URL: the id comes from the name, as for the
                // initial members. Otherwise a fresh one, as etcd makes it
                // from the peer URL and the time.
                let (id, name) = match url.name.clone() {
                    Some(name) => (firebreak_config::member_id(&name), name),
                    None => (fresh_member_id(&url.url, &nodes), String::new()),
                };
                if nodes.contains_key(&id) {
                    return Err(MembershipError::IdExists);
                }
                let member = Member {
                    name,
                    peer_addr: url.addr,
                    peer_url: url.url,
                    client_url: String::new(),
                    domains: url.domains,
                };
                if !learner {
                    let mut after_nodes = nodes.clone();
                    after_nodes.insert(id, member.clone());
                    let mut after = voters.clone();
                    after.insert(id);
                    check_voters(&after, &after_nodes)?;
                }
                self.raft.add_learner(id, member, false).await.map_err(raft_err)?;
                if !learner {
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(raft_err)?;
                }
                Ok(id)
            }
            MembershipChange::Promote { id } => {
                if !nodes.contains_key(&id) {
                    return Err(MembershipError::NotFound);
                }
                if voters.contains(&id) {
                    return Err(MembershipError::NotLearner);
                }
                let metrics = self.raft.metrics().borrow_watched().clone();
                let last = metrics.last_log_index.unwrap_or(0);
                let matched = crate::placement::matched_index(&metrics, id).unwrap_or(0);
                // etcd's rule: a learner within 10% of the leader's log.
                if last.saturating_sub(matched) > last / 10 + 10 {
                    return Err(MembershipError::LearnerNotReady);
                }
                if nodes[&id].domains.datacenter.is_empty() {
                    return Err(MembershipError::Topology(format!(
                        "member {id:x} has not started yet, so its datacenter is unknown: start it, then promote it"
                    )));
                }
                let mut after = voters.clone();
                after.insert(id);
                check_voters(&after, &nodes)?;
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(raft_err)?;
                Ok(id)
            }
            MembershipChange::Remove { id } => {
                if !nodes.contains_key(&id) {
                    return Err(MembershipError::NotFound);
                }
                if voters.contains(&id) {
                    let mut after = voters.clone();
                    after.remove(&id);
                    check_voters(&after, &nodes)?;
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                        .await
                        .map_err(raft_err)?;
                } else {
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                        .await
                        .map_err(raft_err)?;
                }
                Ok(id)
            }
            MembershipChange::Update { id, peer_url } => {
                let mut member = nodes.get(&id).cloned().ok_or(MembershipError::NotFound)?;
                let url = parse_peer_url(&peer_url)?;
                if nodes.iter().any(|(other, m)| *other != id && m.peer_addr == url.addr) {
                    return Err(MembershipError::PeerUrlExists);
                }
                member.peer_addr = url.addr;
                member.peer_url = url.url;
                if url.has_datacenter {
                    member.domains = url.domains;
                }
                if voters.contains(&id) {
                    let mut after_nodes = nodes.clone();
                    after_nodes.insert(id, member.clone());
                    check_voters(&voters, &after_nodes)?;
                }
                self.raft
                    .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, member)])), false)
                    .await
                    .map_err(raft_err)?;
                Ok(id)
            }
        }
    }
}

/// The topology rule for the voter set `voters`, with the failure domains
/// `nodes` gives them.
pub(crate) fn check_voters(voters: &BTreeSet<NodeId>, nodes: &BTreeMap<NodeId, Member>) -> Result<(), MembershipError> {
    let named: Vec<(&str, &Domains)> = voters
        .iter()
        .filter_map(|id| nodes.get(id).map(|m| (m.name.as_str(), &m.domains)))
        .collect();
    check_topology(named).map_err(|e| MembershipError::Topology(e.to_string()))
}

/// A member id for a member added without a name: from its peer URL and
/// the time, unused by any member.
fn fresh_member_id(url: &str, nodes: &BTreeMap<NodeId, Member>) -> NodeId {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (0u32..)
        .map(|n| firebreak_config::member_id(&format!("{url}#{nanos}#{n}")))
        .find(|id| *id != 0 && !nodes.contains_key(id))
        .expect("some id is free")
}

impl Node {
    /// Runs a join at the leader, from whichever member it reached: the
    /// joining member knows only the members its configuration lists.
    pub(crate) async fn join(&self, join: JoinRequest) -> JoinResult {
        let result = self
            .on_leader(
                self.request_timeout,
                |node| {
                    let join = join.clone();
                    async move {
                        match node.leader_join(join).await {
                            Err(MembershipError::Unavailable(_)) if node.serving_term().is_none() => {
                                Err(ForwardError::NotLeader)
                            }
                            other => Ok(other.map(|id| Joined {
                                id,
                                cluster_id: node.cluster_id,
                            })),
                        }
                    }
                },
                PeerRequest::Join(join.clone()),
                |resp| match resp {
                    PeerResponse::Join(r) => Some(r),
                    _ => None,
                },
            )
            .await;
        match result {
            Ok(answer) => Ok(answer),
            Err(e) => Err(ForwardError::Unavailable(e.to_string())),
        }
    }

    /// Records what a member announces when it first starts (at the
    /// leader): its name, client URL and failure domains, on the member
    /// that `MemberAdd` added with its peer URL.
    pub(crate) async fn leader_join(&self, join: JoinRequest) -> Result<NodeId, MembershipError> {
        if self.serving_term_soon().await.is_none() {
            return Err(MembershipError::Unavailable("not the leader".into()));
        }
        let config = self.raft.metrics().borrow_watched().membership_config.clone();
        let membership = config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let addr = firebreak_config::url_host_port(&join.peer_url).to_string();
        let Some((id, known)) = membership
            .nodes()
            .find(|(_, m)| m.peer_addr == addr)
            .map(|(id, m)| (*id, m.clone()))
        else {
            return Err(MembershipError::NotAdded(join.peer_url));
        };
        if !known.name.is_empty() && known.name != join.name {
            return Err(MembershipError::BadUrl(format!(
                "peer URL {} belongs to member {} ({id:x}), not {}",
                join.peer_url, known.name, join.name
            )));
        }
        if !known.domains.datacenter.is_empty() && known.domains.datacenter != join.domains.datacenter {
            return Err(MembershipError::Topology(format!(
                "member {} was added in datacenter {} but is configured in {}",
                join.name, known.domains.datacenter, join.domains.datacenter
            )));
        }
        let member = Member {
            name: join.name,
            client_url: join.client_url,
            domains: join.domains,
            ..known.clone()
        };
        if member == known {
            return Ok(id);
        }
        if voters.contains(&id) {
            let mut after_nodes: BTreeMap<NodeId, Member> =
                membership.nodes().map(|(other, m)| (*other, m.clone())).collect();
            after_nodes.insert(id, member.clone());
            check_voters(&voters, &after_nodes)?;
        }
        self.raft
            .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, member)])), false)
            .await
            .map_err(|e| MembershipError::Unavailable(e.to_string()))?;
        Ok(id)
    }
}

/// Forwarded membership changes answer with this.
pub(crate) type MembershipResult = Result<Result<NodeId, MembershipError>, ForwardError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_carry_name_and_domains() {
        let u = parse_peer_url("http://10.0.4.5:2380?name=dc4-a&datacenter=dc4&room=r1").unwrap();
        assert_eq!(u.addr, "10.0.4.5:2380");
        assert_eq!(u.url, "http://10.0.4.5:2380");
        assert_eq!(u.name.as_deref(), Some("dc4-a"));
        assert_eq!(u.domains.datacenter, "dc4");
        assert_eq!(u.domains.room.as_deref(), Some("r1"));
        assert!(parse_peer_url("http://10.0.4.5:2380?color=red").is_err());
    }
}
