//! Replication for Firebreak: one Raft group (openraft) whose state machine
//! is the MVCC store of `firebreak-mvcc`.
//!
//! - [`Node`] is what the protocol layer calls: writes go through the Raft
//!   log (forwarded to the leader from any member), linearizable reads wait
//!   for a read index confirmed by a quorum, serializable reads are local.
//! - [`log_store`] keeps the Raft log durable in append-only segment files
//!   ([`wal`]), with group commit.
//! - [`state_machine`] applies committed entries to the store and keeps
//!   durable snapshots of it; [`apply`](crate::state_machine::Replica::apply)
//!   applies each command to the store or the auth state, as its caller.
//! - [`auth`] is the auth API of a member: who a token names, logging in,
//!   managing users and roles, and the cluster-wide renewal of tokens.
//! - [`transport`] and [`network`] carry Raft and forwarded requests
//!   between the peer listeners, over mutual TLS when configured
//!   ([`peer_tls`]).

// openraft's `StorageError` is the error type of its storage seam; it is
// large, but boxing it here would only move the allocation around.
#![allow(clippy::result_large_err)]

mod apply;
pub mod auth;
pub mod codec;
pub mod durable_dir;
pub mod election;
pub mod error;
pub mod identity;
pub mod inspect;
mod leases;
pub mod lessor;
pub mod log_store;
pub mod maintenance;
pub mod membership;
pub mod network;
mod node;
pub mod peer_tls;
pub mod placement;
mod proposer;
pub mod quorum_contact;
pub mod report;
pub mod state_machine;
pub mod transport;
pub mod types;
mod wal;

pub use error::{NodeError, Unavailable};
pub use leases::LeaseTtl;
pub use node::{Header, MemberInfo, Node, NodeStatus};
pub use types::{Member, NodeId};
