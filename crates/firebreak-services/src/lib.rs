//! etcd's services that are clients of the replicated store, kept apart
//! from replication (`firebreak-raft`) as TiKV keeps its server apart from
//! its raftstore: they see a member only through its key-value API
//! ([`firebreak_raft::Node`]), never its log or its Raft state.
//!
//! - [`watch`]: watch sessions over a member's replica (etcd's Watch).
//! - [`concurrency`]: locks and elections over the key-value API (etcd's
//!   `v3lock` and `v3election`).

pub mod concurrency;
pub mod watch;
