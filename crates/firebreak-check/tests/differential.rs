//! Differential test: on thousands of small random single-key histories,
//! the checker must agree with a brute-force oracle written independently
//! here, and every counterexample it reports must itself be
//! non-linearizable according to the oracle.

use std::collections::HashSet;

use firebreak_check::{check_history, Budget, HistoryEvent, OpResult, Operation, Outcome, Verdict};

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self) -> Option<String> {
        match self.below(6) {
            0 => None,
            i => Some(["a", "b", "c", "d", "e"][i as usize - 1].to_owned()),
        }
    }
}

/// Up to 12 operations invoked in `0..span`, each lasting `0..length`
/// (short spans make many equal timestamps).
fn random_history(rng: &mut Rng, span: u64, length: u64) -> Vec<HistoryEvent> {
    let n = 1 + rng.below(12);
    (0..n)
        .map(|id| {
            let key = "k".to_owned();
            let (op, result) = match rng.below(4) {
                0 => (
                    Operation::Put {
                        key,
                        value: rng.value().unwrap_or_else(|| "a".into()),
                    },
                    OpResult::default(),
                ),
                1 => (
                    Operation::Get { key },
                    OpResult {
                        value: Some(rng.value()),
                        ..OpResult::default()
                    },
                ),
                2 => (
                    Operation::Cas {
                        key,
                        expected: rng.value(),
                        new: rng.value().unwrap_or_else(|| "b".into()),
                    },
                    OpResult {
                        succeeded: Some(rng.below(2) == 0),
                        ..OpResult::default()
                    },
                ),
                _ => (
                    Operation::Delete { key },
                    OpResult {
                        deleted: Some(rng.below(2)),
                        ..OpResult::default()
                    },
                ),
            };
            let call = rng.below(span);
            let event = HistoryEvent::invoked(id, id, None, op, call);
            match rng.below(10) {
                0 => event.fail(call + rng.below(length)),
                1 | 2 => event.unknown(None),
                _ => event.ok(call + rng.below(length), result),
            }
        })
        .collect()
}

/// Brute force: is there an order of all `ok` operations and some of the
/// `unknown` ones that respects real time and the register's semantics?
fn oracle(events: &[HistoryEvent]) -> bool {
    let ops: Vec<&HistoryEvent> = events.iter().filter(|e| e.outcome != Outcome::Fail).collect();
    let must: u32 = (0..ops.len())
        .filter(|&i| ops[i].outcome == Outcome::Ok)
        .fold(0, |m, i| m | 1 << i);
    let mut seen = HashSet::new();
    explore(&ops, must, 0, None, &mut seen)
}

fn explore(
    ops: &[&HistoryEvent],
    must: u32,
    done: u32,
    state: Option<String>,
    seen: &mut HashSet<(u32, Option<String>)>,
) -> bool {
    if done & must == must {
        return true;
    }
    if !seen.insert((done, state.clone())) {
        return false;
    }
    for (i, op) in ops.iter().enumerate() {
        if done & (1 << i) != 0 {
            continue;
        }
        // Every ok op that returned strictly before this one was invoked must
        // already be placed.
        let blocked = ops.iter().enumerate().any(|(j, other)| {
            done & (1 << j) == 0 && other.outcome == Outcome::Ok && other.complete_ns.is_some_and(|r| r < op.invoke_ns)
        });
        if blocked {
            continue;
        }
        if let Some(next) = apply(op, &state) {
            if explore(ops, must, done | 1 << i, next, seen) {
                return true;
            }
        }
    }
    false
}

/// The state after `op`, or `None` if its reported outputs are impossible.
fn apply(op: &HistoryEvent, state: &Option<String>) -> Option<Option<String>> {
    let result = op.result.as_ref().filter(|_| op.outcome == Outcome::Ok);
    match &op.op {
        Operation::Put { value, .. } => Some(Some(value.clone())),
        Operation::Get { .. } => match result.and_then(|r| r.value.as_ref()) {
            Some(seen) if seen != state => None,
            _ => Some(state.clone()),
        },
        Operation::Cas { expected, new, .. } => {
            let holds = expected == state;
            match result.and_then(|r| r.succeeded) {
                Some(reported) if reported != holds => None,
                _ if holds => Some(Some(new.clone())),
                _ => Some(state.clone()),
            }
        }
        Operation::Delete { .. } => match result.and_then(|r| r.deleted) {
            Some(d) if d != u64::from(state.is_some()) => None,
            _ => Some(None),
        },
        Operation::Append { .. } => unreachable!("not generated"),
    }
}

/// The sub-history a counterexample claims is not linearizable.
fn counterexample_history(events: &[HistoryEvent], report: &firebreak_check::CheckReport) -> Vec<HistoryEvent> {
    let cx = report.keys[0].counterexample.as_ref().expect("counterexample");
    events
        .iter()
        .filter(|e| cx.ops.contains(&e.id))
        .map(|e| {
            let mut e = e.clone();
            if let Some(cut) = cx.cut_at_ns {
                if e.outcome == Outcome::Ok && e.complete_ns.is_some_and(|t| t > cut) {
                    e = e.unknown(None);
                }
            }
            if cx.starts_at_op == Some(e.id) {
                // The starting write stands for the value it leaves.
                if let Operation::Cas { key, new, .. } = &e.op {
                    e.op = Operation::Put {
                        key: key.clone(),
                        value: new.clone(),
                    };
                }
                if let (Operation::Delete { .. }, Some(r)) = (&e.op, e.result.as_mut()) {
                    r.deleted = None;
                }
            }
            e
        })
        .collect()
}

#[test]
fn agrees_with_brute_force_on_random_histories() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let (mut passes, mut fails) = (0, 0);
    let (mut pruned, mut cut, mut started, mut shaped) = (0, 0, 0, 0);
    for case in 0..20_000 {
        let (span, length) = if case % 2 == 0 { (30, 10) } else { (12, 6) };
        let events = random_history(&mut rng, span, length);
        let expected = oracle(&events);
        let report = check_history(&events, Budget::unlimited());
        let got = report.linearizable.expect("unlimited budget decides");
        pruned += usize::from(report.keys.iter().any(|k| k.pruned_ops > 0));
        assert_eq!(
            got,
            expected,
            "case {case}: checker says {got}, oracle {expected}\n{}\n{}",
            events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect::<Vec<_>>()
                .join("\n"),
            report.render_text()
        );
        if expected {
            // No revisions were recorded, so value-origin checks are the only
            // other source of FAIL, and they imply non-linearizability.
            assert_eq!(report.verdict, Verdict::Pass, "case {case}\n{}", report.render_text());
            passes += 1;
        } else {
            assert_eq!(report.verdict, Verdict::Fail);
            let claimed = report.keys[0].counterexample.as_ref().unwrap();
            cut += usize::from(claimed.cut_at_ns.is_some());
            started += usize::from(claimed.starts_at_op.is_some());
            shaped += usize::from(claimed.explanation.is_some());
            let cx = counterexample_history(&events, &report);
            assert!(
                !oracle(&cx),
                "case {case}: counterexample is linearizable\n{cx:#?}\n{}",
                report.render_text()
            );
            fails += 1;
        }
    }
    println!(
        "{passes} linearizable, {fails} not; {pruned} with pruned writes; counterexamples: {cut} cut, \
         {started} with a starting write, {shaped} classic shapes"
    );
    assert!(
        pruned > 500 && cut > 500 && started > 500 && shaped > 500,
        "reductions barely exercised"
    );
    assert!(
        passes > 2000 && fails > 2000,
        "{passes} / {fails}: generator is unbalanced"
    );
}
