//! The entry point [`check_history`]: partitions a history per key, runs the
//! linearizability search on each key within one shared budget, runs the
//! revision checks, builds counterexamples, and assembles the
//! [`CheckReport`].
//!
//! # Correctness
//!
//! - Keys are searched smallest first, so a budget exhausted by one large key
//!   still leaves verdicts for the small ones; every key whose search did not
//!   finish is reported `UNKNOWN`.
//! - Before searching a key, the classic shapes of the `patterns` module are
//!   looked for; each is a proof of non-linearizability on its own, so a key
//!   showing one is `FAIL` without a search (which might not finish on a
//!   large key with many `unknown` operations).
//! - The overall verdict is `PASS` only if every key's search completed
//!   with a linearization and no revision anomaly was found (see
//!   [`crate::report`]).

use std::collections::HashSet;
use std::time::Instant;

use crate::budget::{Budget, Meter};
use crate::counterexample;
use crate::history::{HistoryEvent, Outcome};
use crate::model::{id_list, partition, Partition};
use crate::report::{AnomalyKind, CheckReport, CheckStats, Counterexample, KeyReport, Verdict};
use crate::revisions::{check_revisions, Collector};
use crate::search::{search, SearchResult};

/// Checks a history for linearizability (per key) and for the revision
/// properties described in [`crate::revisions`], within `budget`.
///
/// ```
/// use firebreak_check::{check_history, Budget, HistoryEvent, Operation, OpResult, Verdict};
///
/// let put = HistoryEvent::invoked(1, 1, None, Operation::Put { key: "k".into(), value: "a".into() }, 0)
///     .ok(10, OpResult::put(2));
/// let get = HistoryEvent::invoked(2, 2, None, Operation::Get { key: "k".into() }, 20)
///     .ok(30, OpResult::get(Some("a".into()), 2, Some(2)));
/// let report = check_history(&[put, get], Budget::default());
/// assert_eq!(report.verdict, Verdict::Pass);
/// ```
pub fn check_history(events: &[HistoryEvent], budget: Budget) -> CheckReport {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let mut found = Collector::default();

    let mut seen_ids = HashSet::new();
    let duplicate_ids: Vec<u64> = events.iter().filter(|e| !seen_ids.insert(e.id)).map(|e| e.id).collect();
    if !duplicate_ids.is_empty() {
        warnings.push(format!(
            "{} event id(s) are used more than once ({}); reports may be ambiguous",
            duplicate_ids.len(),
            id_list(&duplicate_ids)
        ));
    }

    let partitions = partition(events, &mut warnings);
    check_revisions(events, &mut found, &mut warnings);

    let mut meter = Meter::start(&budget);
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&i| (partitions[i].ops.len(), i));
    let mut results = vec![None; partitions.len()];
    for i in order {
        let part = &partitions[i];
        // A classic shape proves a violation without searching.
        if let Some(cx) = counterexample::from_pattern(part, events) {
            results[i] = Some((Finding::Shape(cx), 0));
            continue;
        }
        let mut values = part.values.clone();
        let before = meter.steps();
        let result = search(&part.ops, &mut values, &mut meter);
        results[i] = Some((Finding::Searched(result), meter.steps() - before));
    }

    // Counterexample shrinking shares `budget.minimize` among failing keys.
    let shrink_deadline = budget.minimize.map(|d| Instant::now() + d);
    let mut failing_left = results
        .iter()
        .filter(|r| matches!(r, Some((Finding::Searched(SearchResult::Violation(_)), _))))
        .count();
    let mut keys = Vec::with_capacity(partitions.len());
    for (part, result) in partitions.iter().zip(results) {
        let (result, steps) = result.expect("every partition was searched");
        let (verdict, counterexample) = match result {
            Finding::Shape(cx) => {
                report_violation(&mut found, part, &cx);
                (Verdict::Fail, Some(cx))
            }
            Finding::Searched(SearchResult::Linearizable) => (Verdict::Pass, None),
            Finding::Searched(SearchResult::Exhausted) => (Verdict::Unknown, None),
            Finding::Searched(SearchResult::Violation(witness)) => {
                let allowance = shrink_deadline.map(|deadline| {
                    let share = u32::try_from(failing_left.max(1)).unwrap_or(u32::MAX);
                    deadline.saturating_duration_since(Instant::now()) / share
                });
                failing_left = failing_left.saturating_sub(1);
                let cx = counterexample::build(part, witness, events, allowance, budget.max_steps);
                report_violation(&mut found, part, &cx);
                (Verdict::Fail, Some(cx))
            }
        };
        keys.push(KeyReport {
            key: part.key.clone(),
            verdict,
            events: part.events,
            ops: part.ops.len(),
            unknown_ops: part.unknown,
            pruned_ops: part.pruned,
            steps,
            counterexample,
        });
    }

    let mut anomalies = Vec::new();
    found.finish(&mut anomalies, &mut warnings);

    let count = |v: Verdict| keys.iter().filter(|k| k.verdict == v).count();
    let (failed_keys, unknown_keys) = (count(Verdict::Fail), count(Verdict::Unknown));
    let linearizable = if failed_keys > 0 {
        Some(false)
    } else if unknown_keys > 0 {
        None
    } else {
        Some(true)
    };
    let verdict = if failed_keys > 0 || !anomalies.is_empty() {
        Verdict::Fail
    } else if unknown_keys > 0 {
        Verdict::Unknown
    } else {
        Verdict::Pass
    };
    let outcome_count = |o: Outcome| events.iter().filter(|e| e.outcome == o).count();
    let stats = CheckStats {
        events: events.len(),
        ok: outcome_count(Outcome::Ok),
        failed: outcome_count(Outcome::Fail),
        unknown: outcome_count(Outcome::Unknown),
        keys: keys.len(),
        steps: meter.steps(),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let revision_anomalies = anomalies
        .iter()
        .filter(|a| a.kind != AnomalyKind::NotLinearizable)
        .count();
    let summary = format!(
        "{} events on {} key(s): {} linearizable, {} not linearizable, {} undecided \
         (out of budget); {} revision/value anomal{}",
        stats.events,
        stats.keys,
        count(Verdict::Pass),
        failed_keys,
        unknown_keys,
        revision_anomalies,
        if revision_anomalies == 1 { "y" } else { "ies" }
    );
    CheckReport {
        verdict,
        linearizable,
        summary,
        stats,
        keys,
        anomalies,
        warnings,
    }
}

/// What was found about one key.
#[derive(Clone)]
enum Finding {
    /// A classic shape proves it non-linearizable.
    Shape(Counterexample),
    /// The search's result.
    Searched(SearchResult),
}

fn report_violation(found: &mut Collector, part: &Partition, cx: &Counterexample) {
    found.push(
        AnomalyKind::NotLinearizable,
        format!(
            "key {:?} is not linearizable: no order of its operations explains what clients saw; e.g. {} \
             operation(s): {}",
            part.key,
            cx.ops.len(),
            id_list(&cx.ops)
        ),
        cx.ops.clone(),
    );
}
