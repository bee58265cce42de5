//! The store's own history of the workload keyspace, revision by revision,
//! read back after recovery: for every revision from 2 to the final one, a
//! serializable Range of the keyspace *at that revision* on a replica that
//! has applied it. Comparing consecutive revisions gives the one change
//! each revision made. The durability audit ([`super::lost`]) looks every
//! acknowledged write up in it; the other workloads' checks
//! ([`super::workloads`]) use its full form, [`StoreHistory::log`]: every
//! key each revision changed, with its value (a Txn changes several).
//!
//! # Correctness
//!
//! - The drill never compacts, so every revision is readable; a compacted
//!   or failed read makes the history incomplete, and the audit then says
//!   UNKNOWN for the writes it cannot place instead of calling them lost.
//! - The reads are served only by replicas that reported the final
//!   revision (checked by [`super::replicas`] first), so no read is of a
//!   future revision.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use firebreak_check::{KeyChange, StoreLog};
use tokio::task::JoinSet;

use crate::lab::observe::connect;
use crate::lab::Member;

/// The keyspace at one revision: key → (value, mod_revision).
pub use firebreak_check::store_log::Snapshot;

/// What one revision did to the workload keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `key` was set to `value`.
    Put { key: String, value: String },
    /// `key` was deleted.
    Delete { key: String },
    /// Nothing under the workload prefix changed.
    Outside,
    /// Several keys changed (no workload operation does that).
    Many(Vec<String>),
}

/// The store's history, revision by revision.
#[derive(Debug, Clone, Default)]
pub struct StoreHistory {
    /// Change made by each revision that could be read.
    pub changes: BTreeMap<u64, Change>,
    /// The last revision read.
    pub final_revision: u64,
    /// Revisions that could not be read.
    pub unreadable: Vec<u64>,
    /// Where each written value first appears: value → (key, revision).
    pub value_at: HashMap<String, (String, u64)>,
    /// Every change of every readable revision, for the checks of the
    /// workloads other than registers (`prefix` is the one read; empty
    /// when built from snapshots alone).
    pub log: StoreLog,
}

impl StoreHistory {
    /// Builds the history from snapshots at consecutive revisions
    /// (`snapshots[r]` is the keyspace at revision `r`): the full
    /// [`StoreLog`], and from it each revision's one change.
    pub fn from_snapshots(snapshots: &BTreeMap<u64, Snapshot>, final_revision: u64) -> StoreHistory {
        let log = StoreLog::from_snapshots("", snapshots, final_revision);
        let mut history = StoreHistory {
            final_revision,
            unreadable: log.unreadable.iter().copied().collect(),
            ..StoreHistory::default()
        };
        for (&rev, changes) in &log.revisions {
            let change = match changes.as_slice() {
                [] => Change::Outside,
                [KeyChange::Put { key, value }] => Change::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                [KeyChange::Delete { key }] => Change::Delete { key: key.clone() },
                many => Change::Many(many.iter().map(|c| c.key().to_owned()).collect()),
            };
            if let Change::Put { key, value } = &change {
                history.value_at.entry(value.clone()).or_insert((key.clone(), rev));
            }
            history.changes.insert(rev, change);
        }
        history.log = log;
        history
    }

    /// Whether revision `rev` could be read.
    pub fn knows(&self, rev: u64) -> bool {
        self.changes.contains_key(&rev)
    }

    /// Revisions in `from..=to` that deleted `key`.
    pub fn deletions_of(&self, key: &str, from: u64, to: u64) -> Vec<u64> {
        self.changes
            .range(from..=to)
            .filter(|(_, c)| matches!(c, Change::Delete { key: k } if k == key))
            .map(|(r, _)| *r)
            .collect()
    }

    /// Whether every revision in `from..=to` could be read.
    pub fn complete_between(&self, from: u64, to: u64) -> bool {
        !self.unreadable.iter().any(|r| (from..=to).contains(r))
    }
}

async fn snapshot_at(client: &mut Client, prefix: &str, rev: u64) -> Option<Snapshot> {
    let options = GetOptions::new()
        .with_prefix()
        .with_serializable()
        .with_revision(rev as i64);
    let resp = tokio::time::timeout(Duration::from_secs(5), client.get(prefix, Some(options)))
        .await
        .ok()?
        .ok()?;
    Some(
        resp.kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    (
                        String::from_utf8_lossy(kv.value()).into_owned(),
                        kv.mod_revision().max(0) as u64,
                    ),
                )
            })
            .collect(),
    )
}

/// Reads the keyspace under `prefix` at every revision `1..=final_revision`
/// from the members at `which` (spread over them, `parallel` requests in
/// flight), and builds the history.
pub async fn read_store_history(
    members: &[Member],
    which: &[usize],
    prefix: &str,
    final_revision: u64,
    parallel: usize,
) -> StoreHistory {
    let mut clients = Vec::new();
    for &i in which {
        if let Ok(client) = connect(&members[i], Duration::from_secs(5)).await {
            clients.push(client);
        }
    }
    read_store_history_with(clients, prefix, final_revision, parallel).await
}

/// [`read_store_history`] through clients already connected (each to one
/// member that has applied `final_revision`).
pub async fn read_store_history_with(
    clients: Vec<Client>,
    prefix: &str,
    final_revision: u64,
    parallel: usize,
) -> StoreHistory {
    let mut snapshots = BTreeMap::new();
    if clients.is_empty() || final_revision < 2 {
        let mut history = StoreHistory::from_snapshots(&snapshots, final_revision);
        history.log.prefix = prefix.to_owned();
        return history;
    }
    let workers = parallel.max(1);
    let mut set = JoinSet::new();
    for w in 0..workers {
        let mut client = clients[w % clients.len()].clone();
        let prefix = prefix.to_owned();
        set.spawn(async move {
            let mut out = Vec::new();
            let mut rev = 1 + w as u64;
            while rev <= final_revision {
                let mut snap = None;
                for _ in 0..3 {
                    snap = snapshot_at(&mut client, &prefix, rev).await;
                    if snap.is_some() {
                        break;
                    }
                }
                if let Some(snap) = snap {
                    out.push((rev, snap));
                }
                rev += workers as u64;
            }
            out
        });
    }
    while let Some(done) = set.join_next().await {
        if let Ok(part) = done {
            snapshots.extend(part);
        }
    }
    let mut history = StoreHistory::from_snapshots(&snapshots, final_revision);
    history.log.prefix = prefix.to_owned();
    history
}

#[cfg(test)]
mod tests {
    use firebreak_check::store_log::snapshot;

    use super::*;

    #[test]
    fn consecutive_snapshots_give_each_revision_its_change() {
        let mut snaps = BTreeMap::new();
        snaps.insert(1, snapshot(&[]));
        snaps.insert(2, snapshot(&[("a", "x", 2)]));
        snaps.insert(3, snapshot(&[("a", "y", 3)]));
        snaps.insert(4, snapshot(&[("a", "y", 3)]));
        snaps.insert(5, snapshot(&[]));
        // revision 6 unreadable
        snaps.insert(7, snapshot(&[("b", "z", 7)]));
        let h = StoreHistory::from_snapshots(&snaps, 7);
        assert_eq!(
            h.changes[&2],
            Change::Put {
                key: "a".into(),
                value: "x".into()
            }
        );
        assert_eq!(
            h.changes[&3],
            Change::Put {
                key: "a".into(),
                value: "y".into()
            }
        );
        assert_eq!(h.changes[&4], Change::Outside);
        assert_eq!(h.changes[&5], Change::Delete { key: "a".into() });
        assert_eq!(h.unreadable, vec![6, 7]);
        assert_eq!(h.value_at["y"], ("a".to_string(), 3));
        assert_eq!(h.deletions_of("a", 1, 7), vec![5]);
        assert!(!h.complete_between(5, 7));
        assert!(h.complete_between(2, 5));
        // The full log agrees, and also knows multi-key revisions.
        assert_eq!(h.log.changes_at(5), Some(&[KeyChange::Delete { key: "a".into() }][..]));
        assert!(h.log.unreadable.contains(&6) && h.log.unreadable.contains(&7));
        snaps.insert(6, snapshot(&[("b", "z", 6), ("c", "w", 6)]));
        let h = StoreHistory::from_snapshots(&snaps, 7);
        assert_eq!(h.changes[&6], Change::Many(vec!["b".into(), "c".into()]));
        assert_eq!(h.log.changes_at(6).map(<[_]>::len), Some(2));
    }
}
