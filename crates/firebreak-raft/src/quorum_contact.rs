//! When the leader last heard from a quorum: etcd's CheckQuorum, as
//! openraft 0.10 measures it (`RaftMetrics::last_quorum_acked`).
//!
//! A leader cut off from its followers keeps believing it leads until it
//! hears of a newer term, which, cut off, it never does. Raft keeps its log
//! safe regardless (nothing it proposes commits, and openraft 0.10 refuses
//! new proposals once its quorum lease runs out), but what a leader answers
//! alone would contradict the majority: lease renewals and remaining TTLs
//! (the majority elects a new leader and expires the lease on its own
//! clock), and leader-only admin requests. So a leader answers those only
//! while it has heard from a quorum within one election timeout, as etcd's
//! leader steps down after an election timeout without one.
//!
//! # Correctness
//! - openraft counts an acknowledgement from when its AppendEntries
//!   (heartbeats included) was *sent*: the follower accepted this
//!   leadership at some time after that; only answers that accept this
//!   leadership count, and the quorum is one of every voter configuration
//!   (both, during joint consensus).
//! - Why a renewal that passes this check is safe: say the old leader
//!   renews at `t` with the quorum instant `s > t - election_timeout`. A
//!   new leader needs votes from a majority, which shares a member with
//!   that quorum; that member accepted the old leadership at or after `s`,
//!   and voted for the new term only afterwards, so the new leader is
//!   promoted at `p > s`. It gives every lease its full TTL plus one
//!   election timeout from its promotion ([`crate::lessor`]), so no lease
//!   expires on the majority side before `p + ttl + election_timeout >
//!   t + ttl`, when the renewal at `t` runs out. This holds even if the
//!   followers restarted and forgot their own leader leases.

use std::time::Duration;

use openraft::alias::SerdeInstantOf;
use openraft::async_runtime::Instant as _;
use openraft::TokioInstant;

use crate::types::{NodeId, RaftMetrics, TypeConfig};

/// How long ago an instant of openraft's was.
fn age(at: &SerdeInstantOf<TypeConfig>) -> Duration {
    let at: TokioInstant = **at;
    TokioInstant::now() - at
}

/// How long ago a quorum last acknowledged this member as leader; `None`
/// if it does not lead or no quorum has acknowledged it yet.
pub fn quorum_acked_ago(m: &RaftMetrics) -> Option<Duration> {
    m.last_quorum_acked.as_ref().map(age)
}

/// How long ago `peer` last acknowledged this member as leader; `None` if
/// it does not lead or the peer has not answered this leadership yet.
pub fn peer_acked_ago(m: &RaftMetrics, peer: NodeId) -> Option<Duration> {
    m.heartbeat.as_ref()?.get(&peer)?.as_ref().map(age)
}
