//! Fuzz-style: many random requests (hostile lengths, revisions, ranges,
//! nested and duplicated txns, unknown leases) through etcd's validation
//! and the store. Nothing panics, every refusal is a clear error, and a
//! refused or failed write leaves the store exactly as it was (nothing
//! half-applied). A fixed seed in CI; `FIREBREAK_FUZZ_ITERATIONS` runs
//! longer by hand.

use bytes::Bytes;
use firebreak_mvcc::{
    validate, CompactRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, SortOrder, SortTarget, Store, TxnRequest, WriteCommand,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn key(rng: &mut StdRng) -> Bytes {
    match rng.gen_range(0..10) {
        0 => Bytes::new(),
        1 => Bytes::from_static(b"\0"),
        2 => Bytes::from(vec![0xffu8; rng.gen_range(1..4)]),
        3 => Bytes::from(vec![b'k'; rng.gen_range(0..3000)]),
        _ => Bytes::from(format!("k{}", rng.gen_range(0..8))),
    }
}

fn revision(rng: &mut StdRng) -> i64 {
    match rng.gen_range(0..6) {
        0 => i64::MIN,
        1 => i64::MAX,
        2 => -rng.gen_range(1..5),
        _ => rng.gen_range(0..40),
    }
}

fn range(rng: &mut StdRng) -> RangeRequest {
    RangeRequest {
        key: key(rng),
        range_end: if rng.gen_bool(0.5) { key(rng) } else { Bytes::new() },
        limit: revision(rng),
        revision: revision(rng),
        sort_order: [SortOrder::None, SortOrder::Ascend, SortOrder::Descend][rng.gen_range(0..3)],
        sort_target: [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ][rng.gen_range(0..5)],
        serializable: rng.gen(),
        keys_only: rng.gen(),
        count_only: rng.gen(),
        min_mod_revision: revision(rng),
        max_mod_revision: revision(rng),
        min_create_revision: revision(rng),
        max_create_revision: revision(rng),
    }
}

fn put(rng: &mut StdRng) -> PutRequest {
    PutRequest {
        key: key(rng),
        value: if rng.gen_bool(0.005) {
            // Around etcd's request limit.
            Bytes::from(vec![b'v'; firebreak_mvcc::MAX_REQUEST_BYTES - rng.gen_range(0..64)])
        } else {
            Bytes::from(vec![b'v'; rng.gen_range(0..64)])
        },
        lease: if rng.gen_bool(0.2) { revision(rng) } else { 0 },
        prev_kv: rng.gen(),
        ignore_value: rng.gen_bool(0.1),
        ignore_lease: rng.gen_bool(0.1),
    }
}

fn delete(rng: &mut StdRng) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: key(rng),
        range_end: if rng.gen_bool(0.5) { key(rng) } else { Bytes::new() },
        prev_kv: rng.gen(),
    }
}

fn txn(rng: &mut StdRng, depth: u32) -> TxnRequest {
    let op = |rng: &mut StdRng| match rng.gen_range(0..if depth < 3 { 5 } else { 4 }) {
        0 => RequestOp::Range(range(rng)),
        1 => RequestOp::Put(put(rng)),
        2 => RequestOp::DeleteRange(delete(rng)),
        3 => RequestOp::Empty,
        _ => RequestOp::Txn(txn(rng, depth + 1)),
    };
    TxnRequest {
        compare: (0..rng.gen_range(0..4))
            .map(|_| Compare {
                key: key(rng),
                range_end: if rng.gen_bool(0.3) { key(rng) } else { Bytes::new() },
                result: [
                    CompareResult::Equal,
                    CompareResult::Greater,
                    CompareResult::Less,
                    CompareResult::NotEqual,
                ][rng.gen_range(0..4)],
                target: match rng.gen_range(0..5) {
                    0 => CompareTarget::Version(revision(rng)),
                    1 => CompareTarget::Create(revision(rng)),
                    2 => CompareTarget::Mod(revision(rng)),
                    3 => CompareTarget::Value(key(rng)),
                    _ => CompareTarget::Lease(revision(rng)),
                },
            })
            .collect(),
        success: (0..rng.gen_range(0..5)).map(|_| op(rng)).collect(),
        failure: (0..rng.gen_range(0..5)).map(|_| op(rng)).collect(),
    }
}

/// What a refused write must leave untouched: every change to the store
/// moves its revision or its size, and every 16th check compares a hash of
/// everything too (hashing the whole store each time is too slow here).
fn state(store: &Store, i: usize) -> (i64, i64, u64, Option<u32>) {
    (
        store.current_revision(),
        store.compact_revision(),
        store.size_bytes(),
        i.is_multiple_of(16).then(|| store.hash_all()),
    )
}

#[test]
fn random_requests_never_panic_and_refused_writes_change_nothing() {
    let iterations: usize = std::env::var("FIREBREAK_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000);
    let mut rng = StdRng::seed_from_u64(0x0dd_ba11);
    let mut store = Store::new();
    let (mut applied, mut refused, mut reads) = (0, 0, 0);
    for i in 0..iterations {
        let before = state(&store, i);
        let cmd = match rng.gen_range(0..10) {
            0..=2 => {
                let req = range(&mut rng);
                // Reads never change anything, valid or not.
                if validate::check_range(&req).is_ok() {
                    let _ = store.range(&req);
                }
                reads += 1;
                assert_eq!(state(&store, i), before, "a read changed the store");
                continue;
            }
            3 | 4 => {
                let req = put(&mut rng);
                if validate::check_put(&req).is_err() {
                    refused += 1;
                    continue;
                }
                WriteCommand::Put(req)
            }
            5 => {
                let req = delete(&mut rng);
                if validate::check_delete(&req).is_err() {
                    refused += 1;
                    continue;
                }
                WriteCommand::DeleteRange(req)
            }
            6 | 7 => {
                let req = txn(&mut rng, 0);
                if validate::check_txn(&req).is_err() {
                    refused += 1;
                    continue;
                }
                WriteCommand::Txn(req)
            }
            8 => match rng.gen_range(0..3) {
                0 => WriteCommand::LeaseGrant(LeaseGrantRequest {
                    id: revision(&mut rng),
                    ttl: revision(&mut rng),
                }),
                1 => WriteCommand::LeaseRevoke(LeaseRevokeRequest { id: revision(&mut rng) }),
                _ => WriteCommand::Compact(CompactRequest {
                    revision: revision(&mut rng),
                    physical: rng.gen(),
                }),
            },
            _ => WriteCommand::Batch(
                (0..rng.gen_range(0..4))
                    .map(|_| WriteCommand::Put(put(&mut rng)))
                    .collect(),
            ),
        };
        match store.apply(&cmd) {
            Ok(_) => applied += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "an error says what went wrong");
                assert_eq!(
                    state(&store, i),
                    before,
                    "a refused write changed the store: {cmd:?} → {e}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("{iterations} random requests: {applied} writes applied, {refused} refused, {reads} reads");
    assert!(
        applied > iterations / 10 && refused > iterations / 20,
        "the generator is unbalanced"
    );
}
