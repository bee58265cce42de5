//! Lost acknowledged writes, two ways.
//!
//! 1. **Against the final read** ([`lost_by_final_read`], from the history
//!    alone, so `firebreak check` can redo it): the final linearizable read
//!    must show every acknowledged write or a later one. For a put or
//!    compare-and-set of value `v` at revision `r` on key `k`: the final
//!    read shows `v`, or a value whose `mod_revision` is above `r`, or `k`
//!    absent with some delete of `k` that may have come after (an
//!    acknowledged one at a revision above `r`, or one of unknown outcome).
//!    For a delete at `r`: `k` is absent, or holds a value written above `r`.
//! 2. **Against the store's own history** ([`audit`], see
//!    [`super::store_history`]): revision `r` of an acknowledged put or
//!    compare-and-set must be that write. If it is not, and its value
//!    appears nowhere in the store's history, the write is lost; if it
//!    appears at another revision, the write was applied but acknowledged
//!    with the wrong revision (listed as misplaced, and left to the
//!    linearizability checker). A delete must have deleted its key at some
//!    revision its real-time interval allows (above every revision seen by
//!    an operation that completed before it started, and at most any
//!    revision seen by one that started after it completed).
//!
//! The second catches writes the first cannot: a lost write that later
//! writes overwrote.
//!
//! # Correctness
//!
//! Both rules only flag a write when a correct linearizable store could not
//! have produced what is observed, given that values are unique; when the
//! evidence is missing (no final read of the key, an unreadable revision)
//! the write is counted as unverifiable, never as lost.

use std::collections::{BTreeMap, HashMap};

use firebreak_check::{HistoryEvent, Operation, Outcome};
use serde::Serialize;

use super::final_read::DRILL_CLIENT;
use super::store_history::{Change, StoreHistory};

/// An acknowledged write that is gone, with the evidence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LostWrite {
    /// Operation id in `history.jsonl`.
    pub op: u64,
    /// Client that issued it.
    pub client: u64,
    /// The client's datacenter.
    pub dc: Option<String>,
    /// `put`, `cas` or `delete`.
    pub kind: String,
    /// Key.
    pub key: String,
    /// Value written (`null` for a delete).
    pub value: Option<String>,
    /// Revision the store acknowledged.
    pub acknowledged_revision: Option<u64>,
    /// Invocation, seconds since the load started.
    pub invoked_s: f64,
    /// Acknowledgement, seconds since the load started.
    pub acknowledged_s: Option<f64>,
    /// Why it counts as lost, one sentence per check that found it.
    pub evidence: Vec<String>,
}

/// An acknowledged write that was applied, but not at the revision it was
/// acknowledged with.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MisplacedWrite {
    /// Operation id.
    pub op: u64,
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Revision in the acknowledgement.
    pub acknowledged_revision: u64,
    /// Revision where the store's history has it.
    pub found_revision: u64,
}

/// What the audit against the store's history found.
#[derive(Debug, Clone, Default)]
pub struct AuditFindings {
    /// Lost writes (op id → evidence).
    pub lost: BTreeMap<u64, String>,
    /// Applied at another revision.
    pub misplaced: Vec<MisplacedWrite>,
    /// Writes that could not be placed (history incomplete).
    pub unverifiable: usize,
    /// Acknowledged writes examined.
    pub examined: usize,
}

fn show(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "absent".to_owned(),
    }
}

fn acked_writes(events: &[HistoryEvent]) -> impl Iterator<Item = (&HistoryEvent, u64)> {
    events
        .iter()
        .filter(|e| e.client != DRILL_CLIENT && e.is_acknowledged_write())
        .filter_map(|e| e.revision().map(|r| (e, r)))
}

/// Writes the final read (client 0's gets) does not account for: op id →
/// evidence. Keys the final read did not cover are skipped.
pub fn lost_by_final_read(events: &[HistoryEvent]) -> BTreeMap<u64, String> {
    let finals: HashMap<&str, &HistoryEvent> = events
        .iter()
        .filter(|e| e.client == DRILL_CLIENT && e.outcome == Outcome::Ok && matches!(e.op, Operation::Get { .. }))
        .map(|e| (e.key(), e))
        .collect();
    let mut lost = BTreeMap::new();
    for (w, r) in acked_writes(events) {
        let Some(f) = finals.get(w.key()) else { continue };
        let Some(result) = f.result.as_ref() else { continue };
        let Some(seen) = result.value.as_ref() else { continue };
        let seen = seen.as_deref();
        let final_rev = result.revision.unwrap_or(0);
        let newer = result.mod_revision.is_some_and(|m| m > r);
        let shown = format!(
            "the final read (revision {final_rev}) shows {} = {}{}",
            w.key(),
            show(seen),
            result
                .mod_revision
                .map(|m| format!(" written at revision {m}"))
                .unwrap_or_default()
        );
        let verdict = match &w.op {
            Operation::Put { value, .. } | Operation::Cas { new: value, .. } => {
                if seen == Some(value.as_str()) || (seen.is_some() && newer) {
                    None
                } else if seen.is_none() {
                    let later_delete = events.iter().any(|d| {
                        d.client != DRILL_CLIENT
                            && d.key() == w.key()
                            && matches!(d.op, Operation::Delete { .. })
                            && match d.outcome {
                                Outcome::Unknown => true,
                                Outcome::Ok => d.is_acknowledged_write() && d.revision().is_some_and(|rd| rd > r),
                                Outcome::Fail => false,
                            }
                    });
                    (!later_delete).then(|| format!("{shown}, and no delete after revision {r} explains it"))
                } else {
                    Some(format!("{shown}, older than this write's revision {r}"))
                }
            }
            Operation::Delete { .. } => {
                (seen.is_some() && !newer).then(|| format!("{shown}, older than this delete's revision {r}"))
            }
            Operation::Get { .. } | Operation::Append { .. } => None,
        };
        if let Some(evidence) = verdict {
            lost.insert(w.id, evidence);
        }
    }
    lost
}

fn describe(change: Option<&Change>) -> String {
    match change {
        Some(Change::Put { key, value }) => format!("{key} = {value:?}"),
        Some(Change::Delete { key }) => format!("the deletion of {key}"),
        Some(Change::Outside) => "no change to the workload keys".to_owned(),
        Some(Change::Many(keys)) => format!("changes to {}", keys.join(", ")),
        None => "nothing readable".to_owned(),
    }
}

/// Real-time bounds of each operation's revision: (above this, at most
/// this), from the revisions of `ok` operations that completed before it
/// started and that started after it completed.
fn revision_windows(events: &[HistoryEvent], final_revision: u64) -> HashMap<u64, (u64, u64)> {
    let mut by_complete: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| Some((e.complete_ns?, e.revision()?)))
        .collect();
    by_complete.sort_unstable();
    let mut prefix_max = Vec::with_capacity(by_complete.len());
    let mut max = 0;
    for (_, r) in &by_complete {
        max = max.max(*r);
        prefix_max.push(max);
    }
    let mut by_invoke: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| Some((e.invoke_ns, e.revision()?)))
        .collect();
    by_invoke.sort_unstable();
    let mut suffix_min = vec![final_revision; by_invoke.len() + 1];
    for i in (0..by_invoke.len()).rev() {
        suffix_min[i] = suffix_min[i + 1].min(by_invoke[i].1);
    }
    events
        .iter()
        .map(|e| {
            let before = by_complete.partition_point(|(t, _)| *t < e.invoke_ns);
            let lo = if before == 0 { 0 } else { prefix_max[before - 1] };
            let hi = match e.complete_ns {
                Some(done) => suffix_min[by_invoke.partition_point(|(t, _)| *t <= done)],
                None => final_revision,
            };
            (e.id, (lo, hi))
        })
        .collect()
}

/// Looks every acknowledged write up in the store's history.
pub fn audit(events: &[HistoryEvent], store: &StoreHistory) -> AuditFindings {
    let windows = revision_windows(events, store.final_revision);
    let mut findings = AuditFindings::default();
    for (w, r) in acked_writes(events) {
        findings.examined += 1;
        if r > store.final_revision {
            findings.lost.insert(
                w.id,
                format!(
                    "acknowledged at revision {r}, but the store's history ends at revision {}",
                    store.final_revision
                ),
            );
            continue;
        }
        let at_r = store.changes.get(&r);
        match &w.op {
            Operation::Put { value, .. } | Operation::Cas { new: value, .. } => {
                if matches!(at_r, Some(Change::Put { key, value: v }) if key == w.key() && v == value) {
                    continue;
                }
                match store.value_at.get(value) {
                    Some((key, found)) if key == w.key() => findings.misplaced.push(MisplacedWrite {
                        op: w.id,
                        key: key.clone(),
                        value: value.clone(),
                        acknowledged_revision: r,
                        found_revision: *found,
                    }),
                    _ if !store.unreadable.is_empty() => findings.unverifiable += 1,
                    _ => {
                        findings.lost.insert(
                            w.id,
                            format!(
                                "the store's revision {r} is {}, and {value:?} appears nowhere in the \
                                 store's history of {}",
                                describe(at_r),
                                w.key()
                            ),
                        );
                    }
                }
            }
            Operation::Delete { .. } => {
                if matches!(at_r, Some(Change::Delete { key }) if key == w.key()) {
                    continue;
                }
                let (lo, hi) = windows.get(&w.id).copied().unwrap_or((0, store.final_revision));
                if !store.deletions_of(w.key(), lo + 1, hi.max(lo + 1)).is_empty() {
                    continue;
                }
                if !store.complete_between(lo + 1, hi) {
                    findings.unverifiable += 1;
                    continue;
                }
                findings.lost.insert(
                    w.id,
                    format!(
                        "the store's revision {r} is {}, and no revision from {} to {hi} (the ones its \
                         real-time interval allows) deleted {}",
                        describe(at_r),
                        lo + 1,
                        w.key()
                    ),
                );
            }
            Operation::Get { .. } | Operation::Append { .. } => {}
        }
    }
    findings
}

/// The lost writes found by either check, with all their evidence.
pub fn combine(
    events: &[HistoryEvent],
    by_final_read: &BTreeMap<u64, String>,
    by_audit: &BTreeMap<u64, String>,
) -> Vec<LostWrite> {
    let by_id: HashMap<u64, &HistoryEvent> = events.iter().map(|e| (e.id, e)).collect();
    let mut ids: Vec<u64> = by_final_read.keys().chain(by_audit.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| {
            let e = by_id.get(&id)?;
            let mut evidence = Vec::new();
            if let Some(text) = by_final_read.get(&id) {
                evidence.push(format!("final read: {text}"));
            }
            if let Some(text) = by_audit.get(&id) {
                evidence.push(format!("store history: {text}"));
            }
            Some(LostWrite {
                op: id,
                client: e.client,
                dc: e.dc.clone(),
                kind: e.op.kind().to_owned(),
                key: e.key().to_owned(),
                value: e.op.written_value().map(str::to_owned),
                acknowledged_revision: e.revision(),
                invoked_s: e.invoke_ns as f64 / 1e9,
                acknowledged_s: e.complete_ns.map(|t| t as f64 / 1e9),
                evidence,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::store_history::Snapshot;
    use firebreak_check::store_log::snapshot;
    use firebreak_check::OpResult;

    fn put(id: u64, client: u64, key: &str, value: &str, t: u64, rev: u64) -> HistoryEvent {
        HistoryEvent::invoked(
            id,
            client,
            Some("dc1"),
            Operation::Put {
                key: key.into(),
                value: value.into(),
            },
            t,
        )
        .ok(t + 5, OpResult::put(rev))
    }

    fn delete(id: u64, key: &str, t: u64, rev: u64) -> HistoryEvent {
        HistoryEvent::invoked(id, 1, Some("dc1"), Operation::Delete { key: key.into() }, t)
            .ok(t + 5, OpResult::delete(1, rev))
    }

    fn final_get(id: u64, key: &str, value: Option<&str>, rev: u64, mod_rev: Option<u64>) -> HistoryEvent {
        HistoryEvent::invoked(id, DRILL_CLIENT, Some("dc2"), Operation::Get { key: key.into() }, 1_000)
            .ok(1_001, OpResult::get(value.map(str::to_owned), rev, mod_rev))
    }

    #[test]
    fn the_final_read_must_show_each_write_or_a_later_one() {
        let events = vec![
            put(1, 1, "a", "v1", 10, 2),
            put(2, 2, "a", "v2", 20, 3),
            put(3, 1, "b", "w1", 30, 4),
            put(4, 2, "b", "w2", 40, 5), // lost: the final read shows w1
            put(5, 1, "c", "x1", 50, 6),
            delete(6, "c", 60, 7),
            final_get(7, "a", Some("v2"), 7, Some(3)),
            final_get(8, "b", Some("w1"), 7, Some(4)),
            final_get(9, "c", None, 7, None),
        ];
        let lost = lost_by_final_read(&events);
        assert_eq!(lost.keys().copied().collect::<Vec<_>>(), vec![4], "{lost:?}");
        assert!(lost[&4].contains("older than this write's revision 5"), "{}", lost[&4]);
    }

    #[test]
    fn a_resurrected_key_means_a_lost_delete() {
        let events = vec![
            put(1, 1, "c", "x1", 50, 6),
            delete(2, "c", 60, 7),
            final_get(3, "c", Some("x1"), 7, Some(6)),
        ];
        assert_eq!(lost_by_final_read(&events).keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn an_absent_key_is_explained_by_an_unknown_delete() {
        let unknown_delete =
            HistoryEvent::invoked(2, 2, None, Operation::Delete { key: "c".into() }, 40).unknown(Some(900));
        let events = vec![
            put(1, 1, "c", "x1", 50, 6),
            unknown_delete,
            final_get(3, "c", None, 7, None),
        ];
        assert!(lost_by_final_read(&events).is_empty());
        let events = vec![put(1, 1, "c", "x1", 50, 6), final_get(3, "c", None, 7, None)];
        assert_eq!(lost_by_final_read(&events).len(), 1);
    }

    fn store(changes: &[(u64, Snapshot)], final_revision: u64) -> StoreHistory {
        let snaps: BTreeMap<u64, Snapshot> = changes.iter().cloned().collect();
        StoreHistory::from_snapshots(&snaps, final_revision)
    }

    #[test]
    fn the_audit_finds_overwritten_lost_writes_and_misplaced_ones() {
        // The store: rev 2 a=v1, rev 3 a=v3, rev 4 a=v2 (v2 acknowledged as 3).
        let history = store(
            &[
                (1, snapshot(&[])),
                (2, snapshot(&[("a", "v1", 2)])),
                (3, snapshot(&[("a", "v3", 3)])),
                (4, snapshot(&[("a", "v2", 4)])),
                (5, snapshot(&[("a", "v2", 4)])),
            ],
            5,
        );
        let events = vec![
            put(1, 1, "a", "v1", 10, 2),
            put(2, 2, "a", "v2", 20, 3),   // applied at 4: misplaced
            put(3, 3, "a", "lost", 25, 3), // never applied: lost, though overwritten
            put(4, 1, "a", "v3", 30, 3),
        ];
        let findings = audit(&events, &history);
        assert_eq!(findings.examined, 4);
        assert_eq!(findings.lost.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert!(findings.lost[&3].contains("appears nowhere"), "{}", findings.lost[&3]);
        assert_eq!(findings.misplaced.len(), 1);
        assert_eq!(findings.misplaced[0].found_revision, 4);
        let lost = combine(&events, &BTreeMap::new(), &findings.lost);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].value.as_deref(), Some("lost"));
    }

    #[test]
    fn a_correct_history_has_nothing_lost() {
        let history = store(
            &[
                (1, snapshot(&[])),
                (2, snapshot(&[("a", "v1", 2)])),
                (3, snapshot(&[])),
                (4, snapshot(&[("a", "v2", 4)])),
            ],
            4,
        );
        let events = vec![
            put(1, 1, "a", "v1", 10, 2),
            delete(2, "a", 20, 3),
            put(3, 2, "a", "v2", 30, 4),
            final_get(4, "a", Some("v2"), 4, Some(4)),
        ];
        let findings = audit(&events, &history);
        assert!(findings.lost.is_empty(), "{:?}", findings.lost);
        assert!(findings.misplaced.is_empty());
        assert!(lost_by_final_read(&events).is_empty());
    }

    #[test]
    fn a_delete_not_in_its_window_is_lost() {
        let history = store(
            &[
                (1, snapshot(&[])),
                (2, snapshot(&[("a", "v1", 2)])),
                (3, snapshot(&[("a", "v1", 2), ("b", "x", 3)])),
            ],
            3,
        );
        let events = vec![put(1, 1, "a", "v1", 10, 2), delete(2, "a", 20, 3)];
        let findings = audit(&events, &history);
        assert_eq!(findings.lost.keys().copied().collect::<Vec<_>>(), vec![2]);
    }
}
