//! A running member: Raft, the replica, the peer listener, and the request
//! paths the protocol layer calls.
//!
//! # Correctness
//! - A write is answered only after openraft applied it, which happens only
//!   once it is committed: on a quorum of logs, each fsynced.
//! - A write is retried (locally or at the leader) only when it certainly
//!   was not appended: openraft refused it as a non-leader before
//!   appending it ([`crate::proposer`] tells that from a refusal of an
//!   entry this log held), or the leader's connection could not even be
//!   made. Any other failure is reported as unavailable, with an unknown
//!   outcome, exactly like etcd's timeouts.
//! - A linearizable read first obtains a read index from the current leader
//!   (which confirms its leadership with a quorum after the read arrived),
//!   then waits until this replica has applied up to it. A node that cannot
//!   reach a leader with a quorum never answers a linearizable read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firebreak_auth::AuthInfo;
use firebreak_config::Config;
use firebreak_mvcc::{authorize, validate};
use firebreak_mvcc::{
    CompactRequest, CompactResponse, DeleteRangeRequest, DeleteRangeResponse, KvError, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse, WriteCommand, WriteResponse,
};
use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{InitializeError, LinearizableReadError, RaftError};
use openraft::{ServerState, SnapshotPolicy};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::auth::{as_caller, check_read_revision};
use crate::error::{NodeError, Unavailable};
use crate::lessor::Lessor;
use crate::log_store::LogStore;
use crate::network::Network;
use crate::peer_tls::{PeerTls, HANDSHAKE_TIMEOUT};
use crate::proposer::{OwnProposals, Pending, Proposal};
use crate::state_machine::{SharedReplica, StateMachine};
use crate::transport::{
    read_frame_counted, write_frame_counted, ForwardError, PeerError, PeerRequest, PeerResponse, Peers,
};
use crate::types::{Member, NodeId, Raft};

/// How long to wait between attempts while no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The header fields etcd puts in every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
}

/// A member as `Cluster.MemberList` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub member: Member,
    pub is_learner: bool,
}

/// What `Maintenance.Status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub header: Header,
    pub leader: Option<u64>,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub db_size_quota: i64,
    pub is_learner: bool,
    /// Raised alarms, as etcd lists them in status.
    pub errors: Vec<String>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("cannot listen for peers on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("raft: {0}")]
    Raft(String),
    #[error("{0}")]
    Auth(#[from] firebreak_auth::token::JwtError),
    #[error("peer TLS: {0}")]
    Tls(#[from] firebreak_tls::TlsError),
    #[error("{0}")]
    Identity(#[from] crate::identity::IdentityError),
}

/// One running member.
pub struct Node {
    pub(crate) id: NodeId,
    pub(crate) cluster_id: u64,
    pub(crate) raft: Raft,
    pub(crate) replica: SharedReplica,
    pub(crate) peers: Arc<Peers>,
    /// How long a request may wait for a leader, a commit or a read index.
    pub(crate) request_timeout: Duration,
    pub(crate) election_timeout: Duration,
    /// Lease deadlines, kept while this member leads.
    pub(crate) lessor: Lessor,
    /// The smallest TTL a lease is granted, in seconds (etcd: 1.5 election
    /// timeouts, rounded up).
    pub(crate) min_lease_ttl: i64,
    /// The space quota of the store, in bytes.
    pub(crate) quota_bytes: u64,
    /// The applied revision, for watchers.
    revisions: tokio::sync::watch::Receiver<i64>,
    /// Background tasks (peer listener, lease expiry, read batching),
    /// stopped on shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Readers waiting for a read index; see [`batch_read_indexes`].
    read_requests: tokio::sync::mpsc::UnboundedSender<ReadWaiter>,
    /// Writes waiting to be proposed; see [`crate::proposer`].
    proposals: tokio::sync::mpsc::UnboundedSender<Pending>,
    /// Which of this member's proposals its log has held.
    pub(crate) own_proposals: Arc<OwnProposals>,
    /// The election timer's settings ([`crate::election`]).
    pub(crate) election: crate::election::ElectionTiming,
    /// What the election timer learned ([`crate::election`]).
    pub(crate) election_state: crate::election::ElectionState,
    /// How this member makes and checks auth tokens.
    pub(crate) tokens: crate::auth::Tokens,
    /// Which log entries are on disk here.
    pub(crate) durability: crate::log_store::Durability,
    /// The commit index and append times, for reports.
    pub(crate) progress: crate::log_store::Progress,
    /// Leader changes this member saw, newest last.
    pub(crate) timeline: Arc<Mutex<std::collections::VecDeque<crate::report::LeaderChange>>>,
    pub(crate) started: Instant,
    pub(crate) heartbeat_interval: Duration,
    /// The store's high-water size since the last defragmentation.
    pub(crate) allocated: Arc<std::sync::atomic::AtomicU64>,
}

/// Where a reader waits for the read index of its batch.
type ReadWaiter = tokio::sync::oneshot::Sender<Result<Option<u64>, NodeError>>;

impl Node {
    /// Opens storage, starts Raft and the peer listener, and on a first
    /// start initializes the cluster from the configured members.
    pub async fn start(config: &Config) -> Result<Arc<Node>, StartError> {
        #[cfg(feature = "failpoints")]
        {
            static SETUP: std::sync::Once = std::sync::Once::new();
            // The scenario reads FAILPOINTS from the environment and must
            // live as long as the process.
            SETUP.call_once(|| std::mem::forget(fail::FailScenario::setup()));
        }
        // Certificates first: a member that cannot read them stops before
        // it creates or touches anything in its data directory.
        let peer_tls = config.tls.peer.as_ref().map(PeerTls::new).transpose()?.map(Arc::new);
        let peers = Arc::new(Peers::new(peer_tls.clone()));
        // A member joining a running cluster learns its id from the leader
        // at its first start (crate::identity).
        let crate::membership::Joined { id, cluster_id } = crate::identity::resolve(config, &peers).await?;
        let log = LogStore::open(&config.data_dir.join("raft"), id)?;
        let durability = log.durability();
        let progress = log.progress();
        let own_proposals = log.own_proposals();
        let sm = StateMachine::open(&config.data_dir.join("snapshot"))?;
        let replica = sm.replica();
        let revisions = sm.revisions();
        let allocated = sm.allocated();

        let timing = config.raft;
        let election = crate::election::ElectionTiming::new(timing.election_timeout);
        let heartbeat_ms = timing.heartbeat_interval.as_millis() as u64;
        let lease_ms = election.lease.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: "firebreak".into(),
            heartbeat_interval: heartbeat_ms,
            // Elections are started by crate::election, after a pre-vote;
            // openraft's own timer is off. Its leader lease (a follower
            // refuses votes while it trusts its leader) is
            // `election_timeout_max`; `election_timeout_min` bounds a vote
            // request.
            enable_elect: false,
            election_timeout_min: (lease_ms * 4 / 5).max(heartbeat_ms + 1),
            election_timeout_max: lease_ms.max(heartbeat_ms + 2),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(timing.snapshot_entries),
            max_in_snapshot_log_to_keep: timing.snapshot_entries.min(1000),
            install_snapshot_timeout: 10_000,
            max_payload_entries: 1024,
            // A member that led never resumes that term after a restart:
            // its followers may hold entries of that term that its own
            // disk lost (openraft replicates an entry before the leader's
            // own fsync; see crate::log_store).
            enable_leader_restore: Some(resumes_leadership()),
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;

        let listener = TcpListener::bind(config.listen_peer)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.listen_peer.to_string(),
                source,
            })?;

        let network = Network { peers: peers.clone() };
        let raft = Raft::new(id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;

        // A member joining a running cluster waits to be replicated to; only
        // the members of a new cluster initialize it (all alike, which
        // openraft allows).
        let joining = config.initial_cluster_state == firebreak_config::ClusterState::Existing;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if !joining && !initialized {
            let members: BTreeMap<NodeId, Member> = config
                .members
                .iter()
                .map(|m| {
                    let member = Member {
                        name: m.name.clone(),
                        peer_addr: m.peer_addr.clone(),
                        peer_url: m.peer_url.clone(),
                        client_url: m.client_url.clone(),
                        domains: m.domains.clone(),
                    };
                    (m.id, member)
                })
                .collect();
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StartError::Raft(e.to_string())),
            }
        }

        let tokens = crate::auth::Tokens::new(&config.auth)?;
        let (read_requests, read_queue) = tokio::sync::mpsc::unbounded_channel();
        let (proposals, proposal_queue) = tokio::sync::mpsc::unbounded_channel();
        let node = Arc::new(Node {
            read_requests,
            proposals,
            id,
            cluster_id,
            raft,
            replica,
            peers,
            request_timeout: Duration::from_secs(5) + timing.election_timeout * 2,
            election_timeout: timing.election_timeout,
            lessor: Lessor::default(),
            own_proposals,
            tokens,
            min_lease_ttl: (timing.election_timeout.as_millis() as u64 * 3).div_ceil(2000) as i64,
            quota_bytes: config.quota_backend_bytes,
            revisions,
            tasks: Mutex::new(Vec::new()),
            durability,
            progress,
            timeline: Arc::default(),
            started: Instant::now(),
            heartbeat_interval: timing.heartbeat_interval,
            allocated,
            election,
            election_state: Default::default(),
        });
        let server = tokio::spawn(serve_peers(listener, Arc::downgrade(&node), peer_tls));
        let expiry = tokio::spawn(crate::leases::expire_leases(Arc::downgrade(&node)));
        let reads = tokio::spawn(batch_read_indexes(Arc::downgrade(&node), read_queue));
        let proposer = tokio::spawn(crate::proposer::run_proposer(Arc::downgrade(&node), proposal_queue));
        let renewals = tokio::spawn(crate::auth::renew_tokens(Arc::downgrade(&node)));
        let leadership = tokio::spawn(crate::report::watch_leadership(
            node.raft.metrics(),
            node.timeline.clone(),
        ));
        let probes = tokio::spawn(crate::report::probe_peers(Arc::downgrade(&node)));
        let elections = tokio::spawn(crate::election::run(Arc::downgrade(&node)));
        let placement = tokio::spawn(crate::placement::run(Arc::downgrade(&node), config.placement.clone()));
        node.tasks.lock().expect("tasks lock").extend([
            server, expiry, reads, proposer, renewals, leadership, probes, elections, placement,
        ]);
        Ok(node)
    }

    /// Stops the background tasks and Raft.
    pub async fn shutdown(&self) {
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        let _ = self.raft.shutdown().await;
    }

    /// The applied revision of this replica, updated as entries apply.
    pub fn revisions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.revisions.clone()
    }

    /// Watch events of this replica (see [`firebreak_mvcc::Store::events`]).
    pub fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, firebreak_mvcc::Event)>, KvError> {
        self.replica
            .read()
            .expect("replica lock")
            .store
            .events(key, range_end, from, to)
    }

    /// Whether the lease `id` exists in this member's replica (as applied
    /// here: read after a barrier for a linearizable answer).
    pub fn has_lease(&self, id: i64) -> bool {
        self.replica.read().expect("replica lock").store.lease(id).is_some()
    }

    /// The current and compaction revisions of this replica.
    pub fn revision_window(&self) -> (i64, i64) {
        let replica = self.replica.read().expect("replica lock");
        (replica.store.current_revision(), replica.store.compact_revision())
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The openraft handle, for metrics and tests.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> Header {
        Header {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.raft.metrics().borrow_watched().current_term,
        }
    }

    /// A header at the current revision of this replica.
    pub fn current_header(&self) -> Header {
        let revision = self.replica.read().expect("replica lock").store.current_revision();
        self.header(revision)
    }

    /// A put made by `who` (checked when applied).
    pub async fn put(&self, req: PutRequest, who: &AuthInfo) -> Result<PutResponse, NodeError> {
        validate::check_put(&req)?;
        self.check_quota(req.key.len() + req.value.len()).await?;
        match self.write(as_caller(who, WriteCommand::Put(req))).await? {
            WriteResponse::Put(r) => Ok(r),
            other => unreachable!("a put answered with {other:?}"),
        }
    }

    pub async fn delete_range(
        &self,
        req: DeleteRangeRequest,
        who: &AuthInfo,
    ) -> Result<DeleteRangeResponse, NodeError> {
        validate::check_delete(&req)?;
        match self.write(as_caller(who, WriteCommand::DeleteRange(req))).await? {
            WriteResponse::DeleteRange(r) => Ok(r),
            other => unreachable!("a delete answered with {other:?}"),
        }
    }

    /// A txn made by `who`: a read-only one is checked here, after the
    /// read barrier; one that writes when it is applied.
    pub async fn txn(&self, req: TxnRequest, who: &AuthInfo) -> Result<TxnResponse, NodeError> {
        validate::check_txn(&req)?;
        if req.is_read_only() {
            if !req.is_serializable() {
                self.read_barrier().await?;
            }
            let replica = self.replica.read().expect("replica lock");
            authorize::check_txn(&replica.auth, &replica.store, who, &req)?;
            let resp = replica.store.txn_read(&req);
            check_read_revision(&replica, who)?;
            return Ok(resp?);
        }
        self.check_quota(txn_put_bytes(&req)).await?;
        match self.write(as_caller(who, WriteCommand::Txn(req))).await? {
            WriteResponse::Txn(r) => Ok(r),
            other => unreachable!("a txn answered with {other:?}"),
        }
    }

    /// A compaction: `root` only while auth is enabled.
    pub async fn compact(&self, req: CompactRequest, who: &AuthInfo) -> Result<CompactResponse, NodeError> {
        self.check_admin(who)?;
        let physical = req.physical;
        let response = match self.write(as_caller(who, WriteCommand::Compact(req))).await? {
            WriteResponse::Compact(r) => r,
            other => unreachable!("a compaction answered with {other:?}"),
        };
        if physical {
            // Compaction is complete wherever it is applied; a member that
            // forwarded the request answers once it has applied it too,
            // as etcd's member answers after its own backend compacted.
            self.read_barrier().await?;
        }
        Ok(response)
    }

    /// A range read by `who`, checked after the read barrier.
    pub async fn range(&self, req: RangeRequest, who: &AuthInfo) -> Result<RangeResponse, NodeError> {
        validate::check_range(&req)?;
        if !req.serializable {
            self.read_barrier().await?;
        }
        let replica = self.replica.read().expect("replica lock");
        authorize::check_range(&replica.auth, who, &req)?;
        let resp = replica.store.range(&req);
        check_read_revision(&replica, who)?;
        Ok(resp?)
    }

    /// Runs a write through the log, forwarding it to the leader if this
    /// node is not the leader.
    pub async fn write(&self, cmd: WriteCommand) -> Result<WriteResponse, NodeError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let leader = match self.propose(cmd.clone(), deadline).await? {
                Proposal::Done(result) => return Ok(result?),
                Proposal::NotLeader(leader) => leader,
            };
            if let Some((id, member)) = leader.filter(|(id, _)| *id != self.id) {
                let client = self.peers.get(id, &member.peer_addr);
                let remaining = deadline.saturating_duration_since(Instant::now());
                let request = PeerRequest::Write(cmd.clone());
                let forwarded = tokio::select! {
                    answer = client.call(&request, remaining) => answer,
                    // The leader it went to was replaced (or went silent)
                    // while it waited: the write may or may not have been
                    // committed there, so it is not sent again; the client
                    // hears "leader changed" (an unknown outcome, as etcd
                    // answers) at once rather than at its own timeout.
                    _ = self.leader_replaced(id) => return Err(Unavailable::LeaderChanged.into()),
                };
                match forwarded {
                    Ok(PeerResponse::Write(Ok(result))) => return Ok(result?),
                    Ok(PeerResponse::Write(Err(ForwardError::NotLeader))) => {}
                    Ok(PeerResponse::Write(Err(ForwardError::Unavailable(_)))) => {
                        return Err(Unavailable::Timeout.into())
                    }
                    Ok(other) => return Err(NodeError::Stopped(format!("unexpected peer response {other:?}"))),
                    Err(PeerError::Connect { .. }) => {}
                    Err(_) => return Err(Unavailable::Timeout.into()),
                }
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(Unavailable::NoLeader.into());
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Proposes `cmd` to the local Raft and waits for its result.
    pub(crate) async fn propose(&self, cmd: WriteCommand, deadline: Instant) -> Result<Proposal, NodeError> {
        #[cfg(feature = "failpoints")]
        if let Some(fake) = self.ack_before_replication(&cmd).await {
            return Ok(Proposal::Done(fake));
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        if self.proposals.send(Pending { cmd, done }).is_err() {
            return Err(NodeError::Stopped("shutting down".into()));
        }
        let metrics = firebreak_metrics::metrics();
        metrics.proposals_pending.inc();
        let result = match tokio::time::timeout_at(deadline, answer).await {
            // The write may still be committed: its outcome is unknown.
            Err(_) => Err(Unavailable::Timeout.into()),
            Ok(Err(_)) => Err(NodeError::Stopped("shutting down".into())),
            Ok(Ok(answer)) => answer,
        };
        metrics.proposals_pending.dec();
        if result.is_err() {
            metrics.proposals_failed.inc();
        }
        result
    }

    /// Failpoint `ack-before-replication` (builds with the `failpoints`
    /// feature only, enabled by `FAILPOINTS=ack-before-replication=return`):
    /// the leader acknowledges a put at once and proposes it two seconds
    /// later, so a leader that dies in between loses acknowledged writes.
    /// It exists to prove that the drill catches exactly that bug.
    #[cfg(feature = "failpoints")]
    async fn ack_before_replication(&self, cmd: &WriteCommand) -> Option<Result<WriteResponse, KvError>> {
        fail::eval("ack-before-replication", |_| ())?;
        let WriteCommand::Put(_) = cmd else { return None };
        if self.raft.current_leader().await != Some(self.id) {
            return None;
        }
        let raft = self.raft.clone();
        let later = cmd.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = raft.client_write(later).await;
        });
        let revision = self.replica.read().expect("replica lock").store.current_revision() + 1;
        Some(Ok(WriteResponse::Put(firebreak_mvcc::PutResponse {
            revision,
            prev_kv: None,
        })))
    }

    /// A write forwarded by another member: run it here if this node leads.
    async fn forwarded_write(&self, cmd: WriteCommand) -> Result<Result<WriteResponse, KvError>, ForwardError> {
        let deadline = Instant::now() + self.request_timeout;
        match self.propose(cmd, deadline).await {
            Ok(Proposal::Done(result)) => Ok(result),
            Ok(Proposal::NotLeader(_)) => Err(ForwardError::NotLeader),
            Err(e) => Err(ForwardError::Unavailable(e.to_string())),
        }
    }

    /// The read index, if this node is the leader and a quorum confirms it
    /// (batched with the reads of this member).
    async fn leader_read_index(&self) -> Result<u64, ForwardError> {
        if self.leading_term().is_none() {
            return Err(ForwardError::NotLeader);
        }
        match self.batched_read_index().await {
            Ok(Some(index)) => Ok(index),
            Ok(None) => Err(ForwardError::NotLeader),
            Err(e) => Err(ForwardError::Unavailable(e.to_string())),
        }
    }

    /// A read index from a leadership confirmation that starts after this
    /// call: concurrent readers share one confirmation.
    async fn batched_read_index(&self) -> Result<Option<u64>, NodeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.read_requests.send(tx).is_err() {
            return Err(NodeError::Stopped("shutting down".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(NodeError::Stopped("shutting down".into())))
    }

    /// Waits until this replica may serve a linearizable read.
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            if let Some(index) = self.batched_read_index().await? {
                let remaining = deadline.saturating_duration_since(Instant::now());
                return self
                    .raft
                    .wait(Some(remaining))
                    .applied_index_at_least(Some(index), "read index")
                    .await
                    .map(|_| ())
                    .map_err(|_| Unavailable::Timeout.into());
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(Unavailable::NoLeader.into());
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// One attempt at a read index, locally or from the leader. `None`:
    /// no leader could confirm one yet (reads are safe to retry).
    ///
    /// One attempt lasts at most an election timeout: a leader that does
    /// not answer by then (frozen, or cut off) is asked again or replaced,
    /// rather than holding every reader of this member.
    async fn read_index_once(&self) -> Result<Option<u64>, NodeError> {
        let deadline = Instant::now() + self.election_timeout;
        let attempt =
            tokio::time::timeout_at(deadline, self.raft.get_read_log_id(openraft::ReadPolicy::ReadIndex)).await;
        let leader = match attempt {
            Err(_) => return Ok(None),
            Ok(Ok((read, _))) => return Ok(Some(read.index())),
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))) => f.leader_id.zip(f.leader_node),
            Ok(Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_)))) => None,
            Ok(Err(RaftError::Fatal(f))) => return Err(NodeError::Stopped(f.to_string())),
        };
        let Some((id, member)) = leader.filter(|(id, _)| *id != self.id) else {
            return Ok(None);
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let client = self.peers.get(id, &member.peer_addr);
        let answer = tokio::select! {
            answer = client.call(&PeerRequest::ReadIndex, remaining) => answer,
            // A replaced leader will not answer: ask its successor.
            _ = self.leader_replaced(id) => return Ok(None),
        };
        match answer {
            Ok(PeerResponse::ReadIndex(Ok(index))) => Ok(Some(index)),
            _ => Ok(None),
        }
    }

    /// Resolves once `leader` is no longer the leader this member relies
    /// on: another was elected, or it has been silent for an election
    /// timeout ([`Node::known_leader`]).
    async fn leader_replaced(&self, leader: NodeId) {
        while self.known_leader() == Some(leader) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The members, voters first.
    pub fn members(&self) -> Vec<MemberInfo> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut out: Vec<MemberInfo> = membership
            .nodes()
            .map(|(id, member)| MemberInfo {
                id: *id,
                member: member.clone(),
                is_learner: !voters.contains(id),
            })
            .collect();
        out.sort_by_key(|m| (m.is_learner, m.member.name.clone()));
        out
    }

    /// Defragments this member's store: in memory there is nothing to
    /// move, so what it does is give back the space compaction freed (the
    /// allocated size drops to what is in use), as etcd's defragmentation
    /// shrinks its database file.
    pub fn defragment(&self) {
        let in_use = self.replica.read().expect("replica lock").store.size_bytes();
        self.allocated.store(in_use, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn status(&self) -> NodeStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let (revision, bytes, alarms) = {
            let replica = self.replica.read().expect("replica lock");
            (
                replica.store.current_revision(),
                replica.store.size_bytes() as i64,
                replica.store.alarms(),
            )
        };
        NodeStatus {
            header: Header {
                cluster_id: self.cluster_id,
                member_id: self.id,
                revision,
                raft_term: metrics.current_term,
            },
            leader: self.known_leader(),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_applied_index: metrics.last_applied.map_or(0, |l| l.index),
            // As etcd's database file, the allocated size keeps the high
            // water mark until a defragmentation; what is in use drops
            // with compaction.
            db_size: (self.allocated.load(std::sync::atomic::Ordering::Relaxed) as i64).max(bytes),
            db_size_in_use: bytes,
            db_size_quota: self.quota_bytes as i64,
            is_learner: metrics.state == ServerState::Learner,
            errors: alarms
                .iter()
                .map(|a| format!("memberID:{:x} alarm:{:?}", a.member_id, a.alarm))
                .collect(),
        }
    }
}

/// Bytes a txn's puts would add (0 for a txn that only reads or deletes).
fn txn_put_bytes(req: &TxnRequest) -> usize {
    use firebreak_mvcc::RequestOp;
    req.success
        .iter()
        .chain(&req.failure)
        .map(|op| match op {
            RequestOp::Put(p) => p.key.len() + p.value.len(),
            RequestOp::Txn(t) => txn_put_bytes(t),
            _ => 0,
        })
        .sum()
}

/// Serves read-index requests in batches (see [`confirm_in_batches`]).
async fn batch_read_indexes(node: std::sync::Weak<Node>, queue: tokio::sync::mpsc::UnboundedReceiver<ReadWaiter>) {
    confirm_in_batches(queue, || {
        let node = node.upgrade();
        async move { Some(node?.read_index_once().await) }
    })
    .await
}

/// Takes every waiter in `queue` now, runs one `confirm` for all of them,
/// answers each with its result, and repeats, until `confirm` gives `None`
/// or the queue closes.
///
/// # Correctness
/// A waiter that arrives while a confirmation runs waits for the next one:
/// every waiter's answer comes from a confirmation that began after it
/// arrived. For read indexes this is what makes a shared confirmation as
/// good as one's own: a read index obtained before a reader arrived could
/// miss a write acknowledged before it arrived (a stale read).
async fn confirm_in_batches<T, F, Fut>(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<T>>,
    mut confirm: F,
) where
    T: Clone,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    while let Some(first) = queue.recv().await {
        let mut waiters = vec![first];
        while let Ok(more) = queue.try_recv() {
            waiters.push(more);
        }
        let Some(result) = confirm().await else { return };
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// Accepts peer connections until the node is dropped; with `tls`, only
/// those whose certificate the cluster's CA signed (see
/// [`crate::peer_tls`]): nothing is read from a connection before that.
async fn serve_peers(listener: TcpListener, node: std::sync::Weak<Node>, tls: Option<Arc<PeerTls>>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let Some(node) = node.upgrade() else { return };
        let node = Arc::downgrade(&node);
        let _ = stream.set_nodelay(true);
        match tls.clone() {
            None => {
                tokio::spawn(serve_peer_connection(stream, peer, node));
            }
            Some(tls) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.admit(stream)).await {
                        Ok(Ok(stream)) => serve_peer_connection(stream, peer, node).await,
                        Ok(Err(e)) => tracing::warn!(%peer, error = %e, "refused a peer connection"),
                        Err(_) => tracing::warn!(%peer, "refused a peer connection: no TLS handshake in time"),
                    }
                });
            }
        }
    }
}

async fn serve_peer_connection<S>(mut stream: S, peer: std::net::SocketAddr, node_weak: std::sync::Weak<Node>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A snapshot being received on this connection: its bytes so far.
    let mut receiving: Option<Vec<u8>> = None;
    loop {
        let (req, size) = match read_frame_counted::<PeerRequest>(&mut stream).await {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "dropping a peer connection");
                return;
            }
        };
        let sender = req.sender().map(firebreak_metrics::member_label);
        if let Some(from) = &sender {
            firebreak_metrics::metrics()
                .peer_received_bytes
                .with_label_values(&[from])
                .inc_by(size as u64);
        }
        let Some(node) = node_weak.upgrade() else { return };
        let resp = match req {
            PeerRequest::Report => PeerResponse::Report(Box::new(node.report())),
            PeerRequest::Ping => PeerResponse::Pong,
            PeerRequest::Join(join) => PeerResponse::Join(node.join(join).await),
            PeerRequest::AppendEntries(r) => PeerResponse::AppendEntries(node.raft.append_entries(r).await),
            PeerRequest::Vote(r) => PeerResponse::Vote(node.raft.vote(r).await),
            PeerRequest::SnapshotChunk(chunk) => {
                PeerResponse::SnapshotChunk(receive_snapshot_chunk(&node, &mut receiving, chunk).await)
            }
            PeerRequest::TransferLeader(r) => {
                PeerResponse::TransferLeader(node.raft.handle_transfer_leader(r).await.map_err(|e| e.to_string()))
            }
            PeerRequest::StreamAppend => {
                drop(node);
                serve_stream_append(stream, peer, node_weak).await;
                return;
            }
            PeerRequest::Write(cmd) => PeerResponse::Write(node.forwarded_write(cmd).await),
            PeerRequest::ReadIndex => PeerResponse::ReadIndex(node.leader_read_index().await),
            PeerRequest::LeaseKeepAlive(id) => PeerResponse::LeaseKeepAlive(node.leader_keep_alive(id).await),
            PeerRequest::LeaseTimeToLive(id) => PeerResponse::LeaseTimeToLive(node.leader_time_to_live(id).await),
            PeerRequest::Campaign => PeerResponse::Campaign(node.start_election().await),
            PeerRequest::PreVote(r) => PeerResponse::PreVote(node.raft.pre_vote(r).await),
            PeerRequest::Membership(change) => {
                let result = node.leader_change_members(change).await;
                PeerResponse::Membership(match result {
                    Err(crate::membership::MembershipError::Unavailable(e)) if node.serving_term().is_none() => {
                        tracing::debug!(error = %e, "membership change sent to a non-leader");
                        Err(ForwardError::NotLeader)
                    }
                    other => Ok(other),
                })
            }
        };
        drop(node);
        match write_frame_counted(&mut stream, &resp).await {
            Ok(sent) => {
                if let Some(to) = &sender {
                    firebreak_metrics::metrics()
                        .peer_sent_bytes
                        .with_label_values(&[to])
                        .inc_by(sent as u64);
                }
            }
            Err(_) => return,
        }
    }
}

/// Whether a member that led resumes its term after a restart: never,
/// except under the failpoint `restart-resumes-leadership` (the
/// `failpoints` feature only), which brings back the fast-restart hole of
/// issue 9 for the drill to catch (with `leader-log-write=sleep(..)` to
/// widen the window).
fn resumes_leadership() -> bool {
    #[cfg(feature = "failpoints")]
    return fail::eval("restart-resumes-leadership", |_| ()).is_some();
    #[cfg(not(feature = "failpoints"))]
    false
}

/// Takes one chunk of a snapshot sent on this connection; the last one
/// installs it. Chunks come in order: one out of place drops what was
/// received.
async fn receive_snapshot_chunk(
    node: &Node,
    receiving: &mut Option<Vec<u8>>,
    chunk: crate::transport::SnapshotChunk,
) -> Result<Option<openraft::raft::SnapshotResponse<crate::types::TypeConfig>>, String> {
    let mut bytes = match receiving.take() {
        Some(bytes) if bytes.len() as u64 == chunk.offset => bytes,
        None if chunk.offset == 0 => Vec::with_capacity(chunk.data.len()),
        other => {
            let have = other.map_or(0, |b| b.len());
            return Err(format!(
                "snapshot chunk at offset {} does not follow the {have} bytes received",
                chunk.offset
            ));
        }
    };
    bytes.extend_from_slice(&chunk.data);
    if !chunk.done {
        *receiving = Some(bytes);
        return Ok(None);
    }
    let snapshot = crate::types::Snapshot {
        meta: chunk.meta,
        snapshot: std::io::Cursor::new(bytes),
    };
    node.raft
        .install_full_snapshot(chunk.vote, snapshot)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Serves a replication stream ([`PeerRequest::StreamAppend`]): feeds the
/// AppendEntries read from the connection to Raft in order, and writes
/// back each answer, in order, as Raft gives it. Ends when the connection
/// or the stream ends.
async fn serve_stream_append<S>(stream: S, peer: std::net::SocketAddr, node: std::sync::Weak<Node>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use futures::StreamExt;
    let Some(raft) = node.upgrade().map(|n| n.raft.clone()) else {
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (requests, queue) = tokio::sync::mpsc::channel(64);
    let read = tokio::spawn(async move {
        loop {
            match read_frame_counted::<openraft::raft::AppendEntriesRequest<crate::types::TypeConfig>>(&mut reader)
                .await
            {
                Ok((req, size)) => {
                    let from = firebreak_metrics::member_label(req.vote.leader_id().node_id);
                    firebreak_metrics::metrics()
                        .peer_received_bytes
                        .with_label_values(&[&from])
                        .inc_by(size as u64);
                    if requests.send(req).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::debug!(error = %e, %peer, "replication stream closed");
                    }
                    return;
                }
            }
        }
    });
    let answers = raft.stream_append(tokio_stream::wrappers::ReceiverStream::new(queue));
    futures::pin_mut!(answers);
    while let Some(answer) = answers.next().await {
        let answer: crate::transport::StreamAppendAnswer = answer.map_err(|e| e.to_string());
        let last = !matches!(answer, Ok(Ok(_)));
        if write_frame_counted(&mut writer, &answer).await.is_err() || last {
            break;
        }
    }
    read.abort();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::{mpsc, oneshot, Semaphore};

    use super::*;

    #[tokio::test]
    async fn a_waiter_that_arrives_during_a_confirmation_gets_the_next_one() {
        let (tx, rx) = mpsc::unbounded_channel();
        // Confirmations number themselves and finish only when released.
        let started = Arc::new(AtomicU64::new(0));
        let release = Arc::new(Semaphore::new(0));
        let task = tokio::spawn({
            let (started, release) = (started.clone(), release.clone());
            confirm_in_batches(rx, move || {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                    release.acquire().await.ok()?.forget();
                    Some(n)
                }
            })
        });
        let (a, a_answer) = oneshot::channel();
        tx.send(a).unwrap();
        while started.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        // B arrives while confirmation 1 is under way.
        let (b, mut b_answer) = oneshot::channel();
        tx.send(b).unwrap();
        release.add_permits(1);
        assert_eq!(a_answer.await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            b_answer.try_recv().is_err(),
            "B must not get the confirmation that began before it"
        );
        release.add_permits(1);
        assert_eq!(
            b_answer.await.unwrap(),
            2,
            "B's answer comes from a confirmation that began after it"
        );
        drop(tx);
        task.await.unwrap();
    }
}
