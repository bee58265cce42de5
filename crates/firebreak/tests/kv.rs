//! The etcd KV API of a real three-member cluster, through the `etcd-client`
//! crate: each point of etcd's semantics that clients rely on.

mod common;

use common::{Cluster, Options};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, Error, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};

fn grpc_error(e: Error) -> (tonic::Code, String) {
    match e {
        Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_semantics() {
    let cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;

    // Headers and revisions: one revision per write request.
    let base = c.get("__ready", None).await.unwrap().header().unwrap().revision();
    let put = c.put("a", "1", None).await.unwrap();
    let h = put.header().unwrap();
    assert_eq!(h.revision(), base + 1);
    assert_ne!(h.cluster_id(), 0);
    assert_ne!(h.member_id(), 0);
    assert!(h.raft_term() >= 1);
    c.put("a", "2", None).await.unwrap();
    c.put("b", "x", None).await.unwrap();
    c.put("c", "y", None).await.unwrap();
    let get = c.get("a", None).await.unwrap();
    let kv = &get.kvs()[0];
    assert_eq!(
        (kv.value(), kv.create_revision(), kv.mod_revision(), kv.version()),
        (&b"2"[..], base + 1, base + 2, 2)
    );
    assert_eq!(get.header().unwrap().revision(), base + 4);

    // Ranges: prefix, from-key, limit and more, count, keys-only, past revision.
    let all = c.get("a", Some(GetOptions::new().with_from_key())).await.unwrap();
    assert_eq!(all.kvs().len(), 3);
    let limited = c
        .get("a", Some(GetOptions::new().with_range("c").with_limit(1)))
        .await
        .unwrap();
    assert_eq!((limited.kvs().len(), limited.more(), limited.count()), (1, true, 2));
    let count = c
        .get("a", Some(GetOptions::new().with_from_key().with_count_only()))
        .await
        .unwrap();
    assert_eq!((count.kvs().len(), count.count()), (0, 3));
    let keys = c.get("a", Some(GetOptions::new().with_keys_only())).await.unwrap();
    assert!(keys.kvs()[0].value().is_empty());
    let past = c
        .get("a", Some(GetOptions::new().with_revision(base + 1)))
        .await
        .unwrap();
    assert_eq!(past.kvs()[0].value(), b"1");
    let sorted = c
        .get(
            "a",
            Some(
                GetOptions::new()
                    .with_from_key()
                    .with_sort(SortTarget::Mod, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let order: Vec<&[u8]> = sorted.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(order, vec![&b"c"[..], b"b", b"a"]);
    let filtered = c
        .get(
            "a",
            Some(GetOptions::new().with_from_key().with_min_mod_revision(base + 3)),
        )
        .await
        .unwrap();
    assert_eq!(filtered.kvs().len(), 2);
    c.put("p/1", "1", None).await.unwrap();
    c.put("p/2", "2", None).await.unwrap();
    let prefix = c.get("p/", Some(GetOptions::new().with_prefix())).await.unwrap();
    assert_eq!(prefix.count(), 2);
    let serializable = c.get("p/1", Some(GetOptions::new().with_serializable())).await.unwrap();
    assert_eq!(serializable.kvs().len(), 1);

    // Put options.
    let prev = c.put("a", "3", Some(PutOptions::new().with_prev_key())).await.unwrap();
    assert_eq!(prev.prev_key().unwrap().value(), b"2");
    c.put("a", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap();
    assert_eq!(c.get("a", None).await.unwrap().kvs()[0].value(), b"3");
    let missing = c
        .put("nope", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err();
    assert_eq!(
        grpc_error(missing),
        (tonic::Code::InvalidArgument, "etcdserver: key not found".into())
    );
    let lease = c
        .put("a", "v", Some(PutOptions::new().with_lease(42)))
        .await
        .unwrap_err();
    assert_eq!(
        grpc_error(lease),
        (tonic::Code::NotFound, "etcdserver: requested lease not found".into())
    );
    let empty = c.put("", "v", None).await.unwrap_err();
    assert_eq!(
        grpc_error(empty),
        (tonic::Code::InvalidArgument, "etcdserver: key is not provided".into())
    );

    // Delete with prev_kv.
    let del = c
        .delete("p/", Some(DeleteOptions::new().with_prefix().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(del.deleted(), 2);
    assert_eq!(del.prev_kvs().len(), 2);

    // Txn: compares, branches, nested txns, and etcd's refusals.
    let rev_a = c.get("a", None).await.unwrap().kvs()[0].mod_revision();
    let txn = Txn::new()
        .when([
            Compare::value("a", CompareOp::Equal, "3"),
            Compare::mod_revision("a", CompareOp::Equal, rev_a),
            Compare::version("b", CompareOp::Greater, 0),
            Compare::create_revision("zzz", CompareOp::Equal, 0),
            Compare::lease("a", CompareOp::Equal, 0),
            Compare::version("a", CompareOp::NotEqual, 0).with_range("c"),
        ])
        .and_then([
            TxnOp::put("t", "1", None),
            TxnOp::get("t", None),
            TxnOp::txn(
                Txn::new()
                    .when([Compare::version("t", CompareOp::Less, 1)])
                    .or_else([TxnOp::delete("b", None)]),
            ),
        ])
        .or_else([TxnOp::put("f", "1", None)]);
    let resp = c.txn(txn).await.unwrap();
    assert!(resp.succeeded());
    let ops = resp.op_responses();
    match &ops[1] {
        TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].value(), b"1", "a txn read sees the txn's own write"),
        other => panic!("unexpected {other:?}"),
    }
    match &ops[2] {
        TxnOpResponse::Txn(t) => assert!(t.succeeded(), "nested compares see the state before the txn"),
        other => panic!("unexpected {other:?}"),
    }
    let failed = c
        .txn(
            Txn::new()
                .when([Compare::value("a", CompareOp::Equal, "no")])
                .or_else([TxnOp::get("a", None)]),
        )
        .await
        .unwrap();
    assert!(!failed.succeeded());
    let dup = c
        .txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
        .await
        .unwrap_err();
    assert_eq!(
        grpc_error(dup),
        (
            tonic::Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request".into()
        )
    );
    let many: Vec<TxnOp> = (0..129).map(|i| TxnOp::put(format!("m{i}"), "1", None)).collect();
    let too_many = c.txn(Txn::new().and_then(many)).await.unwrap_err();
    assert_eq!(
        grpc_error(too_many),
        (
            tonic::Code::InvalidArgument,
            "etcdserver: too many operations in txn request".into()
        )
    );

    // Compaction and the revision window.
    let now = c.get("a", None).await.unwrap().header().unwrap().revision();
    c.compact(now - 1, Some(etcd_client::CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let old = c
        .get("a", Some(GetOptions::new().with_revision(now - 2)))
        .await
        .unwrap_err();
    assert_eq!(
        grpc_error(old),
        (
            tonic::Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".into()
        )
    );
    let future = c
        .get("a", Some(GetOptions::new().with_revision(now + 100)))
        .await
        .unwrap_err();
    assert_eq!(
        grpc_error(future),
        (
            tonic::Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into()
        )
    );
    let again = c.compact(now - 1, None).await.unwrap_err();
    assert_eq!(grpc_error(again).0, tonic::Code::OutOfRange);

    // Size limit: refused, and nothing applied.
    let before = c.get("a", None).await.unwrap().header().unwrap().revision();
    let big = vec![b'x'; 1536 * 1024 + 1];
    let too_large = c.put("big", big, None).await.unwrap_err();
    assert_eq!(
        grpc_error(too_large),
        (tonic::Code::InvalidArgument, "etcdserver: request is too large".into())
    );
    let after = c.get("big", None).await.unwrap();
    assert!(after.kvs().is_empty());
    assert_eq!(after.header().unwrap().revision(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_serves_reads_writes_members_and_status() {
    let cluster = Cluster::start(Options::default()).await;
    let leader = cluster.leader().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut c = cluster.client_of(i).await;
        // Everything this member has applied so far is committed, so the
        // entry of the put below gets a higher index.
        let applied_before = c.status().await.unwrap().raft_applied_index();
        let put = c.put(format!("from-{i}"), "x", None).await.unwrap();
        // Every member sees every write, linearizably.
        for j in 0..=i {
            let got = c.get(format!("from-{j}"), None).await.unwrap();
            assert_eq!(got.kvs().len(), 1, "member {i} misses the write made through {j}");
            assert!(got.header().unwrap().revision() >= put.header().unwrap().revision());
        }
        let members = c.member_list().await.unwrap();
        let names: Vec<&str> = members.members().iter().map(|m| m.name()).collect();
        assert_eq!(names, vec!["m1", "m2", "m3"]);
        for m in members.members() {
            assert_eq!(m.client_urls().len(), 1);
            assert_eq!(m.peer_urls().len(), 1);
            assert!(!m.is_learner());
        }
        let status = c.status().await.unwrap();
        let me = status.header().unwrap().member_id();
        ids.push(me);
        assert_eq!(status.leader(), cluster_leader_id(&members, leader));
        // The linearizable reads above waited for this member to apply the
        // put it served: its applied index passed the put's entry, its log
        // holds what it applied, and its store is at the put's revision.
        assert!(
            status.raft_applied_index() > applied_before,
            "member {i}: applied index {} did not pass {applied_before} after serving a put",
            status.raft_applied_index()
        );
        assert!(
            status.raft_index() >= status.raft_applied_index(),
            "member {i}: log index {} behind applied index {}",
            status.raft_index(),
            status.raft_applied_index()
        );
        assert!(
            status.header().unwrap().revision() >= put.header().unwrap().revision(),
            "member {i}: status revision behind the put it served"
        );
        assert!(!status.version().is_empty());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every member answers with its own id");
}

fn cluster_leader_id(members: &etcd_client::MemberListResponse, leader: usize) -> u64 {
    members.members()[leader].id()
}

/// The services refuse a message over etcd's gRPC limit (1.5 MiB plus
/// 512 KiB) from its length prefix, in grpc-go's words as etcd does, where
/// tonic's default (4 MiB) would have decoded it; a write under that limit
/// but over the request limit gets etcd's own refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_etcds_grpc_limit_are_refused_from_their_length() {
    let cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;
    let limit = 1536 * 1024 + 512 * 1024;
    let too_large = |(code, message): (tonic::Code, String)| {
        assert_eq!(code, tonic::Code::ResourceExhausted, "{message}");
        assert!(
            message.starts_with("grpc: received message larger than max (")
                && message.ends_with(&format!(" vs. {limit})")),
            "{message}"
        );
    };
    too_large(grpc_error(c.put("big", vec![0u8; limit + 10], None).await.unwrap_err()));
    let url = format!("http://127.0.0.1:1?name={}", "x".repeat(3 << 20));
    too_large(grpc_error(c.member_add([url], None).await.unwrap_err()));
    let (code, message) = grpc_error(c.put("big", vec![0u8; 1_700_000], None).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::InvalidArgument, "etcdserver: request is too large")
    );
    c.put("after", "ok", None).await.unwrap();
    assert_eq!(c.member_list().await.unwrap().members().len(), 3);
}
