//! openraft's network seam, over the peer [`transport`](crate::transport).
//!
//! # Replication fills the pipe
//! openraft 0.10 hands each follower's replication to
//! [`RaftNetworkV2::stream_append`] as a stream of AppendEntries, one stream
//! per range of entries to send. Here the streams to a follower share a
//! connection of their own, opened once and kept while it works (a connect
//! per stream would be a connect per write batch): a writer task sends each request as
//! soon as openraft produces it, without waiting for the answers to the
//! ones before, and the answers come back in order on the same connection,
//! each once the follower's log holds the entries on disk. Between
//! datacenters a write then costs one round trip plus the follower's fsync,
//! not a round trip per batch in flight: many batches are on the wire at
//! once.
//!
//! # Correctness
//! - Order: one TCP connection carries the stream both ways, and the
//!   receiver feeds the requests to its Raft in the order read
//!   (`Raft::stream_append`), which answers them in that order; an answer
//!   is matched to its request by position.
//! - An answer that does not come within the RPC's time to live, counted
//!   from when its request was sent, ends the stream with a timeout; so
//!   does a broken connection. openraft then starts a new stream from what
//!   the follower last confirmed: nothing is counted as replicated that a
//!   follower did not confirm.
//! - A snapshot goes in chunks, in order, over one connection; the receiver
//!   installs it only once the last chunk is in, and a connection that
//!   breaks midway leaves nothing installed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;

use crate::transport::{
    read_frame_counted, write_frame_counted, PeerClient, PeerError, PeerRequest, PeerResponse, Peers, SnapshotChunk,
    StreamAppendAnswer,
};
use crate::types::{Member, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};

/// Bytes of a snapshot sent in one chunk.
const SNAPSHOT_CHUNK: usize = 4 << 20;

/// Creates a [`PeerConnection`] per replication target.
#[derive(Clone)]
pub struct Network {
    pub(crate) peers: Arc<Peers>,
}

pub struct PeerConnection {
    target: NodeId,
    client: Arc<PeerClient>,
    /// The replication stream's connection, kept between openraft's stream
    /// sessions (one per range of entries to send): a connection per
    /// session would cost a connect per write batch.
    stream: Option<(StreamReader, StreamWriter)>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerConnection {
        PeerConnection {
            target,
            client: self.peers.get(target, &node.peer_addr),
            stream: None,
        }
    }
}

fn rpc_error(e: PeerError) -> RPCError<TypeConfig> {
    match e {
        PeerError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        other => RPCError::Network(NetworkError::new(&other)),
    }
}

fn network_error(message: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(message)))
}

fn unexpected(resp: PeerResponse) -> RPCError<TypeConfig> {
    network_error(format!("unexpected peer response {resp:?}"))
}

impl PeerConnection {
    async fn call(&self, req: PeerRequest, timeout: Duration) -> Result<PeerResponse, RPCError<TypeConfig>> {
        self.client.call(&req, timeout).await.map_err(rpc_error)
    }

    /// The peer answered with an error of its own (its Raft stopped).
    fn remote_error(&self, e: impl std::fmt::Display) -> RPCError<TypeConfig> {
        network_error(format!("peer {}: {e}", self.target))
    }

    fn io_error(&self, source: std::io::Error) -> RPCError<TypeConfig> {
        rpc_error(PeerError::Io {
            addr: self.client.addr().to_string(),
            source,
        })
    }
}

/// Counts bytes sent to or received from a peer in etcd's metrics.
fn count(sent: bool, label: &str, bytes: usize) {
    let metrics = firebreak_metrics::metrics();
    let counter = if sent {
        &metrics.peer_sent_bytes
    } else {
        &metrics.peer_received_bytes
    };
    counter.with_label_values(&[label]).inc_by(bytes as u64);
}

/// Stops the stream's writer task when the stream is dropped before it
/// ended (the connection is then closed, never reused).
struct AbortOnDrop(Option<tokio::task::JoinHandle<Option<StreamWriter>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

type StreamReader = tokio::io::ReadHalf<crate::peer_tls::PeerStream>;
type StreamWriter = tokio::io::WriteHalf<crate::peer_tls::PeerStream>;

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(PeerRequest::AppendEntries(rpc), option.hard_ttl()).await? {
            PeerResponse::AppendEntries(r) => r.map_err(|e| self.remote_error(e)),
            other => Err(unexpected(other)),
        }
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let ttl = option.hard_ttl();
            // Shared by the answers' futures, one per AppendEntries.
            let label: Arc<str> = self.client.label().into();
            let addr: Arc<str> = self.client.addr().into();
            // The connection the last stream left open, or a new one.
            let (reader, mut writer) = match self.stream.take() {
                Some(open) => open,
                None => {
                    let mut stream = self.client.dedicated(ttl).await.map_err(|e| {
                        self.client.count_failure();
                        rpc_error(e)
                    })?;
                    let opened = write_frame_counted(&mut stream, &PeerRequest::StreamAppend)
                        .await
                        .map_err(|e| self.io_error(e))?;
                    count(true, &label, opened);
                    tokio::io::split(stream)
                }
            };
            // When each request went out, in order: its answer is due within
            // the time to live from then.
            let (wrote, written) = tokio::sync::mpsc::unbounded_channel::<Instant>();
            let writer_task = tokio::spawn({
                let label = label.clone();
                let mut input = input;
                async move {
                    while let Some(req) = input.next().await {
                        let at = Instant::now();
                        match write_frame_counted(&mut writer, &req).await {
                            Ok(bytes) => count(true, &label, bytes),
                            Err(e) => {
                                tracing::debug!(error = %e, "replication stream write failed");
                                return None;
                            }
                        }
                        if wrote.send(at).is_err() {
                            return None;
                        }
                    }
                    // openraft's stream ended: the connection stays open for
                    // the next one.
                    Some(writer)
                }
            });
            let client = &self.client;
            let slot = &mut self.stream;
            let state = (slot, reader, written, AbortOnDrop(Some(writer_task)));
            let answers = futures::stream::unfold(Some(state), move |state| {
                let (addr, label) = (addr.clone(), label.clone());
                async move {
                    let (slot, mut reader, mut written, mut guard) = state?;
                    // The follower owes an answer only once a request went
                    // out. When openraft stops sending and every answer is
                    // in, the stream ends and the connection is kept; when a
                    // write failed, the request it held is answered with
                    // the failure.
                    let Some(sent_at) = written.recv().await else {
                        let writer = match guard.0.take() {
                            Some(task) => task.await.ok().flatten(),
                            None => None,
                        };
                        let Some(writer) = writer else {
                            client.count_failure();
                            let e = format!("peer {addr}: the replication stream could not be written");
                            return Some((Err(network_error(e)), None));
                        };
                        *slot = Some((reader, writer));
                        return None;
                    };
                    // Failpoint `replication-stream-break` (the `failpoints`
                    // feature only): the connection breaks with requests in
                    // flight, before this answer is read.
                    #[cfg(feature = "failpoints")]
                    if fail::eval("replication-stream-break", |_| ()).is_some() {
                        return Some((Err(network_error("replication stream broken (failpoint)".into())), None));
                    }
                    let read = read_frame_counted::<StreamAppendAnswer>(&mut reader);
                    let answer = match tokio::time::timeout_at((sent_at + ttl).into(), read).await {
                        Ok(answer) => answer,
                        Err(_) => {
                            client.count_failure();
                            let e = PeerError::Timeout {
                                addr: addr.to_string(),
                                timeout: ttl,
                            };
                            return Some((Err(network_error(e.to_string())), None));
                        }
                    };
                    match answer {
                        Ok((Ok(result), bytes)) => {
                            count(false, &label, bytes);
                            // After a refusal the follower closes the stream.
                            let next = result.is_ok().then_some((slot, reader, written, guard));
                            Some((Ok(result), next))
                        }
                        Ok((Err(fatal), _)) => Some((Err(network_error(format!("peer {addr}: {fatal}"))), None)),
                        Err(e) => {
                            client.count_failure();
                            let addr = addr.to_string();
                            Some((Err(rpc_error(PeerError::Io { addr, source: e })), None))
                        }
                    }
                }
            });
            let answers: BoxStream<'s, _> = Box::pin(answers);
            Ok(answers)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(PeerRequest::Vote(rpc), option.hard_ttl()).await? {
            PeerResponse::Vote(r) => r.map_err(|e| self.remote_error(e)),
            other => Err(unexpected(other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(PeerRequest::PreVote(rpc), option.hard_ttl()).await? {
            PeerResponse::PreVote(r) => r.map_err(|e| self.remote_error(e)),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let send = async {
            let ttl = option.hard_ttl();
            let mut stream = self.client.dedicated(ttl).await.map_err(rpc_error)?;
            let bytes = snapshot.snapshot.into_inner();
            let mut offset = 0;
            loop {
                let end = (offset + SNAPSHOT_CHUNK).min(bytes.len());
                let chunk = PeerRequest::SnapshotChunk(SnapshotChunk {
                    vote,
                    meta: snapshot.meta.clone(),
                    offset: offset as u64,
                    data: bytes[offset..end].to_vec(),
                    done: end == bytes.len(),
                });
                let exchange = async {
                    let sent = write_frame_counted(&mut stream, &chunk).await?;
                    count(true, self.client.label(), sent);
                    read_frame_counted::<PeerResponse>(&mut stream).await
                };
                let answer = match tokio::time::timeout(ttl, exchange).await {
                    Ok(Ok((answer, received))) => {
                        count(false, self.client.label(), received);
                        answer
                    }
                    Ok(Err(e)) => return Err(self.io_error(e)),
                    Err(_) => {
                        let e = PeerError::Timeout {
                            addr: self.client.addr().to_string(),
                            timeout: ttl,
                        };
                        return Err(network_error(e.to_string()));
                    }
                };
                match answer {
                    PeerResponse::SnapshotChunk(Ok(Some(response))) => return Ok(response),
                    PeerResponse::SnapshotChunk(Ok(None)) if end < bytes.len() => offset = end,
                    PeerResponse::SnapshotChunk(Ok(None)) => {
                        return Err(network_error("the snapshot's last chunk was not answered".into()))
                    }
                    PeerResponse::SnapshotChunk(Err(e)) => return Err(self.remote_error(e)),
                    other => return Err(unexpected(other)),
                }
            }
        };
        tokio::select! {
            result = send => result.map_err(StreamingError::from),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(PeerRequest::TransferLeader(req), option.hard_ttl()).await? {
            PeerResponse::TransferLeader(r) => r.map_err(|e| self.remote_error(e)),
            other => Err(unexpected(other)),
        }
    }
}
