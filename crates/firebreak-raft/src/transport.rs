//! The peer transport: framed request/response messages over TCP between
//! the peer listeners of the members, kept apart from client traffic;
//! with peer TLS configured, over mutual TLS ([`crate::peer_tls`]).
//!
//! Each frame is a big-endian `u32` length and a bincode body. A connection
//! carries one request at a time; callers that need concurrency take more
//! connections from the pool of the target. Two exchanges hold a
//! connection of their own: a replication stream
//! ([`PeerRequest::StreamAppend`]: after it, the sender writes
//! AppendEntries frames without waiting and the receiver answers each, in
//! order, as its log takes them), and a snapshot sent in chunks
//! ([`PeerRequest::SnapshotChunk`]).
//!
//! # Correctness
//! - [`PeerError::Connect`] means the request was never sent, so it is
//!   safe to retry; any other error means it may have been received and
//!   acted on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use firebreak_mvcc::{KvError, WriteCommand, WriteResponse};

use crate::peer_tls::{PeerStream, PeerTls};
use crate::types::{NodeId, SnapshotMeta, TypeConfig, Vote};

/// Largest frame accepted: an AppendEntries of at most 1024 entries
/// (openraft's `max_payload_entries`), each at most a batch of requests of
/// at most etcd's request limit, would be larger in theory, but openraft
/// sends fewer when they are large; snapshot chunks are far smaller.
const MAX_FRAME: usize = 256 << 20;
/// A frame's body is read into memory this much at a time at first.
const READ_CHUNK: usize = 64 << 10;

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    /// One piece of a snapshot; the pieces of one snapshot come in order
    /// on one connection, and the last one installs it.
    SnapshotChunk(SnapshotChunk),
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
    /// What the receiver knows about itself and the cluster, for the
    /// operations plane of another member.
    Report,
    /// Answered at once: measures the round trip.
    Ping,
    /// A member starting for the first time announces itself (to the
    /// leader; others answer `NotLeader`).
    Join(crate::membership::JoinRequest),
    /// Would the receiver vote for the sender now? (openraft's Pre-Vote,
    /// started by [`crate::election`])
    PreVote(VoteRequest<TypeConfig>),
    /// Turns the connection into a replication stream: every frame the
    /// sender writes after this one is an `AppendEntriesRequest`, and every
    /// frame it reads is a [`StreamAppendAnswer`], one per request, in
    /// order.
    StreamAppend,
    /// The leader hands its leadership to the receiver (or tells another
    /// member that it does).
    TransferLeader(TransferLeaderRequest<TypeConfig>),
}

/// A piece of a snapshot, from `offset` of its bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub offset: u64,
    pub data: Vec<u8>,
    /// The last piece: the receiver installs the snapshot.
    pub done: bool,
}

/// The answer to one AppendEntries of a replication stream; `Err` when the
/// receiver's Raft stopped (the stream ends with it).
pub type StreamAppendAnswer = Result<StreamAppendResult<TypeConfig>, String>;

impl PeerRequest {
    /// The member that sent this request, where the request names it.
    pub fn sender(&self) -> Option<NodeId> {
        match self {
            PeerRequest::AppendEntries(r) => Some(r.vote.leader_id().node_id),
            PeerRequest::Vote(r) => Some(r.vote.leader_id().node_id),
            PeerRequest::SnapshotChunk(c) => Some(c.vote.leader_id().node_id),
            PeerRequest::PreVote(r) => Some(r.vote.leader_id().node_id),
            PeerRequest::TransferLeader(r) => Some(r.from_leader().leader_id().node_id),
            _ => None,
        }
    }
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
    AppendEntries(Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>),
    Vote(Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>),
    /// `None` until the last piece; `Err` if the receiver cannot take it.
    SnapshotChunk(Result<Option<SnapshotResponse<TypeConfig>>, String>),
    Write(Result<Result<WriteResponse, KvError>, ForwardError>),
    ReadIndex(Result<u64, ForwardError>),
    /// The granted TTL after renewal; 0 if the lease does not exist.
    LeaseKeepAlive(Result<i64, ForwardError>),
    /// Seconds left; -1 if the lease does not exist.
    LeaseTimeToLive(Result<i64, ForwardError>),
    Campaign(Result<(), ForwardError>),
    Membership(crate::membership::MembershipResult),
    Report(Box<crate::report::MemberReport>),
    Pong,
    Join(crate::membership::JoinResult),
    PreVote(Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>),
    TransferLeader(Result<TransferLeaderResponse<TypeConfig>, String>),
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

/// Writes one frame holding `msg` (and flushes it through any TLS layer).
pub async fn write_frame<S, T>(stream: &mut S, msg: &T) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin + ?Sized,
    T: Serialize,
{
    write_frame_counted(stream, msg).await.map(|_| ())
}

/// [`write_frame`], answering the bytes written.
pub(crate) async fn write_frame_counted<S, T>(stream: &mut S, msg: &T) -> std::io::Result<usize>
where
    S: AsyncWrite + Unpin + ?Sized,
    T: Serialize,
{
    let body = bincode::serialize(msg).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(frame.len())
}

/// Reads one frame, refusing one over the size limit before its body.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
) -> std::io::Result<T> {
    read_frame_counted(stream).await.map(|(msg, _)| msg)
}

/// [`read_frame`], answering the bytes read as well.
pub(crate) async fn read_frame_counted<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
) -> std::io::Result<(T, usize)> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit of {MAX_FRAME}"),
        ));
    }
    // Memory grows with the bytes that actually arrive, not with what the
    // length claims.
    let mut body = Vec::with_capacity(len.min(READ_CHUNK));
    (&mut *stream).take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    decode_frame(&body).map(|msg| (msg, 4 + len))
}

/// Decodes a frame's body. Nothing inside it can make the decoder allocate
/// more than the body's own length (a sequence that claims more elements
/// than the bytes left is refused), and trailing bytes are refused.
pub fn decode_frame<T: for<'de> Deserialize<'de>>(body: &[u8]) -> std::io::Result<T> {
    crate::codec::decode(body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Connections to one peer.
pub struct PeerClient {
    addr: String,
    /// The peer's member id as etcd's metrics label it (hexadecimal).
    label: String,
    /// Mutual TLS with the peer, if configured.
    tls: Option<Arc<PeerTls>>,
    idle: Mutex<Vec<PeerStream>>,
    /// Round trips measured on probes and status reports.
    rtt: RoundTrips,
}

/// Round trips to one peer, measured on messages whose answer needs no
/// disk write nor an exchange of the peer's own (probes, status reports).
#[derive(Default)]
pub struct RoundTrips {
    /// Smoothed round trip in microseconds (0: none measured yet).
    smoothed_micros: std::sync::atomic::AtomicU64,
    /// Largest round trip among the recent ones, in microseconds; decays
    /// towards the smoothed value.
    recent_max_micros: std::sync::atomic::AtomicU64,
    /// When the latest was measured.
    last: Mutex<Option<std::time::Instant>>,
}

impl RoundTrips {
    fn record(&self, rtt: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let micros = (rtt.as_micros() as u64).max(1);
        let old = self.smoothed_micros.load(Relaxed);
        let smoothed = if old == 0 { micros } else { (old * 7 + micros) / 8 };
        self.smoothed_micros.store(smoothed, Relaxed);
        let max = self.recent_max_micros.load(Relaxed);
        let decayed = (max * 15 + smoothed) / 16;
        self.recent_max_micros.store(decayed.max(micros), Relaxed);
        *self.last.lock().expect("round trip lock") = Some(std::time::Instant::now());
    }

    /// When the latest round trip was measured.
    pub fn last_measured(&self) -> Option<std::time::Instant> {
        *self.last.lock().expect("round trip lock")
    }

    /// The smoothed round trip, if one was measured.
    pub fn smoothed(&self) -> Option<Duration> {
        match self.smoothed_micros.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// The recent largest round trip, if one was measured.
    pub fn recent_max(&self) -> Option<Duration> {
        match self.recent_max_micros.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }
}

/// Whether the answer to `req` needs no disk write on the peer and no
/// exchange of its own with others, so that the exchange measures the
/// network's round trip. A read index does not: the leader answers it
/// after a heartbeat round to a quorum (and after the round already under
/// way), which is several round trips under load, and ten of those would
/// stretch the election timeout for nothing.
fn measures_round_trip(req: &PeerRequest) -> bool {
    match req {
        PeerRequest::AppendEntries(a) => a.entries.is_empty(),
        PeerRequest::Report | PeerRequest::Ping => true,
        _ => false,
    }
}

impl PeerClient {
    fn new(id: NodeId, addr: String, tls: Option<Arc<PeerTls>>) -> PeerClient {
        PeerClient {
            addr,
            label: firebreak_metrics::member_label(id),
            tls,
            idle: Mutex::new(Vec::new()),
            rtt: RoundTrips::default(),
        }
    }

    /// Round trips measured to this peer.
    pub fn round_trips(&self) -> &RoundTrips {
        &self.rtt
    }

    /// An idle connection that is still open, or a new one. A new one is
    /// made within `timeout`, TLS handshake and admission included: any
    /// failure up to then is a [`PeerError::Connect`].
    async fn connection(&self, timeout: Duration) -> Result<PeerStream, PeerError> {
        loop {
            let Some(mut stream) = self.idle.lock().expect("pool lock").pop() else {
                break;
            };
            if stream.is_idle() {
                return Ok(stream);
            }
        }
        let connect = PeerStream::connect(&self.addr, self.tls.as_deref());
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
        Ok(stream)
    }

    /// A connection of the caller's own (for a replication stream or a
    /// snapshot), made within `timeout`; never returned to the pool.
    pub(crate) async fn dedicated(&self, timeout: Duration) -> Result<PeerStream, PeerError> {
        self.connection(timeout).await
    }

    /// The peer's address, for errors.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The peer's label in etcd's metrics.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&self, req: &PeerRequest, timeout: Duration) -> Result<PeerResponse, PeerError> {
        let result = self.exchange(req, timeout).await;
        if result.is_err() {
            self.count_failure();
        }
        result
    }

    /// Counts a message to this peer that failed (not sent, or not
    /// answered), in `etcd_network_peer_sent_failures_total`.
    pub(crate) fn count_failure(&self) {
        firebreak_metrics::metrics()
            .peer_sent_failures
            .with_label_values(&[&self.label])
            .inc();
    }

    async fn exchange(&self, req: &PeerRequest, timeout: Duration) -> Result<PeerResponse, PeerError> {
        let metrics = firebreak_metrics::metrics();
        let mut stream = self.connection(timeout).await?;
        let started = std::time::Instant::now();
        let exchange = async {
            let sent = write_frame_counted(&mut stream, req).await?;
            metrics
                .peer_sent_bytes
                .with_label_values(&[&self.label])
                .inc_by(sent as u64);
            read_frame_counted::<PeerResponse>(&mut stream).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((resp, received))) => {
                metrics
                    .peer_received_bytes
                    .with_label_values(&[&self.label])
                    .inc_by(received as u64);
                if measures_round_trip(req) {
                    let rtt = started.elapsed();
                    metrics
                        .peer_round_trip_time
                        .with_label_values(&[&self.label])
                        .observe(rtt.as_secs_f64());
                    self.rtt.record(rtt);
                }
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
    /// Mutual TLS with every peer, if configured.
    tls: Option<Arc<PeerTls>>,
}

impl Peers {
    /// Clients that connect with `tls`, or over plain TCP.
    pub fn new(tls: Option<Arc<PeerTls>>) -> Peers {
        Peers {
            clients: Mutex::default(),
            tls,
        }
    }

    /// The client for `id` at `addr` (replaced if the address changed).
    pub fn get(&self, id: NodeId, addr: &str) -> Arc<PeerClient> {
        let mut clients = self.clients.lock().expect("peers lock");
        match clients.get(&id) {
            Some((known, client)) if known == addr => client.clone(),
            _ => {
                let client = Arc::new(PeerClient::new(id, addr.to_string(), self.tls.clone()));
                clients.insert(id, (addr.to_string(), client.clone()));
                client
            }
        }
    }

    /// The client for `id`, if one was made.
    pub fn known(&self, id: NodeId) -> Option<Arc<PeerClient>> {
        self.clients
            .lock()
            .expect("peers lock")
            .get(&id)
            .map(|(_, c)| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use firebreak_mvcc::{PutRequest, WriteCommand};
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use openraft::{EntryPayload, Vote};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use tokio::net::TcpStream;

    use super::*;
    use crate::types::Entry;

    /// Well-formed frames of every kind a peer sends, to mutate.
    fn samples() -> Vec<Vec<u8>> {
        let log_id = crate::types::log_id(3, 7, 42);
        let entry = Entry {
            log_id,
            payload: EntryPayload::Normal(WriteCommand::Put(PutRequest {
                key: "k".into(),
                value: vec![7; 300].into(),
                ..Default::default()
            })),
        };
        let requests = [
            PeerRequest::AppendEntries(AppendEntriesRequest {
                vote: Vote::new_committed(3, 7),
                prev_log_id: Some(log_id),
                entries: vec![entry.clone(), entry],
                leader_commit: Some(log_id),
            }),
            PeerRequest::Vote(VoteRequest::new(Vote::new(4, 2), Some(log_id))),
            PeerRequest::Write(WriteCommand::Batch(vec![WriteCommand::Put(PutRequest::default())])),
            PeerRequest::ReadIndex,
            PeerRequest::LeaseKeepAlive(99),
        ];
        requests.iter().map(|r| bincode::serialize(r).unwrap()).collect()
    }

    /// Many random and mutated frame bodies: decoding never panics, never
    /// allocates beyond the body (a huge claimed length inside is refused),
    /// and a frame that decodes re-encodes to a body no longer than it.
    /// `FIREBREAK_FUZZ_ITERATIONS` runs longer by hand; CI uses a fixed seed.
    #[test]
    fn hostile_frames_are_refused_cleanly() {
        let iterations: usize = std::env::var("FIREBREAK_FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let mut rng = StdRng::seed_from_u64(0xf4a3e);
        let samples = samples();
        for sample in &samples {
            assert!(
                decode_frame::<PeerRequest>(sample).is_ok(),
                "a well-formed frame decodes"
            );
        }
        let (mut decoded, mut refused) = (0, 0);
        for i in 0..iterations {
            let body: Vec<u8> = match i % 4 {
                // Pure noise.
                0 => (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect(),
                // A sample with bytes flipped.
                1 | 2 => {
                    let mut b = samples[rng.gen_range(0..samples.len())].clone();
                    for _ in 0..rng.gen_range(1..6) {
                        let at = rng.gen_range(0..b.len());
                        b[at] = rng.gen();
                    }
                    b
                }
                // A sample cut short, or with a huge length field spliced in.
                _ => {
                    let mut b = samples[rng.gen_range(0..samples.len())].clone();
                    if rng.gen_bool(0.5) {
                        b.truncate(rng.gen_range(0..b.len()));
                    } else if b.len() > 12 {
                        let at = rng.gen_range(4..b.len() - 8);
                        b[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
                    }
                    b
                }
            };
            match decode_frame::<PeerRequest>(&body) {
                Ok(_) => decoded += 1,
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
                    refused += 1;
                }
            }
        }
        eprintln!("{iterations} hostile frames: {decoded} decoded, {refused} refused");
        assert!(
            refused > iterations / 2,
            "the mutations were too gentle to test anything"
        );
    }

    #[tokio::test]
    async fn a_frame_longer_than_the_limit_is_refused_before_its_body_is_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes()).await.unwrap();
            // No body: a reader that waited for it would hang.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let result = tokio::time::timeout(Duration::from_secs(2), read_frame::<PeerRequest>(&mut server))
            .await
            .expect("refused at once");
        assert!(result.unwrap_err().to_string().contains("over the limit"));
        client.abort();
    }
}
