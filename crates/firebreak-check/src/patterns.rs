//! Recognition of classic two- and three-operation violations in one key's
//! history, used to give the shortest possible counterexample when the
//! general shrinking leaves more operations than needed.
//!
//! A *sure write* is a completed operation that certainly sets the value:
//! a put, a cas reported as succeeded, or any delete (a delete always leaves
//! the key absent). A value's *writers* are the puts and the cas operations with that
//! new value that are not reported as failed, whatever their outcome.
//!
//! # Correctness
//!
//! Each pattern is a proof that **no** linearization of the whole key
//! history exists, not just of the operations shown:
//!
//! - **Overwritten read**: read `R` of value `v` whose only writer is `W`;
//!   evidence `E` that `W` took effect: `W` itself if it completed, or
//!   another completed operation that saw `v` (so `W` precedes it); and a
//!   sure write `X` (not `W`) invoked after `E` returned and returning before
//!   `R` was invoked. In any linearization `W <= E < X < R`, `X` leaves a
//!   value other than `v` (`v` has one writer), and nothing after `X` can
//!   write `v` again, so `R` cannot see `v`.
//! - **Read from the future**: read `R` of `v` returned before `v`'s only
//!   writer was invoked. (The key starts absent, so `v` cannot be initial.)
//! - **Lost delete-free write**: read `R` saw the key absent, a sure write
//!   `X` of a value returned before `R` was invoked, and no delete (of any
//!   outcome but `fail`) could take effect between them: every delete either
//!   returned before `X` was invoked or was invoked after `R` returned.
//!   Only a delete makes a key absent again.
//!
//! Ties in time count as concurrent, as everywhere in this crate. Keys with
//! appends are not matched against the first two patterns (a concatenation
//! can recreate a value without any writer of it).

use std::collections::HashMap;

use crate::history::HistoryEvent;
use crate::model::{PartOp, Partition, RegisterOp, ValueId, ABSENT};

/// A small violation: operation indices into the partition, and why.
pub(crate) struct Pattern {
    pub(crate) ops: Vec<usize>,
    pub(crate) explanation: String,
}

/// What a completed operation certainly leaves behind, if it certainly
/// writes.
fn sure_write(op: &PartOp) -> Option<ValueId> {
    op.ret?;
    match op.op {
        RegisterOp::Put { value } => Some(value),
        RegisterOp::Cas {
            new,
            succeeded: Some(true),
            ..
        } => Some(new),
        RegisterOp::Delete { .. } => Some(ABSENT),
        _ => None,
    }
}

/// The value an operation might write (puts and not-failed cas ops).
fn may_write(op: &PartOp) -> Option<ValueId> {
    match op.op {
        RegisterOp::Put { value } => Some(value),
        RegisterOp::Cas { new, succeeded, .. } if succeeded != Some(false) => Some(new),
        _ => None,
    }
}

/// Finds the earliest-returning read that fits a pattern.
pub(crate) fn find(part: &Partition, events: &[HistoryEvent]) -> Option<Pattern> {
    let ops = &part.ops;
    let ret = |i: usize| ops[i].ret.unwrap_or(u64::MAX);
    let show = |i: usize| format!("#{}", events[ops[i].event].id);
    let value = |v: ValueId| format!("{:?}", part.values.get(v).unwrap_or_default());

    let mut writers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    // Completed operations that saw each value: reads of it, and cas ops
    // reported as succeeded that expected it.
    let mut observers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(v) = may_write(op) {
            writers.entry(v).or_default().push(i);
        }
        if op.ret.is_some() {
            match op.op {
                RegisterOp::Read { observed: Some(v) }
                | RegisterOp::Cas {
                    expected: v,
                    succeeded: Some(true),
                    ..
                } if v != ABSENT => observers.entry(v).or_default().push(i),
                _ => {}
            }
        }
    }

    // Sure writes sorted by call, with the earliest return from each index
    // on (for "overwritten read").
    let mut by_call: Vec<usize> = (0..ops.len()).filter(|&i| sure_write(&ops[i]).is_some()).collect();
    by_call.sort_by_key(|&i| (ops[i].call, i));
    let mut min_ret_from: Vec<(u64, usize)> = vec![(u64::MAX, usize::MAX); by_call.len() + 1];
    for k in (0..by_call.len()).rev() {
        let here = (ret(by_call[k]), by_call[k]);
        min_ret_from[k] = here.min(min_ret_from[k + 1]);
    }

    // Sure writes of a value sorted by return, with the latest call up to
    // each index (for "lost write").
    let mut valued_by_ret: Vec<usize> = (0..ops.len())
        .filter(|&i| sure_write(&ops[i]).is_some_and(|v| v != ABSENT))
        .collect();
    valued_by_ret.sort_by_key(|&i| (ret(i), i));
    let mut max_call_upto: Vec<(u64, usize)> = Vec::with_capacity(valued_by_ret.len());
    for &i in &valued_by_ret {
        let here = (ops[i].call, i);
        let best = max_call_upto.last().map_or(here, |&b: &(u64, usize)| b.max(here));
        max_call_upto.push(best);
    }
    // Deletes sorted by call, with the latest return up to each index.
    let mut deletes: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].op, RegisterOp::Delete { .. }))
        .collect();
    deletes.sort_by_key(|&i| (ops[i].call, i));
    let mut max_delete_ret_upto: Vec<u64> = Vec::with_capacity(deletes.len());
    for &d in &deletes {
        let best = max_delete_ret_upto.last().map_or(ret(d), |&b: &u64| b.max(ret(d)));
        max_delete_ret_upto.push(best);
    }

    // Appends build values no writer lists, so "only writer" means nothing.
    let has_appends = ops.iter().any(|o| matches!(o.op, RegisterOp::Append { .. }));
    let mut reads: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].ret.is_some() && matches!(ops[i].op, RegisterOp::Read { observed: Some(_) }))
        .collect();
    reads.sort_by_key(|&i| (ret(i), i));
    for r in reads {
        let RegisterOp::Read { observed: Some(v) } = ops[r].op else {
            continue;
        };
        if v != ABSENT {
            if has_appends {
                continue;
            }
            let [w] = writers.get(&v).map(Vec::as_slice).unwrap_or_default() else {
                continue;
            };
            let w = *w;
            if ops[w].call > ret(r) {
                return Some(Pattern {
                    ops: vec![w, r],
                    explanation: format!(
                        "{} read {}, but {}, the only write of that value, was invoked only after the read \
                         returned",
                        show(r),
                        value(v),
                        show(w)
                    ),
                });
            }
            // Evidence that `w` had taken effect: `w` itself if it
            // completed, or an earlier observer of `v`; the earliest return.
            let evidence = std::iter::once(w)
                .filter(|&i| ops[i].ret.is_some())
                .chain(observers.get(&v).into_iter().flatten().copied().filter(|&i| i != r))
                .min_by_key(|&i| (ret(i), i));
            let Some(e) = evidence else {
                continue;
            };
            let from = by_call.partition_point(|&i| ops[i].call <= ret(e));
            let (x_ret, x) = min_ret_from[from];
            if x != usize::MAX && x != w && x_ret < ops[r].call {
                let (ops_shown, explanation) = if e == w {
                    (
                        vec![w, x, r],
                        format!(
                            "{} read {}, which only {} writes; but {} overwrote it after {} returned and \
                             before {} was invoked",
                            show(r),
                            value(v),
                            show(w),
                            show(x),
                            show(w),
                            show(r)
                        ),
                    )
                } else {
                    (
                        vec![w, e, x, r],
                        format!(
                            "{} read {}, which only {} writes; {} had already seen it, and {} overwrote it \
                             after {} returned and before {} was invoked",
                            show(r),
                            value(v),
                            show(w),
                            show(e),
                            show(x),
                            show(e),
                            show(r)
                        ),
                    )
                };
                return Some(Pattern {
                    ops: ops_shown,
                    explanation,
                });
            }
        } else {
            let upto = valued_by_ret.partition_point(|&i| ret(i) < ops[r].call);
            let Some(&(x_call, x)) = upto.checked_sub(1).and_then(|k| max_call_upto.get(k)) else {
                continue;
            };
            let before_r = deletes.partition_point(|&d| ops[d].call <= ret(r));
            let delete_can_interleave = before_r > 0 && max_delete_ret_upto[before_r - 1] >= x_call;
            if !delete_can_interleave {
                return Some(Pattern {
                    ops: vec![x, r],
                    explanation: format!(
                        "{} found the key absent, but {} had written it before {} was invoked, and no \
                         delete can have run in between",
                        show(r),
                        show(x),
                        show(r)
                    ),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{Budget, Meter};
    use crate::model::Values;
    use crate::search::{search, SearchResult};

    /// Every pattern found must come from a history the (independently
    /// tested) search finds non-linearizable.
    #[test]
    fn patterns_only_fire_on_non_linearizable_histories() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut fired, mut total) = (0, 0);
        for _ in 0..20_000 {
            let mut values = Values::default();
            let ids: Vec<ValueId> = ["a", "b", "c", "d", "e", "f"]
                .iter()
                .map(|v| values.intern(v))
                .collect();
            let n = 2 + next(8) as usize;
            let ops: Vec<PartOp> = (0..n)
                .map(|event| {
                    let value = |k: u64| if k == 0 { ABSENT } else { ids[(k - 1) as usize] };
                    let op = match next(4) {
                        0 => RegisterOp::Put {
                            value: ids[next(6) as usize],
                        },
                        1 => RegisterOp::Read {
                            observed: Some(value(next(7))),
                        },
                        2 => RegisterOp::Cas {
                            expected: value(next(7)),
                            new: ids[next(6) as usize],
                            succeeded: [Some(true), Some(false), None][next(3) as usize],
                        },
                        _ => RegisterOp::Delete {
                            deleted: [Some(0), Some(1), None][next(3) as usize],
                        },
                    };
                    let call = next(30);
                    let ret = (next(5) != 0).then(|| call + next(10));
                    let op = if ret.is_none() {
                        op.without_outputs().unwrap_or(RegisterOp::Put { value: ids[0] })
                    } else {
                        op
                    };
                    PartOp { event, call, ret, op }
                })
                .collect();
            let part = Partition {
                key: "k".into(),
                ops,
                values,
                events: n,
                unknown: 0,
                dropped: 0,
                pruned: 0,
            };
            let events: Vec<HistoryEvent> = (0..n)
                .map(|i| {
                    HistoryEvent::invoked(i as u64, 0, None, crate::history::Operation::Get { key: "k".into() }, 0)
                })
                .collect();
            total += 1;
            if find(&part, &events).is_some() {
                fired += 1;
                let mut values = part.values.clone();
                let mut meter = Meter::start(&Budget::unlimited());
                let result = search(&part.ops, &mut values, &mut meter);
                assert!(matches!(result, SearchResult::Violation(_)), "{:#?}", part.ops);
            }
        }
        assert!(fired > 1000, "patterns fired only {fired} times of {total}");
    }
}
