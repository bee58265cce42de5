//! Watch events: the changes of a key range between two revisions, in
//! revision order and, within a revision, in the order of the writes.
//!
//! # Correctness
//! Events come from the revision log, which records every key written at
//! every revision since the last compaction, and from the keys' records at
//! exactly that revision. A watcher that asks for revisions `from..=to` and
//! then `to+1..` sees every event once, with no gap, on any replica that
//! has applied up to `to`.
//!
//! An event's `prev_kv` is what etcd sends: the key's value at the
//! event's revision - 1 (so a delete that follows a put of the same key in
//! one transaction has the value from before the transaction), none for a
//! put that creates the key, none if that revision is compacted.

use crate::error::KvError;
use crate::store::{to_kv, Store};
use crate::types::*;

impl Store {
    /// Events for keys in `[key, range_end)` (same forms as a range read)
    /// at revisions `from..=to`. Refuses a `from` below the compaction
    /// revision.
    pub fn events(&self, key: &[u8], range_end: &[u8], from: i64, to: i64) -> Result<Vec<(i64, Event)>, KvError> {
        if from < self.compacted {
            return Err(KvError::Compacted);
        }
        let in_range = |k: &[u8]| match crate::store::key_bounds(key, range_end) {
            None => false,
            Some((start, end)) => {
                let after_start = match start {
                    std::ops::Bound::Included(s) => k >= s,
                    _ => true,
                };
                let before_end = match end {
                    std::ops::Bound::Included(e) => k <= e,
                    std::ops::Bound::Excluded(e) => k < e,
                    std::ops::Bound::Unbounded => true,
                };
                after_start && before_end
            }
        };
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        for (rev, keys) in self.revision_log.range(from..=to) {
            // A key written twice at one revision (possible with nested
            // txns) has two records there, taken in order.
            let mut seen: Vec<&[u8]> = Vec::new();
            for k in keys.iter().filter(|k| in_range(k)) {
                let nth = seen.iter().filter(|s| **s == &k[..]).count();
                seen.push(k);
                let Some((key_bytes, history)) = self.keys.get_key_value(&k[..]) else {
                    continue;
                };
                let Some(pos) = history
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.mod_revision == *rev)
                    .map(|(i, _)| i)
                    .nth(nth)
                else {
                    // Removed by compaction (a tombstone at the
                    // compaction revision).
                    continue;
                };
                let record = &history.records[pos];
                // As etcd: the key's value at the revision before the
                // event's (not an earlier write of the same revision),
                // none for a put that creates the key, and none once that
                // revision is compacted.
                let creates = record.version != 0 && record.create_revision == *rev;
                let prev_kv = (!creates && *rev > self.compacted)
                    .then(|| history.at(*rev - 1))
                    .flatten()
                    .map(|r| to_kv(key_bytes, r));
                let event = if record.version == 0 {
                    Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key: key_bytes.clone(),
                            mod_revision: *rev,
                            ..Default::default()
                        },
                        prev_kv,
                    }
                } else {
                    Event {
                        kind: EventKind::Put,
                        kv: to_kv(key_bytes, record),
                        prev_kv,
                    }
                };
                out.push((*rev, event));
            }
        }
        Ok(out)
    }
}
