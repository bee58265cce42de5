//! Large histories recorded from a simulated linearizable etcd (global
//! revisions, mod revisions, timeouts and failures) must PASS with no
//! anomaly, quickly; and breaking one read in them must FAIL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use firebreak_check::{check_history, AnomalyKind, Budget, HistoryEvent, OpResult, Operation, Outcome, Verdict};

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
}

/// A store: per key (value, mod_revision), and the global revision.
#[derive(Default)]
struct Store {
    keys: HashMap<String, (String, u64)>,
    revision: u64,
}

struct Planned {
    event: HistoryEvent,
    /// When the operation takes effect, if it does.
    effect_at: Option<u64>,
    outcome: Outcome,
}

/// Records `per_client` operations from each of `clients` clients on
/// `keys` keys. Each client runs one operation at a time; an operation takes
/// effect at a random instant inside its interval (or, for timeouts, maybe
/// later, maybe never).
fn simulate(seed: u64, clients: u64, per_client: u64, keys: u64) -> Vec<HistoryEvent> {
    let mut rng = Rng(seed);
    let mut planned = Vec::new();
    for client in 0..clients {
        let mut t = rng.below(1000);
        for n in 0..per_client {
            let key = format!("k{}", rng.below(keys));
            let value = format!("c{client}-{n}");
            let op = match rng.below(10) {
                0..=3 => Operation::Get { key },
                4..=6 => Operation::Put { key, value },
                7 | 8 => Operation::Cas {
                    key,
                    // Expect a recent value of this client or another, or absent.
                    expected: match rng.below(3) {
                        0 => None,
                        _ => Some(format!("c{}-{}", rng.below(clients), n.saturating_sub(rng.below(4)))),
                    },
                    new: value,
                },
                _ => Operation::Delete { key },
            };
            let invoke = t;
            let complete = invoke + 1 + rng.below(2000);
            let (outcome, effect_at) = match rng.below(20) {
                0 => (Outcome::Fail, None),
                1 => (Outcome::Unknown, Some(complete + rng.below(5000))),
                2 => (Outcome::Unknown, None),
                _ => (Outcome::Ok, Some(invoke + rng.below(complete - invoke + 1))),
            };
            let id = planned.len() as u64;
            let mut event = HistoryEvent::invoked(id, client, Some("dc1"), op, invoke * 1000);
            event.complete_ns = Some(complete * 1000);
            planned.push(Planned {
                event,
                effect_at,
                outcome,
            });
            t = complete + 1 + rng.below(500);
        }
    }
    // Apply effects in time order (ties: by id), recording results.
    let mut order: Vec<usize> = (0..planned.len()).filter(|&i| planned[i].effect_at.is_some()).collect();
    order.sort_by_key(|&i| (planned[i].effect_at, i));
    let mut store = Store::default();
    let mut results: HashMap<usize, OpResult> = HashMap::new();
    for i in order {
        let result = match &planned[i].event.op {
            Operation::Put { key, value } => {
                store.revision += 1;
                store.keys.insert(key.clone(), (value.clone(), store.revision));
                OpResult::put(store.revision)
            }
            Operation::Get { key } => {
                let (value, mod_rev) = match store.keys.get(key) {
                    Some((v, m)) => (Some(v.clone()), Some(*m)),
                    None => (None, None),
                };
                OpResult::get(value, store.revision, mod_rev)
            }
            Operation::Cas { key, expected, new } => {
                let current = store.keys.get(key).map(|(v, _)| v);
                if current == expected.as_ref() {
                    store.revision += 1;
                    store.keys.insert(key.clone(), (new.clone(), store.revision));
                    OpResult::cas(true, store.revision)
                } else {
                    OpResult::cas(false, store.revision)
                }
            }
            Operation::Delete { key } => {
                if store.keys.remove(key).is_some() {
                    store.revision += 1;
                    OpResult::delete(1, store.revision)
                } else {
                    OpResult::delete(0, store.revision)
                }
            }
            Operation::Append { .. } => unreachable!(),
        };
        results.insert(i, result);
    }
    planned
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let complete = p.event.complete_ns.unwrap();
            match p.outcome {
                Outcome::Ok => p.event.ok(complete, results.remove(&i).unwrap()),
                Outcome::Fail => p.event.fail(complete),
                Outcome::Unknown => p.event.unknown(Some(complete)),
            }
        })
        .collect()
}

#[test]
fn simulated_linearizable_histories_pass() {
    for (seed, clients, per_client, keys) in [
        (1, 5, 200, 3),
        (2, 10, 150, 4),
        (3, 4, 500, 1),
        (4, 16, 60, 8),
        (5, 12, 120, 1),
    ] {
        let events = simulate(seed, clients, per_client, keys);
        let started = Instant::now();
        let report = check_history(&events, Budget::with_duration(Duration::from_secs(20)));
        println!(
            "seed {seed}: {} events, {} keys: {} in {:.2?}, {} steps, {} unknown ({} pruned)",
            events.len(),
            keys,
            report.verdict,
            started.elapsed(),
            report.stats.steps,
            report.stats.unknown,
            report.keys.iter().map(|k| k.pruned_ops).sum::<usize>()
        );
        assert_eq!(report.verdict, Verdict::Pass, "seed {seed}\n{}", report.render_text());
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }
}

#[test]
fn breaking_one_read_fails() {
    let mut events = simulate(7, 6, 150, 2);
    // Find a read that saw a value, and a later read of the same key that
    // saw a different value written by an op completed before it started;
    // make the later read return the earlier value (a stale read).
    let reads: Vec<usize> = (0..events.len())
        .filter(|&i| {
            events[i].outcome == Outcome::Ok
                && matches!(events[i].op, Operation::Get { .. })
                && events[i].result.as_ref().unwrap().value.as_ref().unwrap().is_some()
        })
        .collect();
    let mut broken = None;
    'outer: for &a in &reads {
        for &b in &reads {
            let (ea, eb) = (&events[a], &events[b]);
            let (ra, rb) = (ea.result.as_ref().unwrap(), eb.result.as_ref().unwrap());
            if ea.key() == eb.key()
                && ra.value != rb.value
                && ea.complete_ns.unwrap() + 5_000_000 < eb.invoke_ns
                && ra.mod_revision < rb.mod_revision
            {
                broken = Some((a, b));
                break 'outer;
            }
        }
    }
    let (a, b) = broken.expect("a pair of reads to break");
    let old = events[a].result.clone().unwrap();
    let result = events[b].result.as_mut().unwrap();
    result.value = old.value;
    result.mod_revision = old.mod_revision;
    let report = check_history(&events, Budget::with_duration(Duration::from_secs(20)));
    println!("{}", report.render_text());
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.linearizable, Some(false));
    let cx = report
        .keys
        .iter()
        .find_map(|k| k.counterexample.as_ref())
        .expect("counterexample");
    assert!(cx.ops.contains(&events[b].id), "{cx:#?}");
    assert!(cx.ops.len() <= 10, "counterexample not small: {cx:#?}");
    assert!(report.anomalies.iter().any(|x| x.kind == AnomalyKind::NotLinearizable));
}
