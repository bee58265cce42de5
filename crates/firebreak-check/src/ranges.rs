//! The ranges workload and its checker: every Range must return exactly
//! the store's state at the revision it reports.
//!
//! Clients write ([`RangeOp::Put`], [`RangeOp::Delete`]) and read a prefix
//! ([`RangeOp::Range`]): at the current revision, linearizable or
//! serializable, or at an explicit past revision. Each Range records the
//! header revision and every key it returned with its value, mod revision
//! and create revision.
//!
//! [`check_ranges`] compares each Range with the store's history
//! ([`StoreLog`]).
//!
//! # Correctness
//!
//! A Range *sees* revision `R`: its explicit revision if it asked for one,
//! else its header revision. Anomaly kinds:
//!
//! - `range_mismatch`: the keys returned are not exactly the keys under the
//!   prefix live at `R` in the store's history, with the same value, mod
//!   revision and create revision (a serializable Range may be stale, but
//!   must still be exactly the state at the revision its header reports).
//!   Reported with the keys missing, extra or different, and the writes
//!   that produced them.
//! - `stale_read`: a linearizable Range whose header revision is below the
//!   revision of an operation (of any ranges client) that completed before
//!   it was invoked: every revision a response carried was committed, so a
//!   linearizable read invoked later must be at least there.
//! - `future_revision`: a Range at an explicit revision above its own
//!   header revision (the store served a revision it had not reached).
//! - `lost_write`: an acknowledged put (or delete that deleted a key) that
//!   is not at its revision in the store's history.
//!
//! A Range or write is unverifiable (never an anomaly) when the store's
//! history does not cover its prefix, or has an unreadable revision at or
//! below the one needed, or ends before it; any unverifiable observation
//! makes the verdict UNKNOWN. Operations of unknown outcome are not judged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::Outcome;
use crate::recorded::Recorded;
use crate::store_log::{keys_under, KeyChange, Kv, StoreLog};
use crate::workload_report::{Findings, WorkloadReport};

/// Name of the workload.
pub const RANGES: &str = "ranges";

/// An operation of the ranges workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RangeOp {
    /// Put `value` (unique in the drill) at `key`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Range over every key starting with `prefix`.
    Range {
        /// The prefix.
        prefix: String,
        /// The revision asked for (`None`: the current one).
        revision: Option<u64>,
        /// Serializable (any member, possibly stale) rather than
        /// linearizable.
        serializable: bool,
    },
}

/// The store's answer to a [`RangeOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RangeResult {
    /// A put, at `revision`.
    Put {
        /// Header revision: the put's.
        revision: u64,
    },
    /// A delete.
    Delete {
        /// Keys deleted (0 or 1).
        deleted: u64,
        /// Header revision (the delete's, if it deleted something).
        revision: u64,
    },
    /// A Range.
    Range {
        /// Header revision.
        revision: u64,
        /// The keys returned, in key order.
        kvs: Vec<Kv>,
    },
}

impl RangeResult {
    /// The header revision.
    pub fn revision(&self) -> u64 {
        match self {
            RangeResult::Put { revision }
            | RangeResult::Delete { revision, .. }
            | RangeResult::Range { revision, .. } => *revision,
        }
    }
}

/// One recorded operation of the ranges workload.
pub type RangeEvent = Recorded<RangeOp, RangeResult>;

const RANGE_MISMATCH: &str = "range_mismatch";
const STALE_READ: &str = "stale_read";
const FUTURE_REVISION: &str = "future_revision";
const LOST_WRITE: &str = "lost_write";

fn show(kv: &Kv) -> String {
    format!(
        "{}={} (mod {}, create {})",
        kv.key, kv.value, kv.mod_revision, kv.create_revision
    )
}

/// Differences between what a Range returned and the store's state.
fn diff(returned: &[Kv], expected: &[&Kv]) -> Vec<String> {
    let got: BTreeMap<&str, &Kv> = returned.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    let want: BTreeMap<&str, &Kv> = expected.iter().map(|kv| (kv.key.as_str(), *kv)).collect();
    let mut out = Vec::new();
    for (key, w) in &want {
        match got.get(key) {
            None => out.push(format!("missing {}", show(w))),
            Some(g) if g != w => out.push(format!("returned {} where the store had {}", show(g), show(w))),
            Some(_) => {}
        }
    }
    for (key, g) in &got {
        if !want.contains_key(key) {
            out.push(format!("returned {} which the store did not hold", show(g)));
        }
    }
    if returned.windows(2).any(|w| w[0].key >= w[1].key) {
        out.push("keys not in ascending order".into());
    }
    out
}

/// Checks a merged ranges history against the store's history. See the
/// module documentation for the rules.
pub fn check_ranges(events: &[RangeEvent], store: Option<&StoreLog>) -> WorkloadReport {
    let mut found = Findings::default();
    for e in events {
        let kind = match &e.op {
            RangeOp::Put { .. } => "put",
            RangeOp::Delete { .. } => "delete",
            RangeOp::Range { revision: Some(_), .. } => "range_past",
            RangeOp::Range { serializable: true, .. } => "range_serializable",
            RangeOp::Range { .. } => "range_linearizable",
        };
        let outcome = match e.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        };
        found.count(&format!("{kind}_{outcome}"), 1);
    }
    stale_reads(events, &mut found);

    // Ranges in the order of the revision they see, to replay the store once.
    let mut ranges: Vec<(u64, &RangeEvent, &str, &[Kv], u64)> = Vec::new();
    for e in events {
        if let (RangeOp::Range { prefix, revision, .. }, Some(RangeResult::Range { revision: header, kvs })) =
            (&e.op, e.ok_result())
        {
            if revision.is_some_and(|r| r > *header) {
                found.anomaly(
                    FUTURE_REVISION,
                    format!(
                        "range #{} (client {}) asked for revision {} and was answered with header revision {header}",
                        e.id,
                        e.client,
                        revision.unwrap_or_default()
                    ),
                    vec![e.to_value()],
                );
                continue;
            }
            ranges.push((revision.unwrap_or(*header), e, prefix, kvs, *header));
        }
    }
    ranges.sort_by_key(|(at, e, ..)| (*at, e.id));
    match store {
        None => found.count("ranges_unverifiable", ranges.len() as u64),
        Some(store) => {
            let mut replay = store.replay();
            for (at, e, prefix, kvs, header) in ranges {
                if !store.covers(prefix) {
                    found.count("ranges_unverifiable", 1);
                    continue;
                }
                let Some(state) = replay.state_at(at) else {
                    found.count("ranges_unverifiable", 1);
                    continue;
                };
                found.count("ranges_checked", 1);
                let expected: Vec<&Kv> = keys_under(state, prefix).collect();
                let problems = diff(kvs, &expected);
                if problems.is_empty() {
                    continue;
                }
                let mut ops = vec![e.to_value()];
                ops.extend(writes_behind(events, kvs, &expected));
                let asked = match &e.op {
                    RangeOp::Range { revision: Some(_), .. } => format!("at revision {at} (header {header})"),
                    RangeOp::Range { serializable: true, .. } => format!("serializable, at its header revision {at}"),
                    _ => format!("linearizable, at its header revision {at}"),
                };
                found.anomaly(
                    RANGE_MISMATCH,
                    format!(
                        "range #{} (client {}) of {prefix} {asked}: {}",
                        e.id,
                        e.client,
                        problems.join("; ")
                    ),
                    ops,
                );
            }
            lost_writes(events, store, &mut found);
        }
    }

    let checked = found.get("ranges_checked");
    let unverifiable = found.get("ranges_unverifiable") + found.get("writes_unverifiable");
    let detail = format!(
        "{checked} ranges checked against the store's history ({} linearizable, {} serializable, {} at a past \
         revision, ok); {} acknowledged writes found at their revision{}",
        found.get("range_linearizable_ok"),
        found.get("range_serializable_ok"),
        found.get("range_past_ok"),
        found.get("writes_checked"),
        found.anomalies_suffix()
    );
    let undecided = if store.is_none() {
        Some("the store's history was not read".to_owned())
    } else if unverifiable > 0 {
        Some(format!(
            "{unverifiable} ranges or writes need revisions the store's history lacks"
        ))
    } else if checked == 0 {
        Some("no range completed".to_owned())
    } else {
        None
    };
    found.finish(RANGES, detail, undecided)
}

/// The acknowledged writes that produced the keys a Range got wrong.
fn writes_behind(events: &[RangeEvent], returned: &[Kv], expected: &[&Kv]) -> Vec<serde_json::Value> {
    let wanted: Vec<(&str, u64)> = returned
        .iter()
        .chain(expected.iter().copied())
        .map(|kv| (kv.key.as_str(), kv.mod_revision))
        .collect();
    events
        .iter()
        .filter(|e| match (&e.op, e.ok_result()) {
            (RangeOp::Put { key, .. }, Some(RangeResult::Put { revision })) => {
                wanted.contains(&(key.as_str(), *revision))
            }
            _ => false,
        })
        .take(6)
        .map(RangeEvent::to_value)
        .collect()
}

/// `stale_read`: linearizable Ranges below a revision already returned.
fn stale_reads(events: &[RangeEvent], found: &mut Findings) {
    let mut by_completion: Vec<(u64, u64, &RangeEvent)> = events
        .iter()
        .filter_map(|e| Some((e.complete_ns?, e.ok_result()?.revision(), e)))
        .collect();
    by_completion.sort_by_key(|(t, r, e)| (*t, *r, e.id));
    // Highest revision (and its operation) among those completed so far.
    let mut best: Vec<(u64, usize)> = Vec::with_capacity(by_completion.len());
    for (i, (_, rev, _)) in by_completion.iter().enumerate() {
        let prev = best.last().copied();
        best.push(match prev {
            Some((r, j)) if r >= *rev => (r, j),
            _ => (*rev, i),
        });
    }
    for e in events {
        let (
            RangeOp::Range {
                serializable: false, ..
            },
            Some(RangeResult::Range { revision, .. }),
        ) = (&e.op, e.ok_result())
        else {
            continue;
        };
        let before = by_completion.partition_point(|(t, ..)| *t < e.invoke_ns);
        if before == 0 {
            continue;
        }
        let (bound, j) = best[before - 1];
        if *revision < bound {
            let earlier = by_completion[j].2;
            found.anomaly(
                STALE_READ,
                format!(
                    "linearizable range #{} (client {}) saw revision {revision}, but #{} (client {}) had completed \
                     with revision {bound} before it was invoked",
                    e.id, e.client, earlier.id, earlier.client
                ),
                vec![e.to_value(), earlier.to_value()],
            );
        }
    }
}

/// `lost_write`: acknowledged writes not at their revision in the store.
fn lost_writes(events: &[RangeEvent], store: &StoreLog, found: &mut Findings) {
    for e in events {
        let (expected, revision) = match (&e.op, e.ok_result()) {
            (RangeOp::Put { key, value }, Some(RangeResult::Put { revision })) => {
                (KeyChange::put(key.clone(), value.clone()), *revision)
            }
            (RangeOp::Delete { key }, Some(RangeResult::Delete { deleted, revision })) if *deleted > 0 => {
                (KeyChange::Delete { key: key.clone() }, *revision)
            }
            _ => continue,
        };
        if !store.covers(expected.key()) {
            found.count("writes_unverifiable", 1);
            continue;
        }
        let Some(changes) = store.changes_at(revision) else {
            found.count("writes_unverifiable", 1);
            continue;
        };
        found.count("writes_checked", 1);
        if !changes.contains(&expected) {
            let there: Vec<String> = changes.iter().map(KeyChange::describe).collect();
            found.anomaly(
                LOST_WRITE,
                format!(
                    "#{} (client {}) {} was acknowledged at revision {revision}, where the store has [{}]",
                    e.id,
                    e.client,
                    expected.describe(),
                    there.join(", ")
                ),
                vec![e.to_value()],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;

    const MS: u64 = 1_000_000;

    fn kv(key: &str, value: &str, m: u64, c: u64) -> Kv {
        Kv {
            key: key.into(),
            value: value.into(),
            mod_revision: m,
            create_revision: c,
        }
    }

    /// p/a=1@2, p/b=2@3, p/a=3@4, q/x=9@5 (outside the prefix read), delete p/b@6.
    fn store() -> StoreLog {
        StoreLog::from_changes(
            "",
            [
                (2, vec![KeyChange::put("p/a", "1")]),
                (3, vec![KeyChange::put("p/b", "2")]),
                (4, vec![KeyChange::put("p/a", "3")]),
                (5, vec![KeyChange::put("q/x", "9")]),
                (6, vec![KeyChange::Delete { key: "p/b".into() }]),
            ],
        )
    }

    #[derive(Default)]
    struct H(Vec<RangeEvent>);

    impl H {
        fn ok(&mut self, client: u64, op: RangeOp, t: (u64, u64), result: RangeResult) -> u64 {
            let id = self.0.len() as u64 + 1;
            self.0
                .push(RangeEvent::invoked(id, client, None, op, t.0 * MS).ok(t.1 * MS, result));
            id
        }
        fn put(&mut self, client: u64, key: &str, value: &str, t: (u64, u64), revision: u64) {
            let op = RangeOp::Put {
                key: key.into(),
                value: value.into(),
            };
            self.ok(client, op, t, RangeResult::Put { revision });
        }
        fn range(
            &mut self,
            client: u64,
            asked: Option<u64>,
            serializable: bool,
            t: (u64, u64),
            header: u64,
            kvs: Vec<Kv>,
        ) {
            let op = RangeOp::Range {
                prefix: "p/".into(),
                revision: asked,
                serializable,
            };
            self.ok(client, op, t, RangeResult::Range { revision: header, kvs });
        }
    }

    fn healthy() -> H {
        let mut h = H::default();
        h.put(1, "p/a", "1", (0, 1), 2);
        h.put(2, "p/b", "2", (1, 2), 3);
        h.put(1, "p/a", "3", (2, 3), 4);
        h.range(
            1,
            None,
            false,
            (4, 5),
            4,
            vec![kv("p/a", "3", 4, 2), kv("p/b", "2", 3, 3)],
        );
        // A stale serializable read is fine if it is exactly its revision.
        h.range(2, None, true, (4, 5), 2, vec![kv("p/a", "1", 2, 2)]);
        h.range(
            2,
            Some(3),
            false,
            (6, 7),
            6,
            vec![kv("p/a", "1", 2, 2), kv("p/b", "2", 3, 3)],
        );
        h.range(1, None, false, (8, 9), 6, vec![kv("p/a", "3", 4, 2)]);
        let op = RangeOp::Delete { key: "p/b".into() };
        h.ok(
            2,
            op,
            (5, 6),
            RangeResult::Delete {
                deleted: 1,
                revision: 6,
            },
        );
        h
    }

    fn kinds(report: &WorkloadReport) -> Vec<&str> {
        report.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn ranges_that_match_the_store_pass() {
        let report = check_ranges(&healthy().0, Some(&store()));
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        assert_eq!(report.counts["ranges_checked"], 4);
        assert_eq!(report.counts["writes_checked"], 4);
        let without = check_ranges(&healthy().0, None);
        assert_eq!(without.verdict, Verdict::Unknown);
    }

    #[test]
    fn each_anomaly_kind_is_found() {
        let mut h = healthy();
        // Missing p/b at revision 5, and a wrong mod revision for p/a.
        h.range(3, Some(5), false, (10, 11), 6, vec![kv("p/a", "3", 3, 2)]);
        // Linearizable, but older than revision 6 which completed before.
        h.range(
            3,
            None,
            false,
            (12, 13),
            4,
            vec![kv("p/a", "3", 4, 2), kv("p/b", "2", 3, 3)],
        );
        // A key the store never held at that revision.
        h.range(
            3,
            None,
            true,
            (12, 13),
            2,
            vec![kv("p/a", "1", 2, 2), kv("p/z", "0", 2, 2)],
        );
        h.range(3, Some(9), false, (14, 15), 6, vec![]);
        h.put(3, "p/a", "lost", (14, 15), 5);
        let report = check_ranges(&h.0, Some(&store()));
        assert_eq!(report.verdict, Verdict::Fail);
        let mut got = kinds(&report);
        got.sort_unstable();
        assert_eq!(
            got,
            [FUTURE_REVISION, LOST_WRITE, RANGE_MISMATCH, RANGE_MISMATCH, STALE_READ]
        );
        let mismatch = report
            .anomalies
            .iter()
            .find(|a| a.kind == RANGE_MISMATCH && a.message.contains("at revision 5"))
            .expect("the range at revision 5");
        assert!(
            mismatch.message.contains("missing p/b=2 (mod 3, create 3)"),
            "{}",
            mismatch.message
        );
        assert!(
            mismatch
                .message
                .contains("mod 3, create 2) where the store had p/a=3 (mod 4"),
            "{}",
            mismatch.message
        );
        // The range, then the puts that wrote p/a at 4 and p/b at 3.
        assert_eq!(mismatch.ops.len(), 3);
        let stale = report.anomalies.iter().find(|a| a.kind == STALE_READ).unwrap();
        assert!(stale.message.contains("saw revision 4"), "{}", stale.message);
    }

    #[test]
    fn unreadable_revisions_make_ranges_unverifiable_not_anomalies() {
        let mut log = store();
        log.revisions.remove(&3);
        log.unreadable.insert(3);
        let report = check_ranges(&healthy().0, Some(&log));
        assert_eq!(report.verdict, Verdict::Unknown, "{report:#?}");
        assert!(report.anomalies.is_empty());
    }
}
