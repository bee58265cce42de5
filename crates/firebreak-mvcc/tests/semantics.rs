//! Unit-level checks of etcd's key-value semantics on the bare store.
//! The differential test against a real etcd (in the `firebreak` crate)
//! covers the same ground with random sequences.

use bytes::Bytes;
use firebreak_mvcc::validate::check_txn;
use firebreak_mvcc::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(store: &mut Store, k: &str, v: &str) -> PutResponse {
    match store
        .apply(&WriteCommand::Put(PutRequest {
            key: b(k),
            value: b(v),
            ..Default::default()
        }))
        .unwrap()
    {
        WriteResponse::Put(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn get(store: &Store, k: &str, rev: i64) -> Result<RangeResponse, KvError> {
    store.range(&RangeRequest {
        key: b(k),
        revision: rev,
        ..Default::default()
    })
}

#[test]
fn revisions_versions_and_tombstones() {
    let mut s = Store::new();
    assert_eq!(s.current_revision(), 1);
    assert_eq!(put(&mut s, "a", "1").revision, 2);
    assert_eq!(put(&mut s, "a", "2").revision, 3);
    let kv = &get(&s, "a", 0).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(get(&s, "a", 2).unwrap().kvs[0].value, b("1"));

    // Deleting nothing does not move the revision; deleting something does.
    let del = |s: &mut Store, k: &str| match s
        .apply(&WriteCommand::DeleteRange(DeleteRangeRequest {
            key: b(k),
            ..Default::default()
        }))
        .unwrap()
    {
        WriteResponse::DeleteRange(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!((del(&mut s, "zz").revision, del(&mut s, "zz").deleted), (3, 0));
    assert_eq!(del(&mut s, "a").revision, 4);
    assert!(get(&s, "a", 0).unwrap().kvs.is_empty());
    // Re-creation starts a new generation.
    put(&mut s, "a", "3");
    let kv = &get(&s, "a", 0).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.version), (5, 1));
}

#[test]
fn compaction_window() {
    let mut s = Store::new();
    for i in 0..5 {
        put(&mut s, "k", &i.to_string());
    }
    assert_eq!(s.compact(4).unwrap().revision, 6);
    assert_eq!(get(&s, "k", 3), Err(KvError::Compacted));
    assert_eq!(get(&s, "k", 4).unwrap().kvs[0].value, b("2"));
    assert_eq!(get(&s, "k", 7), Err(KvError::FutureRevision));
    assert_eq!(s.compact(4), Err(KvError::Compacted));
    assert_eq!(s.compact(9), Err(KvError::FutureRevision));
}

#[test]
fn range_limit_sort_and_filters() {
    let mut s = Store::new();
    for k in ["a", "b", "c", "d"] {
        put(&mut s, k, k);
    }
    put(&mut s, "a", "a2");
    let r = s
        .range(&RangeRequest {
            key: b("a"),
            range_end: b("\0"),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 4));
    let r = s
        .range(&RangeRequest {
            key: b("a"),
            range_end: b("e"),
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Mod,
            min_mod_revision: 3,
            ..Default::default()
        })
        .unwrap();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b("a"), b("d"), b("c"), b("b")]);
}

#[test]
fn txn_branches_and_nested_compares_see_the_state_before_the_txn() {
    let mut s = Store::new();
    put(&mut s, "x", "1");
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b("x"),
            range_end: Bytes::new(),
            result: CompareResult::Equal,
            target: CompareTarget::Value(b("1")),
        }],
        success: vec![
            RequestOp::Put(PutRequest {
                key: b("x"),
                value: b("2"),
                ..Default::default()
            }),
            RequestOp::Txn(TxnRequest {
                compare: vec![Compare {
                    key: b("x"),
                    range_end: Bytes::new(),
                    result: CompareResult::Equal,
                    target: CompareTarget::Value(b("1")),
                }],
                success: vec![RequestOp::Range(RangeRequest {
                    key: b("x"),
                    ..Default::default()
                })],
                failure: vec![],
            }),
        ],
        failure: vec![],
    };
    check_txn(&txn).unwrap();
    let WriteResponse::Txn(resp) = s.apply(&WriteCommand::Txn(txn)).unwrap() else {
        panic!("txn answers with a txn")
    };
    assert!(resp.succeeded);
    assert_eq!(resp.revision, 3);
    let ResponseOp::Txn(nested) = &resp.responses[1] else {
        panic!("nested txn answers with a txn")
    };
    // The nested compare saw x=1, and its read sees the txn's own write.
    assert!(nested.succeeded);
    assert_eq!(nested.revision, 0);
    let ResponseOp::Range(r) = &nested.responses[0] else {
        panic!("a range answers with a range")
    };
    assert_eq!((r.revision, r.kvs[0].value.clone()), (3, b("2")));
}

#[test]
fn txn_duplicate_keys_and_op_limits() {
    let p = |k: &str| {
        RequestOp::Put(PutRequest {
            key: b(k),
            ..Default::default()
        })
    };
    let d = |k: &str, end: &str| {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: b(k),
            range_end: b(end),
            prev_kv: false,
        })
    };
    let txn = |success: Vec<RequestOp>| TxnRequest {
        compare: vec![],
        success,
        failure: vec![],
    };
    assert_eq!(check_txn(&txn(vec![p("a"), p("a")])), Err(KvError::DuplicateKey));
    assert_eq!(check_txn(&txn(vec![d("a", "c"), p("b")])), Err(KvError::DuplicateKey));
    assert_eq!(check_txn(&txn(vec![d("a", ""), d("a", "")])), Ok(()));
    assert_eq!(check_txn(&txn(vec![d("a", "\0"), p("b")])), Ok(()));
    assert_eq!(
        check_txn(&txn(vec![p("a"), RequestOp::Txn(txn(vec![p("a")]))])),
        Err(KvError::DuplicateKey)
    );
    let both_branches = TxnRequest {
        compare: vec![],
        success: vec![p("a")],
        failure: vec![p("a")],
    };
    assert_eq!(check_txn(&txn(vec![RequestOp::Txn(both_branches)])), Ok(()));
    assert_eq!(
        check_txn(&txn((0..129).map(|i| p(&i.to_string())).collect())),
        Err(KvError::TooManyOps)
    );
    assert_eq!(check_txn(&txn(vec![RequestOp::Empty])), Err(KvError::KeyNotFound));
}

#[test]
fn failed_txn_changes_nothing() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    let before = s.clone();
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: b("b"),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: b("missing"),
                ignore_value: true,
                ..Default::default()
            }),
        ],
        failure: vec![],
    };
    assert_eq!(s.apply(&WriteCommand::Txn(txn)), Err(KvError::KeyNotFound));
    assert_eq!(s, before);
}

/// Found by the differential test against etcd 3.4: a read in a txn is
/// checked as etcd's applier checks it (only revision 0 means "current";
/// anything below the compaction, -1 before the first, is compacted), also
/// when the txn only reads and so is served without the log.
#[test]
fn read_only_txn_checks_read_revisions_like_a_writing_txn() {
    let mut s = Store::new();
    for i in 0..4 {
        put(&mut s, "k", &i.to_string());
    }
    let read_at = |revision: i64| TxnRequest {
        compare: vec![],
        success: vec![RequestOp::Range(RangeRequest {
            key: b("k"),
            revision,
            ..Default::default()
        })],
        failure: vec![],
    };
    // Before any compaction: -1 is the current revision, -2 is compacted.
    assert_eq!(
        s.range(&RangeRequest {
            key: b("k"),
            revision: -2,
            ..Default::default()
        })
        .unwrap()
        .kvs
        .len(),
        1
    );
    let ResponseOp::Range(r) = &s.txn_read(&read_at(-1)).unwrap().responses[0] else {
        panic!("a range answers with a range")
    };
    assert_eq!(r.kvs[0].value, b("3"));
    assert_eq!(s.txn_read(&read_at(-2)), Err(KvError::Compacted));
    assert_eq!(s.txn_read(&read_at(6)), Err(KvError::FutureRevision));

    s.compact(3).unwrap();
    assert_eq!(s.txn_read(&read_at(-1)), Err(KvError::Compacted));
    assert_eq!(s.txn_read(&read_at(2)), Err(KvError::Compacted));
    assert!(s.txn_read(&read_at(3)).is_ok());
    // A writing txn answers the same.
    let mut writing = read_at(-1);
    writing.success.push(RequestOp::Put(PutRequest {
        key: b("other"),
        ..Default::default()
    }));
    assert_eq!(s.apply(&WriteCommand::Txn(writing)), Err(KvError::Compacted));
}
