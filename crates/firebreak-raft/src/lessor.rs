//! Lease expiry, decided by the leader alone.
//!
//! Every member keeps the replicated leases (in the store); only the
//! leader keeps their deadlines, in memory. A keep-alive, wherever it
//! arrives, is forwarded to the leader and moves the deadline. When a
//! deadline passes, the leader proposes a revoke through the log, so every
//! replica removes the lease's keys at the same revision.
//!
//! # Correctness
//! - A member that becomes leader (or sees the term change, or gets back
//!   in touch with a quorum after losing it) forgets every deadline and
//!   grants each lease its full TTL plus one election timeout from that
//!   moment, as etcd does on promotion: no lease expires because
//!   keep-alives had nowhere to go during a failover. The election timeout
//!   of grace is also what keeps a renewal granted by a deposed leader
//!   from outliving the lease on the new leader
//!   ([`crate::quorum_contact`]).
//! - Only the leader of the current term proposes revokes; a deposed
//!   leader's revoke proposal is refused by Raft.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Deadlines of the leases, valid while `term` is the leader's term.
#[derive(Default)]
pub struct Lessor {
    state: Mutex<LessorState>,
}

#[derive(Default)]
struct LessorState {
    /// The term these deadlines belong to; `None` when not leader.
    term: Option<u64>,
    deadlines: HashMap<i64, Instant>,
}

impl Lessor {
    /// Brings the deadlines in line with the replicated leases (id, TTL
    /// seconds) for leadership in `term` (`None`: not the leader), and
    /// returns the leases whose deadline has passed.
    pub fn expired(&self, term: Option<u64>, leases: &[(i64, i64)], grace: Duration) -> Vec<i64> {
        let mut st = self.state.lock().expect("lessor lock");
        let now = Instant::now();
        if st.term != term {
            st.term = term;
            st.deadlines.clear();
        }
        if term.is_none() {
            return Vec::new();
        }
        let live: std::collections::HashSet<i64> = leases.iter().map(|(id, _)| *id).collect();
        st.deadlines.retain(|id, _| live.contains(id));
        let mut expired = Vec::new();
        for (id, ttl) in leases {
            let deadline = *st
                .deadlines
                .entry(*id)
                .or_insert_with(|| now + Duration::from_secs(*ttl as u64) + grace);
            if deadline <= now {
                expired.push(*id);
            }
        }
        expired
    }

    /// Renews a lease for `ttl` seconds from now. Only meaningful on the
    /// leader.
    pub fn renew(&self, id: i64, ttl: i64) {
        let mut st = self.state.lock().expect("lessor lock");
        if st.term.is_some() {
            st.deadlines
                .insert(id, Instant::now() + Duration::from_secs(ttl as u64));
        }
    }

    /// Seconds left before the lease expires, if this member is the leader
    /// and tracks it.
    pub fn remaining(&self, id: i64) -> Option<i64> {
        let st = self.state.lock().expect("lessor lock");
        st.term?;
        let deadline = st.deadlines.get(&id)?;
        let left = deadline.saturating_duration_since(Instant::now());
        // Whole seconds, cut down, as etcd reports them.
        Some(left.as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_term_restarts_every_deadline() {
        let l = Lessor::default();
        assert!(l.expired(Some(1), &[(7, 0)], Duration::ZERO).contains(&7));
        // Not leader: nothing expires.
        assert!(l.expired(None, &[(7, 0)], Duration::ZERO).is_empty());
        // A new term grants the full TTL again: whole seconds left, cut
        // down as etcd reports them, so a moment later 59.
        assert!(l.expired(Some(2), &[(7, 60)], Duration::ZERO).is_empty());
        let left = l.remaining(7).expect("the leader tracks the lease");
        assert!((59..=60).contains(&left), "{left}");
    }
}
