//! The linearizability search for one partition (one key): Wing & Gong's
//! backtracking search over a linked list of call/return entries, with
//! Lowe's memoisation of `(set of linearized operations, model state)`.
//!
//! The entries of all operations are kept in a doubly-linked list ordered
//! by time. The search walks the list from the front: at a call entry it
//! tries to linearize that operation next (apply it to the model; if legal
//! and the resulting `(linearized set, state)` configuration was never seen,
//! remove the operation's entries from the list and restart from the front);
//! at a return entry it has found an operation that had to be linearized
//! already but was not, so it undoes the most recent choice and resumes the
//! scan just after that choice.
//!
//! # Correctness
//!
//! - A configuration is cached only when first reached, and the outcome of
//!   exploring from a configuration depends only on the configuration (the
//!   remaining list is determined by the linearized set). So skipping a
//!   cached configuration never loses a linearization (Lowe, 2017).
//! - Entries at equal times are ordered calls before returns, which treats
//!   the operations as concurrent: equal timestamps never manufacture a
//!   real-time order that the clocks did not show.
//! - Operations without a return entry (`unknown` outcome) may be linearized
//!   anywhere after their call, or not at all. The search therefore succeeds
//!   as soon as every operation *with* a return entry is linearized: the
//!   remaining ones are simply never linearized.
//! - A search that runs out of budget returns [`SearchResult::Exhausted`],
//!   never [`SearchResult::Linearizable`]. Exceeding [`MEMO_LIMIT_BYTES`] of
//!   memoised configurations counts as running out of budget.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::budget::Meter;
use crate::model::{PartOp, ValueId, Values, ABSENT};

/// Evidence that a partition is not linearizable: the deepest point the
/// search reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Witness {
    /// Operations (indices into the searched slice) linearized, in order:
    /// the longest linearizable prefix found.
    pub(crate) prefix: Vec<usize>,
    /// The model state after `prefix`.
    pub(crate) state_after: ValueId,
    /// The operation whose return was reached without it being linearizable
    /// after `prefix`.
    pub(crate) blocked: usize,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SearchResult {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists.
    Violation(Witness),
    /// The budget ran out first; nothing is known.
    Exhausted,
}

/// Memory the memo of one search may use before the search gives up
/// (reported as an exhausted budget, i.e. UNKNOWN).
pub(crate) const MEMO_LIMIT_BYTES: usize = 512 << 20;

const HEAD: usize = 0;
const TAIL: usize = 1;
const NONE: usize = usize::MAX;

/// The doubly-linked list ("dancing links") of call and return entries in
/// time order; `unknown` operations have only a call entry.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each node: the operation index.
    op: Vec<usize>,
    /// For each node: whether it is a call entry.
    is_call: Vec<bool>,
    /// For each operation: its call node and return node (or `NONE`).
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
}

impl Entries {
    fn new(ops: &[PartOp]) -> Self {
        // (time, 0 = call / 1 = return, op): calls sort before returns at
        // equal times.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, 0, i));
            if let Some(ret) = op.ret {
                order.push((ret.max(op.call), 1, i));
            }
        }
        order.sort_unstable();
        let nodes = order.len() + 2;
        let mut entries = Entries {
            next: vec![NONE; nodes],
            prev: vec![NONE; nodes],
            op: vec![NONE; nodes],
            is_call: vec![false; nodes],
            call_node: vec![NONE; ops.len()],
            ret_node: vec![NONE; ops.len()],
        };
        let mut last = HEAD;
        for (k, &(_, kind, i)) in order.iter().enumerate() {
            let node = k + 2;
            entries.op[node] = i;
            entries.is_call[node] = kind == 0;
            if kind == 0 {
                entries.call_node[i] = node;
            } else {
                entries.ret_node[i] = node;
            }
            entries.next[last] = node;
            entries.prev[node] = last;
            last = node;
        }
        entries.next[last] = TAIL;
        entries.prev[TAIL] = last;
        entries
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        self.prev[n] = node;
    }

    /// Removes an operation's entries (call first, then return).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        if self.ret_node[op] != NONE {
            self.unlink(self.ret_node[op]);
        }
    }

    /// Undoes [`Entries::lift`] (in reverse order).
    fn unlift(&mut self, op: usize) {
        if self.ret_node[op] != NONE {
            self.relink(self.ret_node[op]);
        }
        self.relink(self.call_node[op]);
    }
}

/// A hasher for keys that are already well-mixed `u64`s.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A visited configuration: the linearized set as a bitset, and the state.
type Configuration = (Box<[u64]>, ValueId);

/// The memo of visited configurations, keyed by an incrementally maintained
/// Zobrist hash of the linearized set combined with the state.
struct Memo {
    zobrist: Vec<u64>,
    seen: HashMap<u64, Vec<Configuration>, BuildHasherDefault<PassThrough>>,
    /// Approximate bytes held.
    bytes: usize,
}

impl Memo {
    fn new(n: usize) -> Self {
        Memo {
            zobrist: (0..n as u64).map(|i| splitmix64(i ^ 0x5eed)).collect(),
            seen: HashMap::default(),
            bytes: 0,
        }
    }

    /// Records `(bits, state)`; returns whether it was new.
    fn insert(&mut self, set_hash: u64, bits: &[u64], state: ValueId) -> bool {
        let key = set_hash ^ splitmix64(u64::from(state).wrapping_add(0xa076_1d64_78bd_642f));
        let bucket = self.seen.entry(key).or_default();
        if bucket.iter().any(|(b, s)| *s == state && **b == *bits) {
            return false;
        }
        bucket.push((bits.into(), state));
        self.bytes += bits.len() * 8 + 48;
        true
    }
}

/// Where the scan for the next operation to linearize stands.
#[derive(Clone, Copy)]
enum Cursor {
    /// At a new configuration: first look for a read-only operation to
    /// place without branching.
    Fresh,
    /// At this node of the entry list.
    Main(usize),
    /// No alternatives left at this configuration.
    Done,
}

/// Searches for a linearization of `ops`, all on one register that starts
/// absent.
///
/// At each configuration the candidates are the operations invoked before
/// the first pending return, tried in order of invocation.
///
/// # Correctness
///
/// Read-only step: if a candidate that is read-only (see
/// [`crate::model::RegisterOp::is_read_only`]) is legal in the current
/// state, it is placed next *without trying alternatives*. This loses
/// nothing: take any completion of the current configuration; the read-only
/// operation appears in it (it is completed); moving it to the front keeps
/// every state (it changes none, and is legal now), and respects real time,
/// because no pending completed operation returned before it was invoked
/// (else that return would come before its call in the list, and it would
/// not be a candidate). So the configuration has a completion iff the one
/// with the read-only operation placed has.
pub(crate) fn search(ops: &[PartOp], values: &mut Values, meter: &mut Meter) -> SearchResult {
    let mut remaining = ops.iter().filter(|o| o.ret.is_some()).count();
    if remaining == 0 {
        return SearchResult::Linearizable;
    }
    let mut entries = Entries::new(ops);
    let mut memo = Memo::new(ops.len());
    let mut bits = vec![0u64; ops.len().div_ceil(64)];
    let mut set_hash = 0u64;
    let mut state = ABSENT;
    // (operation, state before it, where to resume scanning on backtrack)
    let mut stack: Vec<(usize, ValueId, Cursor)> = Vec::new();
    let mut best: Option<Witness> = None;
    let mut cursor = Cursor::Fresh;
    loop {
        if !meter.tick() {
            return SearchResult::Exhausted;
        }
        let (node, resume) = match cursor {
            Cursor::Fresh => {
                let mut node = entries.next[HEAD];
                let mut forced = None;
                while node != TAIL && entries.is_call[node] {
                    let op = &ops[entries.op[node]].op;
                    if op.is_read_only() && op.step(state, values) == Some(state) {
                        forced = Some(node);
                        break;
                    }
                    node = entries.next[node];
                }
                match forced {
                    Some(node) => (node, Cursor::Done),
                    None => {
                        cursor = Cursor::Main(entries.next[HEAD]);
                        continue;
                    }
                }
            }
            Cursor::Main(node) if node != TAIL && entries.is_call[node] => (node, Cursor::Main(entries.next[node])),
            Cursor::Main(node) => {
                // The first pending return: the operation had to be
                // linearized by now. Record how far we got and backtrack.
                let deeper = match &best {
                    Some(b) => stack.len() > b.prefix.len(),
                    None => true,
                };
                if node != TAIL && deeper {
                    best = Some(Witness {
                        prefix: stack.iter().map(|&(op, _, _)| op).collect(),
                        state_after: state,
                        blocked: entries.op[node],
                    });
                }
                cursor = Cursor::Done;
                continue;
            }
            Cursor::Done => {
                // Nothing more to try here: undo the latest choice.
                let Some((op, before, resume)) = stack.pop() else {
                    return match best {
                        Some(witness) => SearchResult::Violation(witness),
                        // Unreachable: a return entry is always reached
                        // first. Report conservatively.
                        None => SearchResult::Exhausted,
                    };
                };
                bits[op / 64] &= !(1 << (op % 64));
                set_hash ^= memo.zobrist[op];
                state = before;
                entries.unlift(op);
                if ops[op].ret.is_some() {
                    remaining += 1;
                }
                cursor = resume;
                continue;
            }
        };
        let op = entries.op[node];
        cursor = resume;
        let Some(next_state) = ops[op].op.step(state, values) else {
            continue;
        };
        bits[op / 64] |= 1 << (op % 64);
        set_hash ^= memo.zobrist[op];
        if !memo.insert(set_hash, &bits, next_state) {
            bits[op / 64] &= !(1 << (op % 64));
            set_hash ^= memo.zobrist[op];
            continue;
        }
        if memo.bytes > MEMO_LIMIT_BYTES {
            return SearchResult::Exhausted;
        }
        stack.push((op, state, resume));
        state = next_state;
        entries.lift(op);
        if ops[op].ret.is_some() {
            remaining -= 1;
            if remaining == 0 {
                return SearchResult::Linearizable;
            }
        }
        cursor = Cursor::Fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use crate::model::RegisterOp;

    fn op(call: u64, ret: Option<u64>, op: RegisterOp) -> PartOp {
        PartOp {
            event: 0,
            call,
            ret,
            op,
        }
    }

    fn run(ops: &[PartOp], values: &mut Values) -> SearchResult {
        let mut meter = Meter::start(&Budget::unlimited());
        search(ops, values, &mut meter)
    }

    #[test]
    fn sequential_and_concurrent() {
        let mut values = Values::default();
        let a = values.intern("a");
        let b = values.intern("b");
        let ops = vec![
            op(0, Some(10), RegisterOp::Put { value: a }),
            op(5, Some(30), RegisterOp::Put { value: b }),
            op(11, Some(12), RegisterOp::Read { observed: Some(a) }),
            op(13, Some(14), RegisterOp::Read { observed: Some(b) }),
        ];
        assert_eq!(run(&ops, &mut values), SearchResult::Linearizable);
        // Reading a after b was seen is not allowed.
        let mut bad = ops.clone();
        bad.push(op(15, Some(16), RegisterOp::Read { observed: Some(a) }));
        match run(&bad, &mut values) {
            SearchResult::Violation(w) => assert_eq!(w.blocked, 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_ops_may_or_may_not_happen() {
        let mut values = Values::default();
        let a = values.intern("a");
        let ops = vec![
            op(0, None, RegisterOp::Put { value: a }),
            op(1, Some(2), RegisterOp::Read { observed: Some(ABSENT) }),
            op(100, Some(101), RegisterOp::Read { observed: Some(a) }),
        ];
        assert_eq!(run(&ops, &mut values), SearchResult::Linearizable);
        let never = vec![
            op(0, None, RegisterOp::Put { value: a }),
            op(100, Some(101), RegisterOp::Read { observed: Some(ABSENT) }),
        ];
        assert_eq!(run(&never, &mut values), SearchResult::Linearizable);
    }

    #[test]
    fn exhausted_is_never_linearizable() {
        let mut values = Values::default();
        let a = values.intern("a");
        let ops = vec![
            op(0, Some(1), RegisterOp::Put { value: a }),
            op(2, Some(3), RegisterOp::Read { observed: Some(a) }),
        ];
        let mut meter = Meter::start(&Budget::with_steps(1));
        assert_eq!(search(&ops, &mut values, &mut meter), SearchResult::Exhausted);
    }
}
