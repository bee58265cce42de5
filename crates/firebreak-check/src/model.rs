//! The sequential specification the search checks against: one register per
//! key, and the translation of [`HistoryEvent`]s into per-key partitions of
//! search operations.
//!
//! A register holds `Option<String>` (absent or a value). Values are interned
//! per partition into [`ValueId`]s so the search compares and hashes small
//! integers rather than strings.
//!
//! # Correctness
//!
//! - Sequential semantics (one step of the register, state `s`):
//!   `put v` sets `s = v`; `get` is legal iff it returned `s`; `cas e n` is
//!   legal iff it reported `succeeded == (s == e)`, and sets `s = n` when the
//!   comparison holds; `delete` is legal iff it reported `deleted == 1` when
//!   `s` was present and `0` when absent, and sets `s = absent`;
//!   `append x` sets `s = s ++ x` (absent counts as empty, and an empty
//!   result is absent).
//! - An output that is not known (outcome `unknown`, or an `ok` event whose
//!   result lacks the field) is never used to reject a step: unknown outputs
//!   can only make the history *more* permissive, never produce a false FAIL.
//! - `fail` events are dropped (they certainly had no effect); `unknown`
//!   events have no return time (they may take effect at any time after
//!   invocation, or never); `unknown` reads are dropped entirely since they
//!   neither constrain nor change the state (likewise an `unknown` cas whose
//!   new value equals its expected value).
//! - An `unknown` write (put, or cas) of a value `v` is dropped when nothing
//!   could tell whether it happened (see [`prune_unobserved_writes`]); this
//!   preserves the verdict in both directions.
//! - Keys are checked independently. This is sound and complete because
//!   linearizability is local (Herlihy & Wing): a history is linearizable iff
//!   each per-object sub-history is, and every operation here touches one key.

use std::collections::{BTreeMap, HashMap};

use crate::history::{HistoryEvent, Operation, Outcome};

/// An interned register value; [`ABSENT`] is the absent key.
pub(crate) type ValueId = u32;

/// The state of a key that holds no value.
pub(crate) const ABSENT: ValueId = 0;

/// Interning table for the values of one partition.
#[derive(Debug, Default, Clone)]
pub(crate) struct Values {
    ids: HashMap<String, ValueId>,
    strings: Vec<String>,
}

impl Values {
    pub(crate) fn intern(&mut self, value: &str) -> ValueId {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.insert(value.to_owned())
    }

    fn intern_owned(&mut self, value: String) -> ValueId {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        self.insert(value)
    }

    fn insert(&mut self, value: String) -> ValueId {
        self.strings.push(value.clone());
        let id = ValueId::try_from(self.strings.len()).expect("fewer than 2^32 distinct values");
        self.ids.insert(value, id);
        id
    }

    fn intern_option(&mut self, value: Option<&str>) -> ValueId {
        value.map_or(ABSENT, |v| self.intern(v))
    }

    /// The value behind an id (`None` for [`ABSENT`]).
    pub(crate) fn get(&self, id: ValueId) -> Option<&str> {
        if id == ABSENT {
            None
        } else {
            self.strings.get(id as usize - 1).map(String::as_str)
        }
    }
}

/// One operation as the register model sees it: inputs plus the outputs to
/// verify (`None` = not known, accept anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegisterOp {
    Put {
        value: ValueId,
    },
    Read {
        observed: Option<ValueId>,
    },
    Cas {
        expected: ValueId,
        new: ValueId,
        succeeded: Option<bool>,
    },
    Delete {
        deleted: Option<u64>,
    },
    Append {
        suffix: String,
    },
}

impl RegisterOp {
    /// Applies the operation to `state`: the next state, or `None` if the
    /// recorded outputs are impossible in `state`.
    pub(crate) fn step(&self, state: ValueId, values: &mut Values) -> Option<ValueId> {
        match self {
            RegisterOp::Put { value } => Some(*value),
            RegisterOp::Read { observed } => match observed {
                Some(seen) if *seen != state => None,
                _ => Some(state),
            },
            RegisterOp::Cas {
                expected,
                new,
                succeeded,
            } => {
                let holds = state == *expected;
                match succeeded {
                    Some(reported) if *reported != holds => None,
                    _ => Some(if holds { *new } else { state }),
                }
            }
            RegisterOp::Delete { deleted } => {
                let existed = u64::from(state != ABSENT);
                match deleted {
                    Some(reported) if *reported != existed => None,
                    _ => Some(ABSENT),
                }
            }
            RegisterOp::Append { suffix } => {
                let mut next = values.get(state).unwrap_or("").to_owned();
                next.push_str(suffix);
                if next.is_empty() {
                    Some(ABSENT)
                } else {
                    Some(values.intern_owned(next))
                }
            }
        }
    }

    /// Whether every legal application leaves the state unchanged (a read,
    /// a cas reported as not succeeded, a delete reported as deleting
    /// nothing). Removing such an operation from a linearizable history
    /// leaves it linearizable.
    pub(crate) fn is_read_only(&self) -> bool {
        match self {
            RegisterOp::Read { .. } | RegisterOp::Delete { deleted: Some(0) } => true,
            RegisterOp::Cas {
                expected,
                new,
                succeeded,
            } => expected == new || *succeeded == Some(false),
            _ => false,
        }
    }

    /// The same operation with its outputs forgotten, as for an `unknown`
    /// outcome; `None` for operations that then neither constrain nor change
    /// anything (reads, and a cas that writes back the value it expects).
    pub(crate) fn without_outputs(&self) -> Option<RegisterOp> {
        match self {
            RegisterOp::Read { .. } => None,
            RegisterOp::Cas { expected, new, .. } if expected == new => None,
            RegisterOp::Cas { expected, new, .. } => Some(RegisterOp::Cas {
                expected: *expected,
                new: *new,
                succeeded: None,
            }),
            RegisterOp::Delete { .. } => Some(RegisterOp::Delete { deleted: None }),
            other => Some(other.clone()),
        }
    }
}

/// One operation of a partition, ready for the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartOp {
    /// Index of the source event in the checked slice.
    pub(crate) event: usize,
    /// Invocation time.
    pub(crate) call: u64,
    /// Return time for operations that must be linearized; `None` for
    /// operations that may take effect at any time after `call`, or never.
    pub(crate) ret: Option<u64>,
    /// The model operation.
    pub(crate) op: RegisterOp,
}

/// All searchable operations on one key.
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub(crate) key: String,
    pub(crate) ops: Vec<PartOp>,
    pub(crate) values: Values,
    /// Events on this key in the input (including dropped ones).
    pub(crate) events: usize,
    /// `unknown`-outcome operations kept in the search.
    pub(crate) unknown: usize,
    /// Operations dropped because their outcome was `fail` (or an unknown
    /// read).
    pub(crate) dropped: usize,
    /// `unknown` writes dropped by [`prune_unobserved_writes`].
    pub(crate) pruned: usize,
}

/// Drops `unknown` writes whose effect no operation could observe, and
/// returns how many were dropped.
///
/// # Correctness
///
/// An `unknown` write `W` of value `v` (a put, or a cas with new value `v`)
/// invoked at `c` is dropped when:
///
/// 1. no other operation writes `v`, no completed read returned `v`, and no
///    cas (of any outcome) expects `v`; and
/// 2. every operation that could be linearized after `W` (those with no
///    return, or returning at or after `c`) is harmless: not an append, not a
///    delete reported as deleting one key, and not a completed cas whose
///    reported outcome is anything but `succeeded: true`.
///
/// Then the history is linearizable with `W` iff it is without it. Without
/// `W` is plainly a linearization with `W` never taking effect. Conversely,
/// given a linearization `L` with `W`, let `p` be the state before `W` and
/// `S` the operations after `W` while the state is still `v`. By (1) none of
/// them reads `v` or succeeds comparing against `v`; by (2) none is a
/// completed failed cas, a delete that must find a value, or an append. So
/// `S` holds only `unknown` cas ops that had no effect (drop them too, as
/// never happening) and reads whose result was not recorded, and `S` ends at the end of `L` or at a
/// put or a delete whose result does not depend on the state, which yields
/// the same state after it whether the state before was `v` or `p`. Removing
/// `W` (and those `unknown` cas ops) from `L` leaves a linearization.
/// Removing several such writes one at a time keeps (1) and (2) true.
pub(crate) fn prune_unobserved_writes(ops: &mut Vec<PartOp>) -> usize {
    let mut writers: HashMap<ValueId, usize> = HashMap::new();
    let mut observed: Vec<ValueId> = Vec::new();
    // Latest time at which an operation that (2) forbids could still follow.
    let mut blocking_until: Option<u64> = None;
    for op in ops.iter() {
        let blocks = match &op.op {
            RegisterOp::Put { value } => {
                *writers.entry(*value).or_default() += 1;
                false
            }
            RegisterOp::Read { observed: seen } => {
                observed.extend(seen.filter(|_| op.ret.is_some()));
                false
            }
            RegisterOp::Cas {
                expected,
                new,
                succeeded,
            } => {
                *writers.entry(*new).or_default() += 1;
                observed.push(*expected);
                op.ret.is_some() && *succeeded != Some(true)
            }
            RegisterOp::Delete { deleted } => *deleted == Some(1),
            RegisterOp::Append { .. } => true,
        };
        if blocks {
            let until = op.ret.unwrap_or(u64::MAX);
            blocking_until = Some(blocking_until.map_or(until, |b| b.max(until)));
        }
    }
    observed.sort_unstable();
    let before = ops.len();
    ops.retain(|op| {
        let written = match op.op {
            RegisterOp::Put { value } => value,
            RegisterOp::Cas { new, .. } => new,
            _ => return true,
        };
        let prunable = op.ret.is_none()
            && writers.get(&written) == Some(&1)
            && observed.binary_search(&written).is_err()
            && blocking_until.is_none_or_before(op.call);
        !prunable
    });
    before - ops.len()
}

trait BeforeCall {
    fn is_none_or_before(&self, call: u64) -> bool;
}

impl BeforeCall for Option<u64> {
    fn is_none_or_before(&self, call: u64) -> bool {
        match self {
            Some(until) => *until < call,
            None => true,
        }
    }
}

/// Splits `events` into per-key partitions (sorted by key). Problems with
/// individual events that the checker can work around are appended to
/// `warnings`.
pub(crate) fn partition(events: &[HistoryEvent], warnings: &mut Vec<String>) -> Vec<Partition> {
    let mut by_key: BTreeMap<&str, Partition> = BTreeMap::new();
    let mut missing_outputs = Vec::new();
    let mut missing_completion = Vec::new();
    let mut reversed_times = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let part = by_key.entry(event.key()).or_insert_with(|| Partition {
            key: event.key().to_owned(),
            ops: Vec::new(),
            values: Values::default(),
            events: 0,
            unknown: 0,
            dropped: 0,
            pruned: 0,
        });
        part.events += 1;
        let result = event.result.as_ref();
        let values = &mut part.values;
        let mut output_missing = false;
        let op = match &event.op {
            Operation::Put { value, .. } => RegisterOp::Put {
                value: values.intern(value),
            },
            Operation::Get { .. } => {
                let observed = result
                    .and_then(|r| r.value.as_ref())
                    .map(|v| values.intern_option(v.as_deref()));
                output_missing = observed.is_none();
                RegisterOp::Read { observed }
            }
            Operation::Cas { expected, new, .. } => {
                let succeeded = result.and_then(|r| r.succeeded);
                output_missing = succeeded.is_none();
                RegisterOp::Cas {
                    expected: values.intern_option(expected.as_deref()),
                    new: values.intern(new),
                    succeeded,
                }
            }
            Operation::Delete { .. } => {
                let deleted = result.and_then(|r| r.deleted);
                output_missing = deleted.is_none();
                RegisterOp::Delete { deleted }
            }
            Operation::Append { value, .. } => RegisterOp::Append { suffix: value.clone() },
        };
        match event.outcome {
            Outcome::Fail => part.dropped += 1,
            Outcome::Unknown => match op.without_outputs() {
                Some(op) => {
                    part.unknown += 1;
                    part.ops.push(PartOp {
                        event: index,
                        call: event.invoke_ns,
                        ret: None,
                        op,
                    });
                }
                None => part.dropped += 1,
            },
            Outcome::Ok => {
                if output_missing {
                    missing_outputs.push(event.id);
                }
                let ret = match event.complete_ns {
                    Some(t) if t < event.invoke_ns => {
                        reversed_times.push(event.id);
                        event.invoke_ns
                    }
                    Some(t) => t,
                    None => {
                        missing_completion.push(event.id);
                        u64::MAX
                    }
                };
                part.ops.push(PartOp {
                    event: index,
                    call: event.invoke_ns,
                    ret: Some(ret),
                    op,
                });
            }
        }
    }
    for part in by_key.values_mut() {
        part.pruned = prune_unobserved_writes(&mut part.ops);
        part.unknown -= part.pruned;
    }
    let mut note = |ids: Vec<u64>, what: &str| {
        if !ids.is_empty() {
            warnings.push(format!("{} ok operation(s) {what}: {}", ids.len(), id_list(&ids)));
        }
    };
    note(
        missing_outputs,
        "lack the result field needed to check them (their output is not checked)",
    );
    note(
        missing_completion,
        "have no complete_ns (treated as completing after everything else)",
    );
    note(
        reversed_times,
        "complete before they are invoked (complete_ns taken as invoke_ns)",
    );
    by_key.into_values().collect()
}

/// Renders up to ten ids, then a count of the rest.
pub(crate) fn id_list(ids: &[u64]) -> String {
    const SHOWN: usize = 10;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(|id| format!("#{id}"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_steps() {
        let mut values = Values::default();
        let a = values.intern("a");
        let b = values.intern("b");
        assert_eq!(RegisterOp::Put { value: a }.step(ABSENT, &mut values), Some(a));
        let read_a = RegisterOp::Read { observed: Some(a) };
        assert_eq!(read_a.step(a, &mut values), Some(a));
        assert_eq!(read_a.step(b, &mut values), None);
        let cas = |succeeded| RegisterOp::Cas {
            expected: a,
            new: b,
            succeeded,
        };
        assert_eq!(cas(Some(true)).step(a, &mut values), Some(b));
        assert_eq!(cas(Some(true)).step(b, &mut values), None);
        assert_eq!(cas(Some(false)).step(a, &mut values), None);
        assert_eq!(cas(Some(false)).step(ABSENT, &mut values), Some(ABSENT));
        assert_eq!(cas(None).step(a, &mut values), Some(b));
        assert_eq!(cas(None).step(b, &mut values), Some(b));
        let delete = |deleted| RegisterOp::Delete { deleted };
        assert_eq!(delete(Some(1)).step(a, &mut values), Some(ABSENT));
        assert_eq!(delete(Some(1)).step(ABSENT, &mut values), None);
        assert_eq!(delete(Some(0)).step(ABSENT, &mut values), Some(ABSENT));
        assert_eq!(delete(Some(0)).step(a, &mut values), None);
    }

    #[test]
    fn append_concatenates_and_interns() {
        let mut values = Values::default();
        let x = RegisterOp::Append { suffix: "x".into() };
        let y = RegisterOp::Append { suffix: "y".into() };
        let s1 = x.step(ABSENT, &mut values).unwrap();
        let s2 = y.step(s1, &mut values).unwrap();
        assert_eq!(values.get(s2), Some("xy"));
        assert_eq!(values.intern("xy"), s2);
        let empty = RegisterOp::Append { suffix: String::new() };
        assert_eq!(empty.step(ABSENT, &mut values), Some(ABSENT));
    }
}
