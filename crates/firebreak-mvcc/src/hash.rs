//! Hashes of the key-value state, for comparing replicas (etcd's Hash and
//! HashKV).
//!
//! # Correctness
//! The hash covers, in key order, every record at or below the requested
//! revision that compaction keeps, so two replicas that applied the same
//! log agree on it whatever their snapshot history.

use crate::error::KvError;
use crate::store::Store;

/// The answer to a HashKV request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    /// The revision hashed up to.
    pub revision: i64,
    pub compact_revision: i64,
}

impl Store {
    /// The hash of every kept record up to `revision` (0: the current one).
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, KvError> {
        let rev = self.resolve_read_revision(revision, self.current)?;
        let mut h = crc32fast::Hasher::new();
        for (key, history) in &self.keys {
            for r in history.records.iter().take_while(|r| r.mod_revision <= rev) {
                h.update(key);
                h.update(&r.mod_revision.to_be_bytes());
                h.update(&r.create_revision.to_be_bytes());
                h.update(&r.version.to_be_bytes());
                h.update(&r.lease.to_be_bytes());
                h.update(&r.value);
            }
        }
        Ok(KvHash {
            hash: h.finalize(),
            revision: rev,
            compact_revision: self.compacted,
        })
    }

    /// The hash of the whole state, including leases and alarms.
    pub fn hash_all(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.hash_kv(0).map(|k| k.hash).unwrap_or(0).to_be_bytes());
        h.update(&self.current.to_be_bytes());
        h.update(&self.compacted.to_be_bytes());
        for (id, lease) in &self.leases {
            h.update(&id.to_be_bytes());
            h.update(&lease.ttl.to_be_bytes());
            for k in &lease.keys {
                h.update(k);
            }
        }
        h.finalize()
    }
}
