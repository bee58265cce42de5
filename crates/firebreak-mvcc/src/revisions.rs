//! The store as a list of revisions, and a store built from one: what a
//! backup in etcd's format holds (etcd's `key` bucket has one entry per
//! write of a key, named by its revision).
//!
//! # Correctness
//! - [`Store::revision_records`] lists every record of every key once, in
//!   etcd's order: by main revision (the record's `mod_revision`), then by
//!   sub-revision, the position of the write within its revision. The
//!   sub-revisions of revisions not yet compacted are the order of the
//!   writes (the source of watch events); older ones are numbered in key
//!   order, since their order is forgotten and only their number matters.
//! - [`Store::from_revision_records`] gives the store whose records are
//!   exactly those (then compacted at the given revision by the same rule as
//!   [`Store::compact`]), whose revision is the last one written (or the
//!   compaction revision, if later), with each lease holding the keys whose
//!   newest record is live and names it. It refuses records that could not
//!   have been written (a revision below 1, a sub-revision used twice, a
//!   live record of version 0) rather than build a store that breaks the
//!   invariants of [`crate::store`].

use std::collections::HashMap;

use bytes::Bytes;

use crate::lease::Lease;
use crate::store::{KeyHistory, Record, Store, RECORD_OVERHEAD};
use crate::types::AlarmMember;

/// One write of one key, as etcd's `key` bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionRecord {
    pub key: Bytes,
    /// The revision of the write: the record's `mod_revision`.
    pub main: i64,
    /// Its position among the writes of that revision, from 0.
    pub sub: i64,
    /// A delete: the other fields are empty.
    pub tombstone: bool,
    pub create_revision: i64,
    pub version: i64,
    pub value: Bytes,
    pub lease: i64,
}

/// Why a list of revisions cannot be a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("revision {main}_{sub} of key {key:?} is not a revision a write can have")]
    BadRevision { key: String, main: i64, sub: i64 },
    #[error("revision {main}_{sub} is written twice")]
    DuplicateRevision { main: i64, sub: i64 },
    #[error("the live record of key {key:?} at revision {main} has version {version} (a live record's is 1 or more)")]
    BadVersion { key: String, main: i64, version: i64 },
    #[error("lease id {0} is not a lease id")]
    BadLease(i64),
    #[error("lease {0} is listed twice")]
    DuplicateLease(i64),
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl Store {
    /// Every record of every key, ordered by (main, sub) revision.
    pub fn revision_records(&self) -> Vec<RevisionRecord> {
        let record = |key: &Bytes, r: &Record| RevisionRecord {
            key: key.clone(),
            main: r.mod_revision,
            sub: 0,
            tombstone: r.version == 0,
            create_revision: r.create_revision,
            version: r.version,
            value: r.value.clone(),
            lease: r.lease,
        };
        let total: usize = self.keys.values().map(|h| h.records.len()).sum();
        let mut out: Vec<RevisionRecord> = Vec::with_capacity(total);
        // Below the revision log (compacted revisions): at most one record
        // per key, numbered in key order.
        let first_logged = self.revision_log.keys().next().copied().unwrap_or(i64::MAX);
        for (key, history) in &self.keys {
            for r in history.records.iter().take_while(|r| r.mod_revision < first_logged) {
                out.push(record(key, r));
            }
        }
        out.sort_by_key(|r| r.main);
        // The revision log: the writes of each revision in order; a key
        // written twice in one revision has two records there, in order.
        for (rev, keys) in &self.revision_log {
            let mut seen: HashMap<&[u8], usize> = HashMap::new();
            for key in keys {
                let nth = if keys.len() > 1 {
                    let n = seen.entry(&key[..]).or_insert(0);
                    *n += 1;
                    *n - 1
                } else {
                    0
                };
                let Some((key, history)) = self.keys.get_key_value(&key[..]) else {
                    continue;
                };
                let from = history.records.partition_point(|r| r.mod_revision < *rev);
                // None: a tombstone that the compaction at this revision
                // removed.
                if let Some(r) = history.records[from..]
                    .iter()
                    .take_while(|r| r.mod_revision == *rev)
                    .nth(nth)
                {
                    out.push(record(key, r));
                }
            }
        }
        if out.len() != total {
            // The revision log does not account for every record (it always
            // does); number them all in key order rather than lose any.
            out = self
                .keys
                .iter()
                .flat_map(|(k, h)| h.records.iter().map(move |r| record(k, r)))
                .collect();
            out.sort_by_key(|r| r.main);
        }
        let mut prev: Option<(i64, i64)> = None;
        for r in &mut out {
            r.sub = match prev {
                Some((main, sub)) if main == r.main => sub + 1,
                _ => 0,
            };
            prev = Some((r.main, r.sub));
        }
        out
    }

    /// The store that holds `records` (in any order), the leases
    /// `(id, granted TTL)` and the raised `alarms`, compacted at
    /// `compact_revision` (none if below 1).
    pub fn from_revision_records(
        mut records: Vec<RevisionRecord>,
        leases: impl IntoIterator<Item = (i64, i64)>,
        alarms: impl IntoIterator<Item = AlarmMember>,
        compact_revision: i64,
    ) -> Result<Store, ImportError> {
        records.sort_by_key(|r| (r.main, r.sub));
        let mut store = Store::default();
        for pair in records.windows(2) {
            if (pair[0].main, pair[0].sub) == (pair[1].main, pair[1].sub) {
                return Err(ImportError::DuplicateRevision {
                    main: pair[0].main,
                    sub: pair[0].sub,
                });
            }
        }
        for r in records {
            if r.main < 1 || r.sub < 0 {
                return Err(ImportError::BadRevision {
                    key: show(&r.key),
                    main: r.main,
                    sub: r.sub,
                });
            }
            let record = if r.tombstone {
                Record {
                    mod_revision: r.main,
                    create_revision: 0,
                    version: 0,
                    value: Bytes::new(),
                    lease: 0,
                }
            } else {
                if r.version < 1 {
                    return Err(ImportError::BadVersion {
                        key: show(&r.key),
                        main: r.main,
                        version: r.version,
                    });
                }
                Record {
                    mod_revision: r.main,
                    create_revision: r.create_revision,
                    version: r.version,
                    value: r.value,
                    lease: r.lease,
                }
            };
            store.current = store.current.max(r.main);
            store.revision_log.entry(r.main).or_default().push(r.key.clone());
            store
                .keys
                .entry(r.key)
                .or_insert_with(|| KeyHistory {
                    records: Vec::with_capacity(1),
                })
                .records
                .push(record);
        }
        let mut granted: imbl::OrdMap<i64, Lease> = imbl::OrdMap::new();
        for (id, ttl) in leases {
            if id == 0 {
                return Err(ImportError::BadLease(id));
            }
            if granted
                .insert(
                    id,
                    Lease {
                        ttl,
                        keys: Default::default(),
                    },
                )
                .is_some()
            {
                return Err(ImportError::DuplicateLease(id));
            }
        }
        for (key, history) in &store.keys {
            if let Some(lease) = history.latest().and_then(|r| granted.get_mut(&r.lease)) {
                lease.keys.insert(key.clone());
            }
        }
        store.leases = granted;
        store.alarms = alarms.into_iter().map(|a| (a.member_id, a.alarm)).collect();
        store.size = store
            .keys
            .iter()
            .flat_map(|(k, h)| h.records.iter().map(move |r| (k, r)))
            .map(|(k, r)| k.len() as u64 + r.value.len() as u64 + RECORD_OVERHEAD)
            .sum();
        if compact_revision >= 1 {
            store.current = store.current.max(compact_revision);
            store
                .compact(compact_revision)
                .expect("a first compaction at or below the current revision");
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::*;

    fn rec(key: &str, main: i64, sub: i64, version: i64) -> RevisionRecord {
        RevisionRecord {
            key: Bytes::copy_from_slice(key.as_bytes()),
            main,
            sub,
            tombstone: false,
            create_revision: main,
            version,
            value: Bytes::from_static(b"v"),
            lease: 0,
        }
    }

    #[test]
    fn sub_revisions_follow_the_order_of_the_writes() {
        let mut store = Store::new();
        let put = |k: &'static str| {
            RequestOp::Put(PutRequest {
                key: Bytes::from_static(k.as_bytes()),
                value: Bytes::from_static(b"1"),
                ..Default::default()
            })
        };
        store
            .apply(&WriteCommand::Txn(TxnRequest {
                compare: Vec::new(),
                success: vec![put("b"), put("a")],
                failure: Vec::new(),
            }))
            .unwrap();
        let order: Vec<(Bytes, i64, i64)> = store
            .revision_records()
            .into_iter()
            .map(|r| (r.key, r.main, r.sub))
            .collect();
        assert_eq!(order, [(Bytes::from("b"), 2, 0), (Bytes::from("a"), 2, 1)]);
        let back = Store::from_revision_records(store.revision_records(), [], [], -1).unwrap();
        assert_eq!(back, store);
    }

    #[test]
    fn records_no_write_could_make_are_refused() {
        let none: [(i64, i64); 0] = [];
        let build = |records: Vec<RevisionRecord>| Store::from_revision_records(records, none, [], -1);
        assert!(matches!(
            build(vec![rec("a", 2, 0, 1), rec("b", 2, 0, 1)]),
            Err(ImportError::DuplicateRevision { main: 2, sub: 0 })
        ));
        assert!(matches!(
            build(vec![rec("a", 2, 0, 0)]),
            Err(ImportError::BadVersion { .. })
        ));
        assert!(matches!(
            build(vec![rec("a", 0, 0, 1)]),
            Err(ImportError::BadRevision { .. })
        ));
        assert!(matches!(
            Store::from_revision_records(vec![], [(0, 5)], [], -1),
            Err(ImportError::BadLease(0))
        ));
        // A compaction past the last write still sets the revision.
        let s = Store::from_revision_records(vec![rec("a", 2, 0, 1)], none, [], 9).unwrap();
        assert_eq!((s.current_revision(), s.compact_revision()), (9, 9));
    }
}
