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
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Raft = openraft::Raft<TypeConfig>;
