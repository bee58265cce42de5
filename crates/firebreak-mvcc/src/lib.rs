//! Firebreak's multi-version key-value state, with etcd v3's semantics.
//!
//! This crate owns everything a client can observe about keys and revisions:
//! one global revision per write request, `create_revision`, `mod_revision`
//! and `version` per key, range reads at past revisions, transactions with
//! compares and nested branches, and compaction. It knows nothing of gRPC,
//! Raft or disks: the replication layer feeds it committed [`WriteCommand`]s
//! in log order and serves reads from it; the protocol layer converts wire
//! messages into the plain types of [`types`].
//!
//! Key types:
//! - [`Store`]: the state itself (a B-tree of keys, each with its history of
//!   revisions), applied to by [`Store::apply`] and read by [`Store::range`]
//!   and [`Store::txn_read`].
//! - [`WriteCommand`] / [`WriteResponse`]: what travels through the Raft log
//!   and back to the client.
//! - [`KvError`]: the errors a client sees, each mapped to etcd's message.
//! - [`validate`]: the checks etcd makes before it proposes a request.
//! - Leases ([`lease`]), watch events ([`Store::events`]), hashes of the
//!   state ([`hash`]) and alarms ([`alarm`]) are replicated state too.
//! - [`revisions`]: the store as etcd's list of revisions and back (what
//!   a backup in etcd's snapshot format holds).
//! - [`authorize`]: which permissions each request needs, checked against
//!   the auth state of `firebreak-auth` (which the replica keeps beside
//!   the store; the log's [`WriteCommand`] carries its commands and the
//!   caller of each write).

pub mod alarm;
pub mod authorize;
pub mod error;
mod events;
pub mod hash;
pub mod lease;
mod persistent;
pub mod revisions;
pub mod store;
mod txn;
pub mod types;
pub mod validate;

pub use error::KvError;
pub use hash::KvHash;
pub use lease::{Lease, MAX_LEASE_TTL};
pub use revisions::{ImportError, RevisionRecord};
pub use store::Store;
pub use types::*;

/// etcd's default limit on the encoded size of one write request (1.5 MiB).
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// etcd's default limit on the number of operations in one txn branch.
pub const MAX_TXN_OPS: usize = 128;
