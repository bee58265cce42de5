//! Plain request and response types for the key-value API.
//!
//! They mirror the fields of etcd's `etcdserverpb` messages that carry
//! meaning, without any wire encoding. Response revisions are the
//! `header.revision` etcd would send; the protocol layer adds the rest of
//! the header (cluster, member, term).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One version of one key, as returned to clients.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Bytes,
    /// Revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Number of puts since the key was (re)created; 1 on creation.
    pub version: i64,
    pub value: Bytes,
    /// Lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// Order of a range result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

/// Field a range result is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// A read of one key or a range of keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RangeRequest {
    pub key: Bytes,
    /// Empty: only `key`. `"\0"`: every key from `key` on. Otherwise the
    /// exclusive end of the range.
    pub range_end: Bytes,
    /// At most this many keys; 0 for no limit.
    pub limit: i64,
    /// Read at this revision; 0 or less for the current one.
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    /// Served from the local replica without a quorum check.
    pub serializable: bool,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RangeResponse {
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    /// More keys matched than `limit` allowed to return.
    pub more: bool,
    /// Number of keys in the range at the read revision.
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: Bytes,
    pub value: Bytes,
    pub lease: i64,
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PutResponse {
    pub revision: i64,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    pub key: Bytes,
    /// Same meaning as [`RangeRequest::range_end`].
    pub range_end: Bytes,
    pub prev_kv: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    pub revision: i64,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

/// How a compare's left side (the key's field) relates to its operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// The field a compare looks at, with the operand to compare it against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Bytes),
    Lease(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Bytes,
    /// Compare every key of this range (same form as a range read).
    pub range_end: Bytes,
    pub result: CompareResult,
    pub target: CompareTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    /// A request op with no request in it; refused by validation.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

impl TxnRequest {
    /// True when neither branch holds anything but range reads; such a txn
    /// needs no log entry (etcd serves it as a read).
    pub fn is_read_only(&self) -> bool {
        self.success
            .iter()
            .chain(&self.failure)
            .all(|op| matches!(op, RequestOp::Range(_)))
    }

    /// True when every read in it is serializable (and it is read-only).
    pub fn is_serializable(&self) -> bool {
        self.success
            .iter()
            .chain(&self.failure)
            .all(|op| matches!(op, RequestOp::Range(r) if r.serializable))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Revision after the txn. Nested txn responses carry 0, as etcd's do.
    pub revision: i64,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CompactRequest {
    pub revision: i64,
    /// Answer only once the compaction is done on the member that answers
    /// (compaction is complete wherever it is applied; a member that
    /// forwarded the request waits until it has applied it).
    pub physical: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CompactResponse {
    pub revision: i64,
}

/// A request that changes state and so travels through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCommand {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactRequest),
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    Alarm(AlarmRequest),
    /// Several independent requests in one log entry, applied in order as
    /// if they had been proposed one after the other (each gets its own
    /// revision and its own answer). The replication layer batches
    /// concurrent writes this way.
    Batch(Vec<WriteCommand>),
    /// `cmd`, tagged by the member that proposed it. The store applies
    /// `cmd` and nothing else; the tag is the replication layer's, which
    /// uses it to tell whether its own log ever held the entry (and so
    /// whether a refused proposal is safe to propose again).
    Tagged {
        tag: u64,
        cmd: Box<WriteCommand>,
    },
    /// A change to the auth state (users, roles, tokens), applied by the
    /// replica beside the store.
    Auth(firebreak_auth::AuthCommand),
    /// `cmd` made by a client authenticated as `user` with credentials of
    /// auth revision `auth_revision`: the replica checks it against the
    /// auth state when it applies it, as etcd does. A command without this
    /// wrapper (and without [`WriteCommand::AsMember`]) was made without
    /// credentials.
    AsUser {
        user: String,
        auth_revision: u64,
        cmd: Box<WriteCommand>,
    },
    /// `cmd` made by the cluster itself (a lease that expired): never
    /// checked, as etcd makes these with root's credentials.
    AsMember(Box<WriteCommand>),
}

/// A short name of the command, for logs (keys and values stay out of
/// them).
impl std::fmt::Display for WriteCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteCommand::Put(_) => f.write_str("put"),
            WriteCommand::DeleteRange(_) => f.write_str("delete-range"),
            WriteCommand::Txn(_) => f.write_str("txn"),
            WriteCommand::Compact(c) => write!(f, "compact({})", c.revision),
            WriteCommand::LeaseGrant(g) => write!(f, "lease-grant({:x})", g.id),
            WriteCommand::LeaseRevoke(r) => write!(f, "lease-revoke({:x})", r.id),
            WriteCommand::Alarm(_) => f.write_str("alarm"),
            WriteCommand::Batch(cmds) => write!(f, "batch({})", cmds.len()),
            WriteCommand::Tagged { tag, cmd } => write!(f, "{cmd}#{tag:x}"),
            WriteCommand::Auth(_) => f.write_str("auth"),
            WriteCommand::AsUser { user, cmd, .. } => write!(f, "{cmd} as {user}"),
            WriteCommand::AsMember(cmd) => write!(f, "{cmd} as member"),
        }
    }
}

impl WriteCommand {
    /// Approximate encoded size, for bounding batches.
    pub fn approx_bytes(&self) -> usize {
        fn op_bytes(op: &RequestOp) -> usize {
            match op {
                RequestOp::Range(r) => r.key.len() + r.range_end.len() + 32,
                RequestOp::Put(p) => p.key.len() + p.value.len() + 32,
                RequestOp::DeleteRange(d) => d.key.len() + d.range_end.len() + 16,
                RequestOp::Txn(t) => txn_bytes(t),
                RequestOp::Empty => 4,
            }
        }
        fn txn_bytes(t: &TxnRequest) -> usize {
            let compares: usize = t
                .compare
                .iter()
                .map(|c| {
                    c.key.len()
                        + c.range_end.len()
                        + match &c.target {
                            CompareTarget::Value(v) => v.len(),
                            _ => 8,
                        }
                        + 8
                })
                .sum();
            compares + t.success.iter().chain(&t.failure).map(op_bytes).sum::<usize>() + 16
        }
        match self {
            WriteCommand::Put(p) => p.key.len() + p.value.len() + 32,
            WriteCommand::DeleteRange(d) => d.key.len() + d.range_end.len() + 16,
            WriteCommand::Txn(t) => txn_bytes(t),
            WriteCommand::Batch(cmds) => cmds.iter().map(WriteCommand::approx_bytes).sum(),
            WriteCommand::Tagged { cmd, .. } => cmd.approx_bytes() + 8,
            WriteCommand::AsUser { user, cmd, .. } => cmd.approx_bytes() + user.len() + 16,
            WriteCommand::AsMember(cmd) => cmd.approx_bytes() + 4,
            _ => 32,
        }
    }
}

/// The answer to a [`WriteCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    /// The answers of a [`WriteCommand::Batch`], in order.
    Batch(Vec<Result<WriteResponse, crate::KvError>>),
    /// The answer to a [`WriteCommand::Auth`].
    Auth(firebreak_auth::AuthApplied),
}

/// An alarm a member can raise, as etcd numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlarmType {
    /// The store outgrew its space quota: writes that add data are refused.
    NoSpace,
    /// A replica's data was found corrupt.
    Corrupt,
}

/// What an alarm request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmAction {
    Activate,
    Deactivate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRequest {
    pub action: AlarmAction,
    pub member_id: u64,
    pub alarm: AlarmType,
}

/// A raised alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlarmMember {
    pub member_id: u64,
    pub alarm: AlarmType,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlarmResponse {
    /// The alarms the request changed (as etcd answers).
    pub alarms: Vec<AlarmMember>,
}

/// Grants a lease. The id is chosen before proposing, so that every
/// replica grants the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantRequest {
    pub id: i64,
    /// Granted time to live in seconds (already raised to the minimum).
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    pub revision: i64,
    pub id: i64,
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeRequest {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeResponse {
    pub revision: i64,
}

/// What happened to a key in a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key, as a watcher receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change; for a delete only `key` and
    /// `mod_revision` are set, as in etcd.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}
