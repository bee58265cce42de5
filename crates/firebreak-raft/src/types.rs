//! The openraft type configuration: what the log carries and what applying
//! it returns.

use std::io::Cursor;

use firebreak_config::topology::Domains;
use firebreak_mvcc::{KvError, WriteCommand, WriteResponse};
use serde::{Deserialize, Serialize};

/// A member as the Raft membership records it; the source of
/// `Cluster.MemberList`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// `host:port` of its peer listener.
    pub peer_addr: String,
    pub peer_url: String,
    pub client_url: String,
    pub domains: Domains,
}

/// What applying one log entry produced. Entries that carry no command
/// (blank or membership entries) produce `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Applied(pub Option<Result<WriteResponse, KvError>>);

openraft::declare_raft_types!(
    /// Firebreak's Raft types.
    pub TypeConfig:
        D = WriteCommand,
        R = Applied,
        NodeId = u64,
        Node = Member,
);

pub type NodeId = u64;
/// A leader as log ids name it: its term and its node id.
pub type LeaderId = openraft::alias::LeaderIdOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot as openraft hands it around: its metadata and its bytes.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// A snapshot's bytes (encoded by [`crate::state_machine`]).
pub type SnapshotData = Cursor<Vec<u8>>;
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;

/// The log id of entry `index` written by `node_id` as leader of `term`.
pub fn log_id(term: u64, node_id: NodeId, index: u64) -> LogId {
    openraft::LogId::new(LeaderId { term, node_id }, index)
}
