//! openraft's network seam, over the peer [`transport`](crate::transport).
//!
//! # Correctness
//! An AppendEntries carries a commit index only once the local log is on
//! disk up to it ([`Durability`]): a leader's appends may be acknowledged
//! to openraft before their fsync (see [`crate::log_store`]), and a
//! follower told of a commit applies it. It waits for that at most half its
//! time to live; past that (a slow disk), it leaves with the last commit
//! index this connection sent, and the follower learns the newer one from
//! a later AppendEntries. Heartbeats keep flowing, so a slow leader disk
//! does not by itself look like a dead leader.
//!
//! # Commit notices do not hold up the next entries
//! openraft 0.9 keeps one AppendEntries in flight per follower, and after
//! every commit sends one that carries only the new commit index. Awaited,
//! that notice would hold the next entries back a full round trip: every
//! write would cost two round trips between datacenters. A *commit notice*
//! (no entries, a commit index this connection has not sent yet, and a
//! `prev_log_id` the follower already confirmed on this connection) is
//! therefore sent without waiting, and openraft is told it succeeded.
//!
//! Why that answer is true, or harmless when it is not: the notice changes
//! nothing openraft learns from a success (the follower's matching log id
//! is `prev_log_id`, which it already confirmed, and Raft never loses a
//! follower's acknowledged entries); the follower applies a notice that
//! arrives late or out of order as any Raft follower does (an AppendEntries
//! without entries truncates nothing, and a commit index only moves
//! forward); and if the follower would have refused it (a newer term), the
//! next heartbeat or entries, which are awaited, bring the refusal. Leader
//! confirmation for linearizable reads never relies on it: openraft
//! confirms with AppendEntries of its own on new connections, which are
//! always awaited.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use crate::log_store::Durability;
use crate::quorum_contact::QuorumContact;
use crate::transport::{PeerClient, PeerError, PeerRequest, PeerResponse, Peers};
use crate::types::{LogId, Member, NodeId, TypeConfig};

/// Creates a [`PeerConnection`] per replication target.
#[derive(Clone)]
pub struct Network {
    pub(crate) peers: Arc<Peers>,
    pub(crate) log: Durability,
    /// Where followers' acknowledgements of this leader are recorded.
    pub(crate) contact: Arc<QuorumContact>,
}

pub struct PeerConnection {
    target: NodeId,
    client: Arc<PeerClient>,
    log: Durability,
    contact: Arc<QuorumContact>,
    /// The last commit index sent on this connection (on disk here).
    sent_commit: Option<LogId>,
    /// The last log id the follower confirmed holding, in an answer on this
    /// connection (`None` until one came, or after a refusal or error).
    confirmed: Option<Option<LogId>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerConnection {
        PeerConnection {
            target,
            client: self.peers.get(target, &node.peer_addr),
            log: self.log.clone(),
            contact: self.contact.clone(),
            sent_commit: None,
            confirmed: None,
        }
    }
}

fn rpc_error<E: std::error::Error>(e: PeerError) -> RPCError<NodeId, Member, E> {
    match e {
        PeerError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        other => RPCError::Network(NetworkError::new(&other)),
    }
}

fn unexpected<E: std::error::Error>(resp: PeerResponse) -> RPCError<NodeId, Member, E> {
    let e = std::io::Error::other(format!("unexpected peer response {resp:?}"));
    RPCError::Network(NetworkError::new(&e))
}

impl PeerConnection {
    async fn call<E: std::error::Error>(
        &self,
        req: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, RPCError<NodeId, Member, E>> {
        self.client.call(&req, timeout).await.map_err(rpc_error)
    }
}

/// Whether `rpc` is a commit notice, safe to send without waiting (see the
/// module documentation): it carries no entries, a commit index this
/// connection has not sent yet, and a `prev_log_id` the follower already
/// confirmed holding on this connection.
fn is_commit_notice(
    rpc: &AppendEntriesRequest<TypeConfig>,
    previous_commit: Option<LogId>,
    confirmed: Option<Option<LogId>>,
) -> bool {
    rpc.entries.is_empty() && rpc.leader_commit > previous_commit && confirmed == Some(rpc.prev_log_id)
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        let mut rpc = rpc;
        let previous_commit = self.sent_commit;
        if let Some(committed) = rpc.leader_commit {
            match tokio::time::timeout(option.hard_ttl() / 2, self.log.wait_through(committed.index)).await {
                Ok(Ok(())) => self.sent_commit = self.sent_commit.max(Some(committed)),
                Ok(Err(e)) => {
                    let e = std::io::Error::other(format!("the local log cannot be written: {e}"));
                    return Err(RPCError::Network(NetworkError::new(&e)));
                }
                Err(_) => rpc.leader_commit = self.sent_commit.min(rpc.leader_commit),
            }
        }
        if is_commit_notice(&rpc, previous_commit, self.confirmed) {
            let client = self.client.clone();
            let (target, ttl) = (self.target, option.hard_ttl());
            let req = PeerRequest::AppendEntries(rpc);
            tokio::spawn(async move {
                // Failpoint `commit-notice-drop` (the `failpoints` feature
                // only): the notice is lost, as on a broken connection.
                #[cfg(feature = "failpoints")]
                fail::fail_point!("commit-notice-drop", |_| ());
                if let Err(e) = client.call(&req, ttl).await {
                    tracing::debug!(target, error = %e, "commit notice not delivered; the next AppendEntries carries it");
                }
            });
            return Ok(AppendEntriesResponse::Success);
        }
        let holds = rpc.entries.last().map(|e| Some(e.log_id)).unwrap_or(rpc.prev_log_id);
        let term = rpc.vote.leader_id().term;
        self.confirmed = None;
        let sent = std::time::Instant::now();
        let answer = match self.call(PeerRequest::AppendEntries(rpc), option.hard_ttl()).await? {
            PeerResponse::AppendEntries(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))?,
            other => return Err(unexpected(other)),
        };
        match answer {
            AppendEntriesResponse::Success => {
                self.confirmed = Some(holds);
                self.contact.acknowledged(self.target, term, sent);
            }
            // The follower accepted this leadership, whatever its log.
            AppendEntriesResponse::PartialSuccess(_) | AppendEntriesResponse::Conflict => {
                self.contact.acknowledged(self.target, term, sent)
            }
            AppendEntriesResponse::HigherVote(_) => {}
        }
        Ok(answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>>
    {
        match self.call(PeerRequest::InstallSnapshot(rpc), option.hard_ttl()).await? {
            PeerResponse::InstallSnapshot(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self.call(PeerRequest::Vote(rpc), option.hard_ttl()).await? {
            PeerResponse::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, Vote};

    use super::*;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(2, 1), index)
    }

    fn request(prev: u64, entries: u64, commit: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(prev)),
            entries: (prev + 1..=prev + entries)
                .map(|i| crate::types::Entry {
                    log_id: log_id(i),
                    payload: EntryPayload::Blank,
                })
                .collect(),
            leader_commit: Some(log_id(commit)),
        }
    }

    #[test]
    fn only_a_new_commit_index_over_a_confirmed_log_goes_unawaited() {
        let confirmed = Some(Some(log_id(10)));
        assert!(is_commit_notice(&request(10, 0, 10), Some(log_id(9)), confirmed));
        // Entries are always awaited: the leader counts them only once held.
        assert!(!is_commit_notice(&request(10, 1, 10), Some(log_id(9)), confirmed));
        // A log the follower has not confirmed on this connection.
        assert!(!is_commit_notice(&request(11, 0, 11), Some(log_id(9)), confirmed));
        assert!(!is_commit_notice(&request(10, 0, 10), Some(log_id(9)), None));
        // Nothing new to tell: a heartbeat, awaited.
        assert!(!is_commit_notice(&request(10, 0, 9), Some(log_id(9)), confirmed));
    }
}
