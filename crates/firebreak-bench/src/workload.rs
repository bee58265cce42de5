//! What one request of each `--op` does, and which key it touches.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::args::{BenchArgs, KeyOrder, Op};
use crate::conn::{Conn, OpError};

/// How a request that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it was sent to do.
    Done,
    /// A get found no key (the keyspace was not loaded).
    Miss,
    /// A compare-and-set found the key changed since it was read, and wrote
    /// nothing. It still counts as an operation: the server did the work.
    Conflict,
}

/// The workload shared by every client of a run.
pub struct Workload {
    op: Op,
    keys: u64,
    prefix: String,
    order: KeyOrder,
    read_percent: u8,
    /// Keys per put request (a txn of puts when above 1).
    batch: u64,
    /// The next index for `--key-order sequential`.
    next: AtomicU64,
    /// The value every write sends (`--value-size` bytes).
    value: Vec<u8>,
}

impl Workload {
    pub fn new(args: &BenchArgs, seed: u64) -> Workload {
        let mut value = vec![0u8; args.value_size];
        StdRng::seed_from_u64(seed).fill_bytes(&mut value);
        Workload {
            op: args.op,
            keys: args.keys,
            prefix: args.key_prefix.clone(),
            order: args.key_order,
            read_percent: args.read_percent,
            batch: args.batch,
            next: AtomicU64::new(0),
            value,
        }
    }

    /// The key of index `i`: the prefix and `i` in ten digits, so keys sort
    /// by index and all have one length.
    pub fn key_at(&self, i: u64) -> Vec<u8> {
        format!("{}{i:010}", self.prefix).into_bytes()
    }

    /// The key for the next request.
    pub fn next_key(&self, rng: &mut StdRng) -> Vec<u8> {
        self.key_at(self.next_index(rng, 1))
    }

    /// The first index of the next request's `n` consecutive keys.
    fn next_index(&self, rng: &mut StdRng, n: u64) -> u64 {
        match self.order {
            KeyOrder::Random => rng.gen_range(0..self.keys),
            KeyOrder::Sequential => self.next.fetch_add(n, Ordering::Relaxed) % self.keys,
        }
    }

    /// `batch` distinct consecutive keys (wrapping around the keyspace).
    pub fn next_keys(&self, rng: &mut StdRng) -> Vec<Vec<u8>> {
        let first = self.next_index(rng, self.batch);
        (0..self.batch).map(|j| self.key_at((first + j) % self.keys)).collect()
    }

    /// Sends one request (two for a compare-and-set: its read and its txn).
    pub async fn run_one(&self, conn: &mut Conn, rng: &mut StdRng) -> Result<Outcome, OpError> {
        if self.op == Op::Put && self.batch > 1 {
            let keys = self.next_keys(rng);
            return conn.put_batch(keys, &self.value).await.map(|()| Outcome::Done);
        }
        let key = self.next_key(rng);
        let found = |rev: Option<i64>| if rev.is_some() { Outcome::Done } else { Outcome::Miss };
        match self.op {
            Op::Put => conn.put(key, self.value.clone()).await.map(|()| Outcome::Done),
            Op::Get => conn.get(key, false).await.map(found),
            Op::GetSerializable => conn.get(key, true).await.map(found),
            Op::Txn => {
                let expected = conn.get(key.clone(), false).await?.unwrap_or(0);
                let held = conn.compare_and_set(key, expected, self.value.clone()).await?;
                Ok(if held { Outcome::Done } else { Outcome::Conflict })
            }
            Op::Mixed => {
                if rng.gen_range(0..100u8) < self.read_percent {
                    conn.get(key, false).await.map(found)
                } else {
                    conn.put(key, self.value.clone()).await.map(|()| Outcome::Done)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn sequential_keys_cover_the_keyspace_once_then_wrap() {
        let cli = Cli::parse_from(["x", "--keys", "3", "--key-order", "sequential", "--value-size", "7"]);
        let w = Workload::new(&cli.args, 1);
        let mut rng = StdRng::seed_from_u64(0);
        let keys: Vec<Vec<u8>> = (0..4).map(|_| w.next_key(&mut rng)).collect();
        assert_eq!(keys[0], b"bench/0000000000");
        assert_eq!(keys[2], b"bench/0000000002");
        assert_eq!(keys[3], keys[0]);
        assert_eq!(w.value.len(), 7);
    }

    #[test]
    fn batches_are_distinct_consecutive_keys() {
        let cli = Cli::parse_from(["x", "--keys", "5", "--batch", "3", "--key-order", "sequential"]);
        let w = Workload::new(&cli.args, 1);
        let mut rng = StdRng::seed_from_u64(0);
        let first = w.next_keys(&mut rng);
        let second = w.next_keys(&mut rng);
        assert_eq!(first, [w.key_at(0), w.key_at(1), w.key_at(2)]);
        assert_eq!(second, [w.key_at(3), w.key_at(4), w.key_at(0)]);
    }

    #[test]
    fn random_keys_stay_in_the_keyspace() {
        let cli = Cli::parse_from(["x", "--keys", "5", "--key-prefix", "k"]);
        let w = Workload::new(&cli.args, 1);
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..200 {
            let key = String::from_utf8(w.next_key(&mut rng)).unwrap();
            let index: u64 = key.strip_prefix('k').unwrap().parse().unwrap();
            assert!(index < 5, "{key}");
        }
    }
}
