//! The store's own history of a keyspace, revision by revision, as the
//! workload checkers ([`crate::bank`], [`crate::ranges`],
//! [`crate::watches`]) compare the clients' observations with it.
//!
//! [`StoreLog`] maps every readable revision to the changes it made under
//! a key prefix ([`KeyChange`]: a put with its value, or a delete). The
//! drill builds it after the load from a serializable Range of the prefix
//! at every revision ([`StoreLog::from_snapshots`]); tests build it by hand
//! ([`StoreLog::from_changes`]). [`Replay`] walks it forward and gives the
//! keyspace at any revision, with each key's value, mod and create
//! revision ([`Kv`]).
//!
//! # Correctness
//!
//! - Revision 1 is the empty store (etcd's first revision); every later
//!   revision is either in [`StoreLog::revisions`] (possibly with no change
//!   under the prefix: a write elsewhere) or in [`StoreLog::unreadable`].
//! - The state at revision `r` is known only if every revision from 2 to
//!   `r` is readable and `r <= final_revision`; otherwise [`Replay`] says
//!   so (`None`) and checkers count the observation as unverifiable, never
//!   as an anomaly.
//! - A key whose mod revision changes between consecutive snapshots was
//!   put at the later revision (even with the same value); a key that
//!   disappears was deleted. Nothing under the prefix can change without
//!   its mod revision changing, so the changes are exact.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One key as a read returns it (or as the store held it at a revision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Revision of its last modification.
    pub mod_revision: u64,
    /// Revision at which it was created (since its last deletion).
    pub create_revision: u64,
}

/// What one revision did to one key under the prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyChange {
    /// `key` was set to `value`.
    Put {
        /// The key.
        key: String,
        /// The value written.
        value: String,
    },
    /// `key` was deleted.
    Delete {
        /// The key.
        key: String,
    },
}

impl KeyChange {
    /// `key` set to `value`.
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> KeyChange {
        KeyChange::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            KeyChange::Put { key, .. } | KeyChange::Delete { key } => key,
        }
    }

    /// One line for a report, e.g. `put drill/k01=c3-7` or `delete drill/k01`.
    pub fn describe(&self) -> String {
        match self {
            KeyChange::Put { key, value } => format!("put {key}={value}"),
            KeyChange::Delete { key } => format!("delete {key}"),
        }
    }
}

/// A snapshot of the keyspace at one revision: key → (value, mod revision).
pub type Snapshot = BTreeMap<String, (String, u64)>;

/// A snapshot of `(key, value, mod revision)` entries, as tests write one.
pub fn snapshot(entries: &[(&str, &str, u64)]) -> Snapshot {
    entries
        .iter()
        .map(|(k, v, r)| (k.to_string(), (v.to_string(), *r)))
        .collect()
}

/// The store's history of the keys under [`StoreLog::prefix`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreLog {
    /// The prefix the history covers (`""`: every key).
    pub prefix: String,
    /// The last revision read.
    pub final_revision: u64,
    /// The changes under the prefix made by each readable revision from 2
    /// on (empty: the revision changed only keys outside the prefix).
    pub revisions: BTreeMap<u64, Vec<KeyChange>>,
    /// Revisions in `2..=final_revision` that could not be read.
    pub unreadable: BTreeSet<u64>,
}

impl StoreLog {
    /// Builds the log from snapshots at consecutive revisions
    /// (`snapshots[r]` is the keyspace at revision `r`; a missing revision
    /// 1 counts as the empty store).
    pub fn from_snapshots(prefix: &str, snapshots: &BTreeMap<u64, Snapshot>, final_revision: u64) -> StoreLog {
        let mut log = StoreLog {
            prefix: prefix.to_owned(),
            final_revision,
            ..StoreLog::default()
        };
        let empty = Snapshot::new();
        for rev in 2..=final_revision {
            let now = snapshots.get(&rev);
            let prev = match snapshots.get(&(rev - 1)) {
                Some(prev) => Some(prev),
                None if rev == 2 => Some(&empty),
                None => None,
            };
            let (Some(now), Some(prev)) = (now, prev) else {
                log.unreadable.insert(rev);
                continue;
            };
            let mut changes = Vec::new();
            for (key, (value, mod_rev)) in now {
                if prev.get(key).map(|(_, m)| m) != Some(mod_rev) {
                    changes.push(KeyChange::put(key.clone(), value.clone()));
                }
            }
            for key in prev.keys() {
                if !now.contains_key(key) {
                    changes.push(KeyChange::Delete { key: key.clone() });
                }
            }
            log.revisions.insert(rev, changes);
        }
        log
    }

    /// Builds a complete log (every revision readable) from the changes of
    /// each revision; revisions not given changed nothing under the prefix.
    pub fn from_changes(prefix: &str, changes: impl IntoIterator<Item = (u64, Vec<KeyChange>)>) -> StoreLog {
        let given: BTreeMap<u64, Vec<KeyChange>> = changes.into_iter().collect();
        let final_revision = given.keys().next_back().copied().unwrap_or(1).max(1);
        let mut log = StoreLog {
            prefix: prefix.to_owned(),
            final_revision,
            ..StoreLog::default()
        };
        for rev in 2..=final_revision {
            log.revisions.insert(rev, given.get(&rev).cloned().unwrap_or_default());
        }
        log
    }

    /// Whether the history covers every key starting with `prefix`.
    pub fn covers(&self, prefix: &str) -> bool {
        prefix.starts_with(&self.prefix)
    }

    /// The changes revision `rev` made under the prefix, if it could be read.
    pub fn changes_at(&self, rev: u64) -> Option<&[KeyChange]> {
        self.revisions.get(&rev).map(Vec::as_slice)
    }

    /// Whether every revision in `from..=to` is readable and within the
    /// history.
    pub fn complete_between(&self, from: u64, to: u64) -> bool {
        to <= self.final_revision && self.unreadable.range(from..=to).next().is_none()
    }

    /// A replay from the empty store at revision 1.
    pub fn replay(&self) -> Replay<'_> {
        Replay {
            log: self,
            revision: 1,
            state: BTreeMap::new(),
            broken: false,
        }
    }
}

/// Walks a [`StoreLog`] forward, one revision at a time.
pub struct Replay<'a> {
    log: &'a StoreLog,
    revision: u64,
    state: BTreeMap<String, Kv>,
    broken: bool,
}

impl<'a> Replay<'a> {
    /// The keyspace (under the log's prefix) at revision `rev`, or `None`
    /// if it is not known (an unreadable revision at or before `rev`, or
    /// `rev` beyond the history). Revisions must be asked in non-decreasing
    /// order; asking for an earlier one than the last gives `None`.
    pub fn state_at(&mut self, rev: u64) -> Option<&BTreeMap<String, Kv>> {
        if rev < self.revision || rev > self.log.final_revision || rev == 0 {
            return None;
        }
        while self.revision < rev {
            self.revision += 1;
            match self.log.revisions.get(&self.revision) {
                Some(changes) if !self.broken => {
                    for change in changes {
                        match change {
                            KeyChange::Put { key, value } => {
                                let create = self.state.get(key).map_or(self.revision, |kv| kv.create_revision);
                                self.state.insert(
                                    key.clone(),
                                    Kv {
                                        key: key.clone(),
                                        value: value.clone(),
                                        mod_revision: self.revision,
                                        create_revision: create,
                                    },
                                );
                            }
                            KeyChange::Delete { key } => {
                                self.state.remove(key);
                            }
                        }
                    }
                }
                _ => self.broken = true,
            }
        }
        (!self.broken).then_some(&self.state)
    }
}

/// The keys of `state` under `prefix`, in key order.
pub fn keys_under<'s>(state: &'s BTreeMap<String, Kv>, prefix: &str) -> impl Iterator<Item = &'s Kv> + 's {
    let prefix = prefix.to_owned();
    state
        .range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
        .map(|(_, kv)| kv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_become_changes_including_multi_key_revisions() {
        let mut snaps = BTreeMap::new();
        snaps.insert(2, snapshot(&[("p/a", "1", 2), ("p/b", "1", 2)]));
        snaps.insert(3, snapshot(&[("p/a", "1", 2), ("p/b", "1", 2)]));
        snaps.insert(4, snapshot(&[("p/a", "1", 4)]));
        // 5 unreadable
        snaps.insert(6, snapshot(&[]));
        let log = StoreLog::from_snapshots("p/", &snaps, 6);
        assert_eq!(
            log.changes_at(2),
            Some(&[KeyChange::put("p/a", "1"), KeyChange::put("p/b", "1")][..])
        );
        assert_eq!(log.changes_at(3), Some(&[][..]));
        assert_eq!(
            log.changes_at(4),
            Some(&[KeyChange::put("p/a", "1"), KeyChange::Delete { key: "p/b".into() }][..])
        );
        assert_eq!(log.unreadable.iter().copied().collect::<Vec<_>>(), vec![5, 6]);
        assert!(log.complete_between(2, 4));
        assert!(!log.complete_between(4, 5));
        assert!(!log.complete_between(2, 7));
        let mut replay = log.replay();
        assert_eq!(replay.state_at(1).map(|s| s.len()), Some(0));
        let at4 = replay.state_at(4).unwrap();
        assert_eq!(at4["p/a"].mod_revision, 4);
        assert_eq!(at4["p/a"].create_revision, 2);
        assert!(!at4.contains_key("p/b"));
        assert!(replay.state_at(3).is_none(), "replay only goes forward");
        assert!(replay.state_at(5).is_none());
        assert!(
            replay.state_at(6).is_none(),
            "an unreadable revision hides everything after it"
        );
    }

    #[test]
    fn keys_under_a_prefix_and_coverage() {
        let log = StoreLog::from_changes(
            "d/",
            [
                (2, vec![KeyChange::put("d/a/1", "x"), KeyChange::put("d/b", "y")]),
                (4, vec![]),
            ],
        );
        assert_eq!(log.final_revision, 4);
        assert!(log.covers("d/a/"));
        assert!(!log.covers("e/"));
        let mut replay = log.replay();
        let state = replay.state_at(3).unwrap();
        let under: Vec<&str> = keys_under(state, "d/a/").map(|kv| kv.key.as_str()).collect();
        assert_eq!(under, vec!["d/a/1"]);
        assert_eq!(keys_under(state, "d/").count(), 2);
    }
}
