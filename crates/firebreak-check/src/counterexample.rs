//! Turning a failed search into a small, readable [`Counterexample`].
//!
//! Starting from a key's operations and the search's witness, the history is
//! shrunk by these reductions, each kept only when a fresh search confirms
//! the smaller history is still not linearizable:
//!
//! 1. **Cut** at the earliest return time `T` for which the history cut at
//!    `T` is still not linearizable: operations invoked after `T` are left
//!    out, and operations still running at `T` are treated as having an
//!    unknown outcome.
//! 2. **Start** at the latest write that no other completed operation
//!    overlaps (a barrier: it fixes the value for everything after it), see
//!    `after_barrier`.
//! 3. **Drop read-only operations** (gets, cas reported as not succeeded or
//!    writing back the value it expects, deletes reported as deleting
//!    nothing), in halving chunks.
//! 4. **Drop unobserved writes**: relax a completed put or successful cas to
//!    an `unknown` outcome, then drop it if
//!    [`crate::model::prune_unobserved_writes`] can.
//!
//! (Keys showing one of the classic shapes in [`crate::patterns`] never get
//! here: [`from_pattern`] reports those two to four operations directly, with
//! a one-line reason.)
//!
//! # Correctness
//!
//! Every reduction only ever produces histories whose non-linearizability
//! implies the original's, so the counterexample never blames the store for
//! something an artificial cut caused:
//!
//! - Cut: if the full history has a linearization `L`, take the prefix of
//!   `L` up to the last operation that completed by `T`. Every operation in
//!   it took effect no later than `T`, so was invoked by `T`; those still
//!   running at `T` have unconstrained outputs in the cut history; the
//!   prefix's states are those of `L`. So the cut history is linearizable.
//!   This also makes "not linearizable at `T`" monotone in `T`, which is why
//!   a binary search over `T` is valid.
//! - Start: see `after_barrier` (the part of `L` from the barrier on is a
//!   linearization of the shorter history).
//! - Read-only removal: a read-only operation never changes the state in any
//!   legal sequence, so deleting it from `L` leaves a legal linearization.
//! - Relaxing an operation to an `unknown` outcome only allows more
//!   linearizations, and pruning preserves linearizability both ways. The
//!   starting write is never relaxed: it stands for the initial value of the
//!   shorter history.
//!
//! The differential test in `tests/differential.rs` checks every reported
//! counterexample against a brute-force oracle.
//!
//! Shrinking runs under its own allowance; running out just stops shrinking.

use std::time::{Duration, Instant};

use crate::budget::Meter;
use crate::history::HistoryEvent;
use crate::model::{id_list, prune_unobserved_writes, PartOp, Partition, RegisterOp, Values};
use crate::patterns;
use crate::render::{describe_event, format_ns};
use crate::report::Counterexample;
use crate::search::{search, SearchResult, Witness};

/// A confirmed non-linearizable set of operations and its witness.
struct Confirmed {
    ops: Vec<PartOp>,
    witness: Witness,
}

/// The operations of `ops` as the history cut at `cut` sees them.
fn cut_at(ops: &[PartOp], cut: u64) -> Vec<PartOp> {
    ops.iter()
        .filter(|o| o.call <= cut)
        .filter_map(|o| match o.ret {
            Some(ret) if ret > cut => o.op.without_outputs().map(|op| PartOp {
                ret: None,
                op,
                ..o.clone()
            }),
            _ => Some(o.clone()),
        })
        .collect()
}

/// Tries `candidate`; returns the confirmation if still not linearizable.
/// `None` with `meter` exhausted means "unknown".
fn confirm(candidate: Vec<PartOp>, values: &mut Values, meter: &mut Meter) -> Option<Confirmed> {
    match search(&candidate, values, meter) {
        SearchResult::Violation(witness) => Some(Confirmed {
            ops: candidate,
            witness,
        }),
        SearchResult::Linearizable | SearchResult::Exhausted => None,
    }
}

fn shrink(mut best: Confirmed, values: &mut Values, meter: &mut Meter) -> (Confirmed, Option<u64>, Option<usize>) {
    // 1. Cut at the earliest return time that still fails.
    let mut cuts: Vec<u64> = best.ops.iter().filter_map(|o| o.ret).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut cut = None;
    if cuts.len() > 1 {
        let (mut lo, mut hi) = (0, cuts.len() - 1);
        let full = best.ops.clone();
        while lo < hi && !meter.is_exhausted() {
            let mid = lo + (hi - lo) / 2;
            match confirm(cut_at(&full, cuts[mid]), values, meter) {
                Some(found) => {
                    best = found;
                    cut = Some(cuts[mid]);
                    hi = mid;
                }
                None if meter.is_exhausted() => break,
                None => lo = mid + 1,
            }
        }
    }

    // 2. Start at the latest isolated write that still leaves a violation.
    let barriers = barriers(&best.ops);
    let mut barrier_event = None;
    if !barriers.is_empty() {
        let full = best.ops.clone();
        // Later barriers give smaller histories; failing is monotone (see
        // `after_barrier`), so binary-search for the latest failing one.
        let (mut lo, mut hi) = (0, barriers.len());
        while lo < hi && !meter.is_exhausted() {
            let mid = lo + (hi - lo) / 2;
            match confirm(after_barrier(&full, barriers[mid]), values, meter) {
                Some(found) => {
                    best = found;
                    barrier_event = Some(full[barriers[mid]].event);
                    lo = mid + 1;
                }
                None if meter.is_exhausted() => break,
                None => hi = mid,
            }
        }
    }

    // 3. Drop read-only completed operations, in halving chunks.
    let mut chunk = best.ops.len().div_ceil(2);
    while chunk >= 1 && !meter.is_exhausted() {
        let mut start = 0;
        while !meter.is_exhausted() {
            let removable: Vec<usize> = (0..best.ops.len()).filter(|&i| best.ops[i].op.is_read_only()).collect();
            if start >= removable.len() {
                break;
            }
            let end = (start + chunk).min(removable.len());
            let drop = &removable[start..end];
            let candidate: Vec<PartOp> = (0..best.ops.len())
                .filter(|i| drop.binary_search(i).is_err())
                .map(|i| best.ops[i].clone())
                .collect();
            match confirm(candidate, values, meter) {
                // Removed: the same `start` now names the next chunk.
                Some(found) => best = found,
                None => start = end,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    // 4. Prune what is prunable as it is (operations the cut made
    //    `unknown`), then relax completed writes to `unknown` one at a time,
    //    keeping a relaxation only when it lets that write be pruned.
    let mut candidate = best.ops.clone();
    if prune_unobserved_writes(&mut candidate) > 0 {
        if let Some(found) = confirm(candidate, values, meter) {
            best = found;
        }
    }
    let mut next = 0;
    while !meter.is_exhausted() {
        let writes: Vec<usize> = (0..best.ops.len())
            .filter(|&i| {
                best.ops[i].ret.is_some()
                    && matches!(
                        best.ops[i].op,
                        RegisterOp::Put { .. }
                            | RegisterOp::Cas {
                                succeeded: Some(true),
                                ..
                            }
                    )
            })
            .collect();
        let Some(&w) = writes.get(next) else {
            break;
        };
        // The starting write stands for the value everything after it
        // sees; dropping it would leave an artificial initial value.
        if Some(best.ops[w].event) == barrier_event {
            next += 1;
            continue;
        }
        let mut candidate = best.ops.clone();
        let relaxed = candidate[w].event;
        if let Some(op) = candidate[w].op.without_outputs() {
            candidate[w] = PartOp {
                ret: None,
                op,
                ..candidate[w].clone()
            };
        }
        prune_unobserved_writes(&mut candidate);
        if candidate.iter().any(|o| o.event == relaxed) {
            next += 1;
            continue;
        }
        match confirm(candidate, values, meter) {
            // The write is gone, so `next` now names the following one.
            Some(found) => best = found,
            None => next += 1,
        }
    }
    (best, cut, barrier_event)
}

/// The completed writes that overlap no other completed operation, by
/// return time; as indices into `ops`.
fn barriers(ops: &[PartOp]) -> Vec<usize> {
    let mut definite: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_some()).collect();
    definite.sort_by_key(|&i| (ops[i].call, i));
    let ret = |i: usize| ops[i].ret.unwrap_or(u64::MAX);
    let mut found = Vec::new();
    let mut max_ret_before: Option<u64> = None;
    for (k, &i) in definite.iter().enumerate() {
        let overlaps_earlier = max_ret_before.is_some_and(|r| r >= ops[i].call);
        let overlaps_later = definite.get(k + 1).is_some_and(|&j| ops[j].call <= ret(i));
        let writes = matches!(
            ops[i].op,
            RegisterOp::Put { .. }
                | RegisterOp::Cas {
                    succeeded: Some(true),
                    ..
                }
                | RegisterOp::Delete {
                    deleted: Some(1) | None
                }
        );
        if writes && !overlaps_earlier && !overlaps_later && ret(i) != u64::MAX {
            found.push(i);
        }
        max_ret_before = Some(max_ret_before.map_or(ret(i), |r| r.max(ret(i))));
    }
    found.sort_by_key(|&i| ret(i));
    found
}

/// The history from barrier `b` on: `b` itself (as the plain write of the
/// state it leaves), the completed operations invoked after it returned,
/// and every `unknown` operation.
///
/// # Correctness
///
/// No completed operation overlaps `b`, so in any linearization `L` of
/// `ops` the completed operations invoked after `b` returned come after `b`,
/// the others before it, and the state right after `b` is what `b` writes.
/// The part of `L` from `b` on is therefore a linearization of this history
/// (unknown operations are optional). So if this history is not
/// linearizable, neither is `ops`; and applied to a later barrier inside it,
/// the same argument shows failing is monotone in the barrier's time.
fn after_barrier(ops: &[PartOp], b: usize) -> Vec<PartOp> {
    let barrier_ret = ops[b].ret.unwrap_or(u64::MAX);
    let mut first = ops[b].clone();
    first.op = match &first.op {
        RegisterOp::Cas { new, .. } => RegisterOp::Put { value: *new },
        RegisterOp::Delete { .. } => RegisterOp::Delete { deleted: None },
        other => other.clone(),
    };
    let mut out = vec![first];
    out.extend(
        ops.iter()
            .enumerate()
            .filter(|&(i, o)| i != b && (o.ret.is_none() || o.call > barrier_ret))
            .map(|(_, o)| o.clone()),
    );
    out
}

/// A counterexample from a classic shape in [`crate::patterns`], if the
/// key's history has one. Cheap (no search of the whole key), so also used
/// to prove a violation when the full search ran out of budget.
pub(crate) fn from_pattern(part: &Partition, events: &[HistoryEvent]) -> Option<Counterexample> {
    let pattern = patterns::find(part, events)?;
    let ops: Vec<PartOp> = pattern.ops.iter().map(|&i| part.ops[i].clone()).collect();
    // The pattern proves the violation by itself; the search only supplies
    // the witness to render (and double-checks).
    let mut values = part.values.clone();
    let mut meter = Meter::new(None, None);
    let found = confirm(ops, &mut values, &mut meter)?;
    Some(render(
        part,
        found,
        None,
        None,
        Some(pattern.explanation),
        &values,
        events,
    ))
}

/// Builds the counterexample for a non-linearizable partition.
pub(crate) fn build(
    part: &Partition,
    witness: Witness,
    events: &[HistoryEvent],
    allowance: Option<Duration>,
    max_steps: Option<u64>,
) -> Counterexample {
    let mut values = part.values.clone();
    let initial = Confirmed {
        ops: part.ops.clone(),
        witness,
    };
    let (best, cut, start) = match allowance {
        Some(allowance) => {
            let mut meter = Meter::new(Some(Instant::now() + allowance), max_steps);
            shrink(initial, &mut values, &mut meter)
        }
        None => (initial, None, None),
    };
    render(part, best, cut, start, None, &values, events)
}

fn render(
    part: &Partition,
    best: Confirmed,
    cut: Option<u64>,
    start: Option<usize>,
    explanation: Option<String>,
    values: &Values,
    events: &[HistoryEvent],
) -> Counterexample {
    let Confirmed { mut ops, witness } = best;
    let id = |o: &PartOp| events[o.event].id;
    let prefix: Vec<u64> = witness.prefix.iter().map(|&i| id(&ops[i])).collect();
    let blocked = ops[witness.blocked].clone();
    let blocked_ret = blocked.ret.unwrap_or(u64::MAX);
    let mut in_prefix = vec![false; ops.len()];
    for &i in &witness.prefix {
        in_prefix[i] = true;
    }
    let mut concurrent: Vec<&PartOp> = (0..ops.len())
        .filter(|&i| !in_prefix[i] && i != witness.blocked && ops[i].call <= blocked_ret)
        .map(|i| &ops[i])
        .collect();
    concurrent.sort_by_key(|o| (o.call, id(o)));
    let concurrent: Vec<u64> = concurrent.into_iter().map(id).collect();
    let value_after = values.get(witness.state_after).map(str::to_owned);

    ops.sort_by_key(|o| (o.call, id(o)));
    let mut text = vec![format!(
        "key {:?}: these {} operation(s) (of {} searched on the key) admit no linearization:",
        part.key,
        ops.len(),
        part.ops.len()
    )];
    for o in &ops {
        let event = &events[o.event];
        let mut line = format!("  {}", describe_event(event));
        if o.ret.is_none() && event.outcome == crate::history::Outcome::Ok {
            line.push_str("   (still running at the cut: outcome treated as unknown)");
        }
        text.push(line);
    }
    if let Some(t) = cut {
        text.push(format!(
            "(history cut at t={}: operations invoked later are left out)",
            format_ns(t)
        ));
    }
    if let Some(e) = start {
        text.push(format!(
            "(starting from #{}: no other completed operation overlaps it, so it fixes the value for \
             what follows; completed operations before it are left out)",
            events[e].id
        ));
    }
    if let Some(why) = &explanation {
        text.push(format!("why: {why}"));
    } else {
        let shown_value = value_after.as_deref().unwrap_or("(absent)");
        text.push(if prefix.is_empty() {
            format!(
                "deepest the search got: no operation could be linearized first; {} = {shown_value}",
                part.key
            )
        } else {
            format!(
                "deepest the search got: linearized {} op(s) ({}), leaving {} = {shown_value}",
                prefix.len(),
                tail_list(&prefix),
                part.key
            )
        });
        let returned = blocked
            .ret
            .filter(|&r| r != u64::MAX)
            .map_or_else(|| "the end".to_owned(), |r| format!("t={}", format_ns(r)));
        text.push(format!(
            "stuck at: {}: it returned at {returned}, so it must take effect by then, but no \
             order of the operations before that allows it",
            describe_event(&events[blocked.event])
        ));
        if !concurrent.is_empty() {
            text.push(format!(
                "not yet placed and invoked before it returned: {}",
                id_list(&concurrent)
            ));
        }
    }
    Counterexample {
        key: part.key.clone(),
        original_ops: part.ops.len(),
        ops: ops.iter().map(id).collect(),
        cut_at_ns: cut,
        starts_at_op: start.map(|e| events[e].id),
        explanation,
        linearized_prefix: prefix,
        value_after_prefix: value_after,
        blocked_op: id(&blocked),
        concurrent_ops: concurrent,
        text,
    }
}

/// Lists ids, eliding the start of long lists (the end matters most).
fn tail_list(ids: &[u64]) -> String {
    const SHOWN: usize = 12;
    let tail: Vec<String> = ids
        .iter()
        .skip(ids.len().saturating_sub(SHOWN))
        .map(|id| format!("#{id}"))
        .collect();
    if ids.len() > SHOWN {
        format!("... {} earlier, {}", ids.len() - SHOWN, tail.join(", "))
    } else {
        tail.join(", ")
    }
}
