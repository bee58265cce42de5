//! The seeded operation mix of one client: which operation comes next, on
//! which key, with which value. Pure: no I/O, no clock.
//!
//! Weights: 40% linearizable get, 30% put, 20% compare-and-set, 10% delete,
//! over `keys` keys. A compare-and-set expects the value this client last
//! saw for the key (absent if it saw none), so it often succeeds.
//!
//! # Correctness
//!
//! Every value written is unique in the drill: `c<client>-<n>`, where `n`
//! counts this client's operations. The checker relies on it to tell which
//! write a read saw.

use std::collections::HashMap;

use firebreak_check::{OpResult, Operation, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The next operations of one client.
pub struct Mix {
    rng: StdRng,
    client: u64,
    keys: Vec<String>,
    issued: u64,
    /// The value this client last knew for each key (`None`: absent).
    last_seen: HashMap<String, Option<String>>,
}

impl Mix {
    /// The mix of client `client` for the drill's `seed`.
    pub fn new(seed: u64, client: u64, keys: u32, prefix: &str) -> Mix {
        let stream = seed ^ client.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Mix {
            rng: StdRng::seed_from_u64(stream),
            client,
            keys: workload_keys(keys, prefix),
            issued: 0,
            last_seen: HashMap::new(),
        }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Operation {
        self.issued += 1;
        let key = self.keys[self.rng.gen_range(0..self.keys.len())].clone();
        let value = format!("c{}-{}", self.client, self.issued);
        match self.rng.gen_range(0..100) {
            0..=39 => Operation::Get { key },
            40..=69 => Operation::Put { key, value },
            70..=89 => {
                let expected = self.last_seen.get(&key).cloned().flatten();
                Operation::Cas {
                    key,
                    expected,
                    new: value,
                }
            }
            _ => Operation::Delete { key },
        }
    }

    /// Learns from a completed operation what the key holds.
    pub fn observe(&mut self, op: &Operation, outcome: Outcome, result: Option<&OpResult>) {
        if outcome != Outcome::Ok {
            return;
        }
        let key = op.key().to_owned();
        match op {
            Operation::Put { value, .. } => {
                self.last_seen.insert(key, Some(value.clone()));
            }
            Operation::Get { .. } => {
                if let Some(seen) = result.and_then(|r| r.value.clone()) {
                    self.last_seen.insert(key, seen);
                }
            }
            Operation::Cas { new, .. } => {
                if result.and_then(|r| r.succeeded) == Some(true) {
                    self.last_seen.insert(key, Some(new.clone()));
                }
            }
            Operation::Delete { .. } => {
                self.last_seen.insert(key, None);
            }
            Operation::Append { .. } => {}
        }
    }
}

/// The workload's keys: `<prefix>k00`, `<prefix>k01`, …
pub fn workload_keys(keys: u32, prefix: &str) -> Vec<String> {
    (0..keys.max(1)).map(|i| format!("{prefix}k{i:02}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_sequence_and_values_are_unique() {
        let mut a = Mix::new(7, 3, 10, "drill/");
        let mut b = Mix::new(7, 3, 10, "drill/");
        let ops: Vec<Operation> = (0..500).map(|_| a.next_op()).collect();
        let again: Vec<Operation> = (0..500).map(|_| b.next_op()).collect();
        assert_eq!(ops, again);
        let mut values: Vec<&str> = ops.iter().filter_map(|o| o.written_value()).collect();
        let n = values.len();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), n, "written values repeat");
        let other: Vec<Operation> = {
            let mut c = Mix::new(7, 4, 10, "drill/");
            (0..500).map(|_| c.next_op()).collect()
        };
        assert_ne!(ops, other, "clients share a sequence");
        for kind in ["get", "put", "cas", "delete"] {
            assert!(ops.iter().any(|o| o.kind() == kind), "no {kind} in 500 operations");
        }
    }

    #[test]
    fn cas_expects_what_the_client_last_saw() {
        let mut mix = Mix::new(1, 1, 1, "p/");
        let put = Operation::Put {
            key: "p/k00".into(),
            value: "c1-0".into(),
        };
        mix.observe(&put, Outcome::Ok, Some(&OpResult::put(5)));
        let cas = (0..100)
            .map(|_| mix.next_op())
            .find(|o| o.kind() == "cas")
            .expect("a cas in 100 operations");
        assert_eq!(
            cas,
            Operation::Cas {
                key: "p/k00".into(),
                expected: Some("c1-0".into()),
                new: match &cas {
                    Operation::Cas { new, .. } => new.clone(),
                    _ => unreachable!(),
                },
            }
        );
        // An unknown outcome teaches nothing.
        let del = Operation::Delete { key: "p/k00".into() };
        mix.observe(&del, Outcome::Unknown, None);
        assert_eq!(mix.last_seen["p/k00"], Some("c1-0".into()));
        mix.observe(&del, Outcome::Ok, Some(&OpResult::delete(1, 9)));
        assert_eq!(mix.last_seen["p/k00"], None);
    }
}
