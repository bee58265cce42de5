//! What real clients trip on, each checked against a real etcd (Debian's
//! 3.4) as the oracle and against Firebreak: locks and campaigns without a
//! lease, Defragment's answer, the database sizes, MemberList's
//! `linearizable` and Compact's `physical`.
//!
//! Without `etcd` the test skips, unless `CI` is set, where it fails.

mod common;

use std::time::Duration;

use common::etcd::Etcd;
use common::{Cluster, Options};
use etcd_client::{Client, CompactionOptions, LeaseTimeToLiveOptions};

fn etcd_installed() -> bool {
    common::installed("etcd", "apt-get install etcd-server")
}

/// A lock and a campaign that name no lease get a session lease of the
/// server's own (60 s, not kept alive), as etcd's lock and election
/// services make one; what the test sees of it on `server`.
async fn session_leases(server: &str, c: &mut Client) -> (i64, i64) {
    let lock = c
        .lock("no-lease-lock", None)
        .await
        .unwrap_or_else(|e| panic!("{server}: lock: {e}"));
    let key = String::from_utf8(lock.key().to_vec()).unwrap();
    let lease = i64::from_str_radix(key.rsplit('/').next().unwrap(), 16).unwrap();
    let ttl = c
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(
        ttl.keys(),
        [lock.key().to_vec()],
        "{server}: the lock's key is on its lease"
    );
    let lock_ttl = ttl.granted_ttl();

    // A second lock without a lease waits until the first is released.
    let mut waiter = c.clone();
    let second = tokio::spawn(async move { waiter.lock("no-lease-lock", None).await.map(|r| r.key().to_vec()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "{server}: the lock was held twice");
    c.unlock(lock.key()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap_or_else(|_| panic!("{server}: the second lock never got it"))
        .unwrap()
        .unwrap();
    assert_ne!(got, lock.key());

    let campaign = c.campaign("no-lease-election", "me", 0).await.unwrap();
    let leader = campaign.leader().unwrap();
    let ttl = c.lease_time_to_live(leader.lease(), None).await.unwrap();
    (lock_ttl, ttl.granted_ttl())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_campaigns_without_a_lease_get_a_session_lease() {
    if !etcd_installed() {
        return;
    }
    let etcd = Etcd::start();
    let mut oracle = etcd.client().await;
    let cluster = Cluster::start(Options::default()).await;
    let mut firebreak = cluster.client().await;
    let expected = session_leases("etcd", &mut oracle).await;
    assert_eq!(expected, (60, 60), "etcd's session TTL");
    assert_eq!(session_leases("firebreak", &mut firebreak).await, expected);
}

/// Db sizes after writing, overwriting and compacting, and after
/// defragmenting: (size, in use) at each step.
async fn sizes(c: &mut Client, endpoint: &str) -> [(i64, i64); 3] {
    let value = "x".repeat(8192);
    for _round in 0..3 {
        for i in 0..100 {
            c.put(format!("big/{i:04}"), value.as_str(), None).await.unwrap();
        }
    }
    let status = c.status().await.unwrap();
    let written = (status.db_size(), status.raft_used_db_size());
    let rev = status.header().unwrap().revision();
    c.compact(rev, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    // etcd's backend counts the pages compaction freed once no reader
    // holds them, at a later commit: write once more and wait for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.put("after-compaction", "x", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = c.status().await.unwrap();
    let compacted = (status.db_size(), status.raft_used_db_size());
    // Defragment answers with no header, as etcd does.
    let mut maintenance = c.maintenance_client();
    let answer = maintenance.defragment().await.unwrap();
    assert!(
        answer.header().is_none(),
        "{endpoint}: Defragment answered with a header"
    );
    let status = c.status().await.unwrap();
    [written, compacted, (status.db_size(), status.raft_used_db_size())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_sizes_move_as_etcds_do_and_defragment_has_no_header() {
    if !etcd_installed() {
        return;
    }
    let etcd = Etcd::start();
    let mut oracle = etcd.client().await;
    let cluster = Cluster::start(Options::default()).await;
    let mut firebreak = cluster.client_of(0).await;
    for (name, steps) in [
        ("etcd", sizes(&mut oracle, etcd.endpoint()).await),
        ("firebreak", sizes(&mut firebreak, &cluster.members[0].endpoint()).await),
    ] {
        let [written, compacted, defragmented] = steps;
        eprintln!("{name}: written {written:?}, compacted {compacted:?}, defragmented {defragmented:?}");
        assert!(
            written.1 <= written.0,
            "{name}: more in use than allocated: {written:?}"
        );
        // Compaction frees space inside the database, not the database.
        assert!(compacted.1 < written.1, "{name}: compaction freed nothing in use");
        assert!(compacted.0 >= written.0, "{name}: compaction shrank the database");
        assert!(
            compacted.1 < compacted.0,
            "{name}: in use equals allocated after compaction"
        );
        // Defragmentation gives it back.
        assert!(defragmented.0 < compacted.0, "{name}: defragmenting shrank nothing");
        assert!(defragmented.1 <= defragmented.0, "{name}: {defragmented:?}");
    }
}

/// etcd's `MemberListRequest` (etcd-client has no way to set the flag).
#[derive(Clone, PartialEq, prost::Message)]
struct MemberListRequest {
    #[prost(bool, tag = "1")]
    linearizable: bool,
}

/// The part of etcd's `MemberListResponse` the test reads.
#[derive(Clone, PartialEq, prost::Message)]
struct MemberListResponse {
    #[prost(message, repeated, tag = "2")]
    members: Vec<ListedMember>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListedMember {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_list_linearizable_and_compact_physical_answer_from_any_member() {
    let cluster = Cluster::start(Options::default()).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut at_follower = cluster.client_of(follower).await;
    // etcd-client cannot ask for a linearizable list: straight over gRPC.
    let list: MemberListResponse = common::grpc::unary(
        &cluster.members[follower].endpoint(),
        "/etcdserverpb.Cluster/MemberList",
        None,
        MemberListRequest { linearizable: true },
    )
    .await
    .unwrap();
    let mut names: Vec<&str> = list.members.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    let mut expected: Vec<&str> = cluster.members.iter().map(|m| m.name.as_str()).collect();
    expected.sort();
    assert_eq!(names, expected);
    for i in 0..10 {
        at_follower.put(format!("c{i}"), "v", None).await.unwrap();
    }
    let rev = at_follower.get("c9", None).await.unwrap().header().unwrap().revision();
    at_follower
        .compact(rev, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    // Physical: the member that answered has compacted already.
    let old = at_follower
        .get(
            "c0",
            Some(
                etcd_client::GetOptions::new()
                    .with_revision(rev - 1)
                    .with_serializable(),
            ),
        )
        .await;
    let err = old.expect_err("a read below the compaction answered").to_string();
    assert!(err.contains("compacted"), "{err}");
}
