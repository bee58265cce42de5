//! The multi-version store: every key with its history of revisions.
//!
//! # Correctness
//! - `current` is the revision of the last write request that changed
//!   anything; it starts at 1 (an empty store) and grows by exactly one per
//!   such request, never for a request that changed nothing.
//! - Each key's records are ordered by `mod_revision`; a record with
//!   `version == 0` is a tombstone (the key was deleted at that revision).
//!   The state of a key at revision `r` is its last record with
//!   `mod_revision <= r`, absent if there is none or it is a tombstone.
//! - After compaction at `c`, every key keeps its last record at or below
//!   `c` unless that record is a tombstone, and every record above it. Reads
//!   below `c` are refused, so nothing a permitted read needs is removed.
//! - The store is deterministic: the same commands applied in the same order
//!   give the same state on every replica.

use std::collections::BTreeSet;
use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::error::KvError;
use crate::lease::Lease;
use crate::types::*;

/// One write to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) mod_revision: i64,
    pub(crate) create_revision: i64,
    /// 0 marks a tombstone.
    pub(crate) version: i64,
    pub(crate) value: Bytes,
    pub(crate) lease: i64,
}

impl Record {
    fn is_tombstone(&self) -> bool {
        self.version == 0
    }
}

/// Records of one key, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyHistory {
    pub(crate) records: Vec<Record>,
}

impl KeyHistory {
    /// The live record at `rev`, if the key exists then.
    pub(crate) fn at(&self, rev: i64) -> Option<&Record> {
        let idx = self.records.partition_point(|r| r.mod_revision <= rev);
        let record = self.records.get(idx.checked_sub(1)?)?;
        (!record.is_tombstone()).then_some(record)
    }

    /// The newest live record.
    pub(crate) fn latest(&self) -> Option<&Record> {
        self.records.last().filter(|r| !r.is_tombstone())
    }
}

/// The key-value state of one replica.
///
/// Its maps are persistent (copy-on-write B-trees): a clone costs O(1) and
/// shares every node until one side changes it, so a snapshot is taken
/// from a clone made in an instant under the replica's lock and encoded
/// while writes go on. They serialize exactly as `BTreeMap`s do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    #[serde(with = "crate::persistent")]
    pub(crate) keys: OrdMap<Bytes, KeyHistory>,
    /// Revision of the last change.
    pub(crate) current: i64,
    /// Revision of the last compaction; -1 before the first one (as etcd).
    pub(crate) compacted: i64,
    /// Leases that exist, with the keys attached to each; puts naming any
    /// other lease are refused.
    #[serde(with = "crate::persistent")]
    pub(crate) leases: OrdMap<i64, Lease>,
    /// The keys written at each revision not yet compacted, in the order
    /// of their writes (etcd's sub-revisions): the source of watch events.
    #[serde(with = "crate::persistent")]
    pub(crate) revision_log: OrdMap<i64, Vec<Bytes>>,
    /// Raised alarms: (member id, alarm type).
    pub(crate) alarms: BTreeSet<(u64, AlarmType)>,
    /// Approximate bytes held by all records, kept up to date on every
    /// write so that the space quota costs nothing to check.
    pub(crate) size: u64,
}

/// Bookkeeping bytes counted per record besides its key and value.
pub(crate) const RECORD_OVERHEAD: u64 = 48;

impl Default for Store {
    fn default() -> Self {
        Store {
            keys: OrdMap::new(),
            current: 1,
            compacted: -1,
            leases: OrdMap::new(),
            revision_log: OrdMap::new(),
            alarms: BTreeSet::new(),
            size: 0,
        }
    }
}

pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The keys a range request covers, as B-tree bounds; `None` for an empty
/// range.
pub(crate) fn key_bounds<'a>(key: &'a [u8], range_end: &'a [u8]) -> Option<KeyBounds<'a>> {
    if range_end.is_empty() {
        return Some((Bound::Included(key), Bound::Included(key)));
    }
    if range_end == b"\0" {
        return Some((Bound::Included(key), Bound::Unbounded));
    }
    if key >= range_end {
        return None;
    }
    Some((Bound::Included(key), Bound::Excluded(range_end)))
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// Revision of the last change.
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    /// Revision of the last compaction, or -1 before any.
    pub fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// Whether a lease exists.
    pub fn lease_exists(&self, lease: i64) -> bool {
        self.leases.contains_key(&lease)
    }

    /// Live key-values in a range at `rev`, in key order.
    pub(crate) fn live_at<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
        rev: i64,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Record)> + 'a {
        key_bounds(key, range_end)
            .into_iter()
            .flat_map(move |bounds| self.keys.range::<_, [u8]>(bounds))
            .filter_map(move |(k, h)| h.at(rev).map(|r| (k, r)))
    }

    /// Checks a read revision against the store's window and resolves 0.
    pub(crate) fn resolve_read_revision(&self, requested: i64, current: i64) -> Result<i64, KvError> {
        if requested > current {
            return Err(KvError::FutureRevision);
        }
        let rev = if requested <= 0 { current } else { requested };
        if rev < self.compacted {
            return Err(KvError::Compacted);
        }
        Ok(rev)
    }

    /// A range read against the current state.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.range_at(req, self.current)
    }

    /// A range read as seen by a transaction whose view is at `current`.
    pub(crate) fn range_at(&self, req: &RangeRequest, current: i64) -> Result<RangeResponse, KvError> {
        let rev = self.resolve_read_revision(req.revision, current)?;
        let filtered = req.sort_order != SortOrder::None
            || req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        // Fetch one extra key to learn whether there are more.
        let fetch = if req.limit > 0 && !filtered {
            (req.limit as usize).saturating_add(1)
        } else {
            usize::MAX
        };

        let mut count = 0i64;
        let mut kvs = Vec::new();
        for (key, record) in self.live_at(&req.key, &req.range_end, rev) {
            count += 1;
            if !req.count_only && kvs.len() < fetch {
                kvs.push(to_kv(key, record));
            }
        }

        kvs.retain(|kv: &KeyValue| {
            !(req.max_mod_revision != 0 && kv.mod_revision > req.max_mod_revision
                || req.min_mod_revision != 0 && kv.mod_revision < req.min_mod_revision
                || req.max_create_revision != 0 && kv.create_revision > req.max_create_revision
                || req.min_create_revision != 0 && kv.create_revision < req.min_create_revision)
        });

        sort_kvs(&mut kvs, req.sort_order, req.sort_target);

        let mut more = false;
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        Ok(RangeResponse {
            revision: current,
            kvs,
            more,
            count,
        })
    }

    /// Applies one committed write command. An error leaves the store as it
    /// was.
    pub fn apply(&mut self, cmd: &WriteCommand) -> Result<WriteResponse, KvError> {
        match cmd {
            WriteCommand::Put(req) => {
                if self.no_space() {
                    return Err(KvError::NoSpace);
                }
                // Outside a txn etcd looks up the lease before the key.
                if req.lease != 0 && !self.lease_exists(req.lease) {
                    return Err(KvError::LeaseNotFound);
                }
                let req = RequestOp::Put(req.clone());
                self.apply_single(req).map(|resp| match resp {
                    ResponseOp::Put(r) => WriteResponse::Put(r),
                    _ => unreachable!("a put answers with a put"),
                })
            }
            WriteCommand::DeleteRange(req) => {
                let req = RequestOp::DeleteRange(req.clone());
                self.apply_single(req).map(|resp| match resp {
                    ResponseOp::DeleteRange(r) => WriteResponse::DeleteRange(r),
                    _ => unreachable!("a delete answers with a delete"),
                })
            }
            WriteCommand::Txn(req) => {
                if self.no_space() && !req.success.iter().chain(&req.failure).all(frees_space) {
                    return Err(KvError::NoSpace);
                }
                self.txn(req).map(WriteResponse::Txn)
            }
            WriteCommand::Compact(req) => self.compact(req.revision).map(WriteResponse::Compact),
            WriteCommand::LeaseGrant(req) => {
                if self.no_space() {
                    return Err(KvError::NoSpace);
                }
                self.lease_grant(req).map(WriteResponse::LeaseGrant)
            }
            WriteCommand::LeaseRevoke(req) => self.lease_revoke(req).map(WriteResponse::LeaseRevoke),
            WriteCommand::Alarm(req) => Ok(WriteResponse::Alarm(self.alarm(req))),
            WriteCommand::Batch(cmds) => Ok(WriteResponse::Batch(cmds.iter().map(|c| self.apply(c)).collect())),
            WriteCommand::Tagged { cmd, .. } => self.apply(cmd),
            // The replica (`firebreak-raft`) applies these with the auth
            // state beside the store and checks the callers; the store
            // alone has no auth state, so it runs what they wrap unchecked
            // and refuses auth commands.
            WriteCommand::AsUser { cmd, .. } | WriteCommand::AsMember(cmd) => self.apply(cmd),
            WriteCommand::Auth(_) => Err(KvError::Auth(firebreak_auth::AuthError::InvalidAuthMgmt)),
        }
    }

    /// A put or delete is a txn of one operation with no compares; running
    /// it that way keeps one code path for revision accounting.
    fn apply_single(&mut self, op: RequestOp) -> Result<ResponseOp, KvError> {
        let txn = TxnRequest {
            compare: Vec::new(),
            success: vec![op],
            failure: Vec::new(),
        };
        let mut resp = self.txn(&txn)?;
        let mut only = resp.responses.pop().expect("one op gives one response");
        match &mut only {
            ResponseOp::Put(r) => r.revision = resp.revision,
            ResponseOp::DeleteRange(r) => r.revision = resp.revision,
            _ => {}
        }
        Ok(only)
    }

    /// Compacts history at `rev`.
    pub fn compact(&mut self, rev: i64) -> Result<CompactResponse, KvError> {
        if rev <= self.compacted {
            return Err(KvError::Compacted);
        }
        if rev > self.current {
            return Err(KvError::FutureRevision);
        }
        // Only keys with something to drop are touched (and copied, if a
        // snapshot still shares them).
        let first_kept = |history: &KeyHistory| {
            let idx = history.records.partition_point(|r| r.mod_revision <= rev);
            match idx.checked_sub(1) {
                Some(last) if history.records[last].is_tombstone() => idx,
                Some(last) => last,
                None => 0,
            }
        };
        let touched: Vec<Bytes> = self
            .keys
            .iter()
            .filter(|(_, history)| first_kept(history) > 0)
            .map(|(k, _)| k.clone())
            .collect();
        for key in touched {
            let Some(history) = self.keys.get_mut(&key) else {
                continue;
            };
            let keep_from = first_kept(history);
            history.records.drain(..keep_from);
            if history.records.is_empty() {
                self.keys.remove(&key);
            }
        }
        self.size = self
            .keys
            .iter()
            .map(|(k, h)| {
                h.records
                    .iter()
                    .map(|r| k.len() as u64 + r.value.len() as u64 + RECORD_OVERHEAD)
                    .sum::<u64>()
            })
            .sum();
        // etcd still serves watches from the compaction revision itself.
        let (_, at, mut after) = self.revision_log.split_lookup(&rev);
        if let Some(keys) = at {
            after.insert(rev, keys);
        }
        self.revision_log = after;
        self.compacted = rev;
        Ok(CompactResponse { revision: self.current })
    }

    /// Writes `key` at revision `rev` as part of a change; returns the
    /// previous live value.
    pub(crate) fn put_record(&mut self, key: &Bytes, value: Bytes, lease: i64, rev: i64) {
        // Most keys have one record: allocate for one, not Vec's default four.
        let history = self.keys.entry(key.clone()).or_insert_with(|| KeyHistory {
            records: Vec::with_capacity(1),
        });
        let (create_revision, version, old_lease) = match history.latest() {
            Some(prev) => (prev.create_revision, prev.version + 1, prev.lease),
            None => (rev, 1, 0),
        };
        let value_len = value.len() as u64;
        history.records.push(Record {
            mod_revision: rev,
            create_revision,
            version,
            value,
            lease,
        });
        if old_lease != lease {
            self.detach(key, old_lease);
        }
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(key.clone());
        }
        self.revision_log.entry(rev).or_default().push(key.clone());
        self.size += key.len() as u64 + value_len + RECORD_OVERHEAD;
    }

    /// Approximate bytes held by the store (what the space quota limits).
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// Removes `key` from the keys of `lease`.
    fn detach(&mut self, key: &Bytes, lease: i64) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }

    /// Deletes every live key of a range at revision `rev`; returns the
    /// deleted key-values.
    pub(crate) fn delete_records(&mut self, key: &[u8], range_end: &[u8], rev: i64) -> Vec<KeyValue> {
        let Some(bounds) = key_bounds(key, range_end) else {
            return Vec::new();
        };
        let mut deleted: Vec<KeyValue> = Vec::new();
        let live: Vec<Bytes> = self
            .keys
            .range::<_, [u8]>(bounds)
            .filter(|(_, history)| history.latest().is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for k in &live {
            let Some(history) = self.keys.get_mut(k) else { continue };
            if let Some(prev) = history.latest() {
                deleted.push(to_kv(k, prev));
                self.revision_log.entry(rev).or_default().push(k.clone());
                self.size += k.len() as u64 + RECORD_OVERHEAD;
                history.records.push(Record {
                    mod_revision: rev,
                    create_revision: 0,
                    version: 0,
                    value: Bytes::new(),
                    lease: 0,
                });
            }
        }
        for kv in &deleted {
            if let Some(l) = self.leases.get_mut(&kv.lease) {
                l.keys.remove(&kv.key);
            }
        }
        deleted
    }

    /// The newest live record of a key.
    pub(crate) fn latest(&self, key: &[u8]) -> Option<KeyValue> {
        self.keys
            .get_key_value(key)
            .and_then(|(k, h)| h.latest().map(|r| to_kv(k, r)))
    }
}

/// Whether a txn op can run while the NOSPACE alarm is raised: anything
/// but a put, as etcd's capped applier allows.
fn frees_space(op: &RequestOp) -> bool {
    match op {
        RequestOp::Put(_) => false,
        RequestOp::Txn(t) => t.success.iter().chain(&t.failure).all(frees_space),
        _ => true,
    }
}

pub(crate) fn to_kv(key: &Bytes, record: &Record) -> KeyValue {
    KeyValue {
        key: key.clone(),
        create_revision: record.create_revision,
        mod_revision: record.mod_revision,
        version: record.version,
        value: record.value.clone(),
        lease: record.lease,
    }
}

/// Sorts as etcd does: key order is already ascending, so only other
/// targets or a descending order sort; ties keep key order (a stable sort).
fn sort_kvs(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let order = match (order, target) {
        (SortOrder::None, SortTarget::Key) => return,
        (SortOrder::None, _) => SortOrder::Ascend,
        (SortOrder::Ascend, SortTarget::Key) => return,
        (order, _) => order,
    };
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    match order {
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
        _ => kvs.sort_by(cmp),
    }
}
