//! openraft's network seam, over the peer [`transport`](crate::transport).
//!
//! # Correctness
//! An AppendEntries leaves only once the local log is on disk up to the
//! commit index it carries ([`Durability`]): a leader's appends may be
//! acknowledged to openraft before their fsync (see [`crate::log_store`]),
//! and a follower told of a commit applies it.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use crate::log_store::Durability;
use crate::transport::{PeerClient, PeerError, PeerRequest, PeerResponse, Peers};
use crate::types::{Member, NodeId, TypeConfig};

/// Creates a [`PeerConnection`] per replication target.
#[derive(Clone)]
pub struct Network {
    pub(crate) peers: Arc<Peers>,
    pub(crate) log: Durability,
}

pub struct PeerConnection {
    target: NodeId,
    client: Arc<PeerClient>,
    log: Durability,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerConnection {
        PeerConnection {
            target,
            client: self.peers.get(target, &node.peer_addr),
            log: self.log.clone(),
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

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        if let Some(committed) = rpc.leader_commit {
            let on_disk = tokio::time::timeout(option.hard_ttl(), self.log.wait_through(committed.index)).await;
            if let Err(e) = on_disk.map_err(|_| "timed out".to_string()).and_then(|r| r) {
                let e = std::io::Error::other(format!("the local log is not on disk up to the commit index: {e}"));
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        }
        match self.call(PeerRequest::AppendEntries(rpc), option.hard_ttl()).await? {
            PeerResponse::AppendEntries(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
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
