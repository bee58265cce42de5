//! Issue 9: a leader cut off from the majority stops renewing leases and
//! answering their TTLs before the majority can expire them, so a lock is
//! never held by two clients at once.
//!
//! Three datacenters on loopback behind the drill's relay (the WAN link
//! that can be cut); the test's own clients talk straight to a member's
//! listener, as a client inside that member's datacenter does, so a cut
//! leaves them talking to the cut-off member.

mod common;

use std::time::{Duration, Instant};

use etcd_client::LockOptions;
use firebreak_drill::lab::observe;

/// A lease's TTL in this test, seconds.
const TTL: i64 = 3;
const ELECTION: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_stops_renewing_leases_before_the_majority_expires_them() {
    let dir = tempfile::tempdir().unwrap();
    let lab = common::lab::start(dir.path(), ELECTION);
    let leader = common::lab::ready_leader(&lab).await;
    let other = (leader + 1) % lab.members.len();
    let leader_dc = lab.members[leader].dc;

    // The holder lives in the leader's datacenter and talks to the leader.
    let mut holder = observe::connect(&lab.members[leader], Duration::from_secs(2))
        .await
        .unwrap();
    let lease = holder.lease_grant(TTL, None).await.unwrap().id();
    let held = holder
        .lock("the-lock", Some(LockOptions::new().with_lease(lease)))
        .await
        .unwrap();
    assert!(common::keep_alive_once(&mut holder, lease, Duration::from_secs(2))
        .await
        .is_some());

    // A contender in another datacenter queues for the same lock.
    let mut contender = observe::connect(&lab.members[other], Duration::from_secs(30))
        .await
        .unwrap();
    let contender_lease = contender.lease_grant(60, None).await.unwrap().id();
    let contender_task = tokio::spawn(async move {
        let got = contender
            .lock("the-lock", Some(LockOptions::new().with_lease(contender_lease)))
            .await;
        (Instant::now(), got.map(|r| r.key().to_vec()))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!contender_task.is_finished(), "the lock is held: the contender waits");

    // Cut the leader's datacenter off; the holder keeps renewing through
    // the member it can still reach.
    let mut lab = lab;
    let cut = Instant::now();
    lab.isolate(leader_dc).expect("cut the leader's datacenter off");
    // (sent at, renewed TTL) of every keep-alive the old leader accepted
    // after the cut.
    let mut renewed: Vec<(Instant, i64)> = Vec::new();
    let mut refused_since: Option<Instant> = None;
    let deadline = cut + Duration::from_secs(20);
    while !contender_task.is_finished() && Instant::now() < deadline {
        let sent = Instant::now();
        match common::keep_alive_once(&mut holder, lease, Duration::from_millis(400)).await {
            Some(ttl) if ttl > 0 => {
                renewed.push((sent, ttl));
                refused_since = None;
            }
            _ => {
                refused_since.get_or_insert(sent);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(contender_task.is_finished(), "the contender never got the lock");
    let (acquired_at, got) = contender_task.await.unwrap();
    let key = got.expect("the contender's lock call succeeded");
    assert_ne!(key, held.key(), "a different key holds the lock now");

    // The old holder believed its lease alive until its last renewal (as
    // sent) plus the TTL; that must end before the lock passed on.
    let believed_until = renewed
        .iter()
        .map(|(at, ttl)| *at + Duration::from_secs(*ttl as u64))
        .max();
    eprintln!(
        "cut at 0 ms; renewals by the old leader after the cut: {:?} (ms); refused from {:?} ms; lock passed at {} ms",
        renewed
            .iter()
            .map(|(at, _)| (*at - cut).as_millis())
            .collect::<Vec<_>>(),
        refused_since.map(|t| (t - cut).as_millis()),
        (acquired_at - cut).as_millis(),
    );
    if let Some(until) = believed_until {
        assert!(
            until < acquired_at,
            "the old holder was told its lease lived until {} ms after the cut, but the lock passed at {} ms",
            (until - cut).as_millis(),
            (acquired_at - cut).as_millis()
        );
    }
    let refused = refused_since.expect("the old leader never refused a keep-alive");
    assert!(
        refused - cut < ELECTION * 2,
        "the old leader renewed leases for {} ms after the cut",
        (refused - cut).as_millis()
    );

    // Nor does it answer the lease's remaining TTL any more.
    let ttl = tokio::time::timeout(Duration::from_secs(2), holder.lease_time_to_live(lease, None)).await;
    assert!(
        !matches!(ttl, Ok(Ok(_))),
        "the cut-off leader answered TimeToLive: {ttl:?}"
    );
    lab.heal(leader_dc).unwrap();
}
