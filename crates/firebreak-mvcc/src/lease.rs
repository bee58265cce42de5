//! Leases as replicated state: which exist, with which TTL, and which keys
//! each holds.
//!
//! Time is not part of the replicated state: when a lease expires is
//! decided by the leader, which then proposes a revoke. Every replica
//! therefore removes a lease's keys at the same revision.
//!
//! # Correctness
//! - A key is attached to at most one lease: the lease of its newest live
//!   record. Puts and deletes keep the attachment in step
//!   ([`Store::put_record`], [`Store::delete_records`]).
//! - Revoking a lease deletes all its keys in one write revision (none if
//!   it holds no key), as etcd does.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::KvError;
use crate::store::Store;
use crate::types::*;

/// etcd's largest lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A lease as every replica knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lease {
    /// Granted time to live, in seconds.
    pub ttl: i64,
    pub keys: BTreeSet<Bytes>,
}

impl Store {
    pub(crate) fn lease_grant(&mut self, req: &LeaseGrantRequest) -> Result<LeaseGrantResponse, KvError> {
        if req.ttl > MAX_LEASE_TTL {
            return Err(KvError::LeaseTtlTooLarge);
        }
        if req.id == 0 || self.leases.contains_key(&req.id) {
            return Err(KvError::LeaseExists);
        }
        self.leases.insert(
            req.id,
            Lease {
                ttl: req.ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(LeaseGrantResponse {
            revision: self.current,
            id: req.id,
            ttl: req.ttl,
        })
    }

    pub(crate) fn lease_revoke(&mut self, req: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse, KvError> {
        let lease = self.leases.get(&req.id).ok_or(KvError::LeaseNotFound)?;
        let keys: Vec<Bytes> = lease.keys.iter().cloned().collect();
        let rev = self.current + 1;
        let mut changed = false;
        for key in keys {
            changed |= !self.delete_records(&key, &[], rev).is_empty();
        }
        if changed {
            self.current = rev;
        }
        self.leases.remove(&req.id);
        Ok(LeaseRevokeResponse { revision: self.current })
    }

    /// A lease's granted TTL and keys, if it exists.
    pub fn lease(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Every lease id, ascending.
    pub fn lease_ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }
}
