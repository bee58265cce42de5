//! The peer transport: framed request/response messages over TCP between
//! the peer listeners of the members, kept apart from client traffic.
//!
//! Each frame is a big-endian `u32` length and a bincode body. A connection
//! carries one request at a time; callers that need concurrency take more
//! connections from the pool of the target.
//!
//! # Correctness
//! - [`PeerError::Connect`] means the request was never sent, so it is
//!   safe to retry; any other error means it may have been received and
//!   acted on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use firebreak_mvcc::{KvError, WriteCommand, WriteResponse};

use crate::types::{NodeId, TypeConfig};

/// Largest frame accepted (snapshot chunks are far smaller).
const MAX_FRAME: usize = 256 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client write forwarded to the leader.
    Write(WriteCommand),
    /// A follower asks the leader for a read index.
    ReadIndex,
    /// A lease keep-alive, which only the leader can act on.
    LeaseKeepAlive(i64),
    /// A lease's remaining time, which only the leader knows.
    LeaseTimeToLive(i64),
    /// Asks the receiver to campaign now (MoveLeader).
    Campaign,
    /// A membership change, which the leader runs.
    Membership(crate::membership::MembershipChange),
}

/// Why the leader did not run a forwarded request.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    /// The receiver is not the leader (any more): retry elsewhere.
    #[error("not the leader")]
    NotLeader,
    /// The leader could not finish it in time: the outcome is unknown.
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Write(Result<Result<WriteResponse, KvError>, ForwardError>),
    ReadIndex(Result<u64, ForwardError>),
    /// The granted TTL after renewal; 0 if the lease does not exist.
    LeaseKeepAlive(Result<i64, ForwardError>),
    /// Seconds left; -1 if the lease does not exist.
    LeaseTimeToLive(Result<i64, ForwardError>),
    Campaign(Result<(), ForwardError>),
    Membership(crate::membership::MembershipResult),
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made: the request was not sent.
    #[error("cannot connect to peer {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    /// The exchange failed after the request may have been sent.
    #[error("peer {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("peer {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

pub(crate) async fn write_frame<T: Serialize>(stream: &mut TcpStream, msg: &T) -> std::io::Result<()> {
    let body = bincode::serialize(msg).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

pub(crate) async fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {len} bytes is over the limit")));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    bincode::deserialize(&body).map_err(std::io::Error::other)
}

/// Connections to one peer.
pub struct PeerClient {
    addr: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl PeerClient {
    fn new(addr: String) -> PeerClient {
        PeerClient {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection that is still open, or a new one.
    async fn connection(&self, timeout: Duration) -> Result<TcpStream, PeerError> {
        loop {
            let Some(stream) = self.idle.lock().expect("pool lock").pop() else {
                break;
            };
            // An idle connection has nothing to read: data or EOF means the
            // peer closed it (or restarted).
            let mut probe = [0u8; 1];
            match stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(stream),
                _ => continue,
            }
        }
        let connect = TcpStream::connect(&self.addr);
        let stream = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(PeerError::Connect {
                    addr: self.addr.clone(),
                    source,
                })
            }
            Err(_) => {
                return Err(PeerError::Connect {
                    addr: self.addr.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&self, req: &PeerRequest, timeout: Duration) -> Result<PeerResponse, PeerError> {
        let mut stream = self.connection(timeout).await?;
        let exchange = async {
            write_frame(&mut stream, req).await?;
            read_frame::<PeerResponse>(&mut stream).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(resp)) => {
                self.idle.lock().expect("pool lock").push(stream);
                Ok(resp)
            }
            Ok(Err(source)) => Err(PeerError::Io {
                addr: self.addr.clone(),
                source,
            }),
            Err(_) => Err(PeerError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }
}

/// Clients for every peer, by node id.
#[derive(Default)]
pub struct Peers {
    clients: Mutex<HashMap<NodeId, (String, Arc<PeerClient>)>>,
}

impl Peers {
    /// The client for `id` at `addr` (replaced if the address changed).
    pub fn get(&self, id: NodeId, addr: &str) -> Arc<PeerClient> {
        let mut clients = self.clients.lock().expect("peers lock");
        match clients.get(&id) {
            Some((known, client)) if known == addr => client.clone(),
            _ => {
                let client = Arc::new(PeerClient::new(addr.to_string()));
                clients.insert(id, (addr.to_string(), client.clone()));
                client
            }
        }
    }
}
