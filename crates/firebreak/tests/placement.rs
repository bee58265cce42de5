//! Issue 14: where the leader lives. The leader moves to the most preferred
//! datacenter of `leader_priority`, fails over when it burns, and moves
//! back once it has recovered and caught up, never before the hold time;
//! learners are promoted on their own when `auto_promote_learners` asks.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Options};
use etcd_client::MemberAddOptions;

/// The index of the member that leads, once `want` says it is the one;
/// panics after `limit`.
async fn wait_for_leader(cluster: &Cluster, limit: Duration, want: impl Fn(usize) -> bool, what: &str) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let leader = cluster.leader().await;
        if want(leader) {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the leader is still m{} after {limit:?}",
            leader + 1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_lives_in_the_preferred_datacenter_and_fails_back_after_the_hold() {
    const HOLD: Duration = Duration::from_secs(3);
    // m1 is in dc1, m2 in dc2, m3 in dc3.
    let cluster = Cluster::start(Options {
        extra_config: format!(
            "leader_priority = [\"dc2\", \"dc1\", \"dc3\"]\nleader_failback_after_ms = {}",
            HOLD.as_millis()
        ),
        ..Options::default()
    })
    .await;
    let mut cluster = cluster;
    wait_for_leader(&cluster, Duration::from_secs(30), |l| l == 1, "placement").await;

    // dc2 burns: the leader goes to dc1, the next preferred (at once if m1
    // wins the election, after the hold if m3 does).
    cluster.kill(1);
    wait_for_leader(&cluster, Duration::from_secs(30), |l| l == 0, "failover").await;
    let mut c = cluster.client_of(0).await;
    for i in 0..50 {
        c.put(format!("while-dc2-is-down/{i}"), "v", None).await.unwrap();
    }

    // dc2 comes back: the leader returns once dc2 has been healthy and
    // caught up for the hold time, and not before.
    let back = Instant::now();
    cluster.start_member(1);
    wait_for_leader(&cluster, Duration::from_secs(60), |l| l == 1, "failback").await;
    let waited = back.elapsed();
    eprintln!(
        "failback {:.1} s after dc2's member restarted (hold {HOLD:?})",
        waited.as_secs_f64()
    );
    assert!(
        waited >= HOLD,
        "the leader moved back after {waited:?}, within the hold of {HOLD:?}"
    );
    // It serves, with everything written while it was away.
    let mut c = cluster.client_of(1).await;
    let got = c
        .get("while-dc2-is-down/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_returns_when_the_new_leader_serves() {
    let cluster = Cluster::start(Options::default()).await;
    for round in 0..3 {
        let leader = cluster.leader().await;
        let target = (leader + 1) % 3;
        let mut c = cluster.client_of(leader).await;
        let target_id = c.member_list().await.unwrap().members()[target].id();
        let started = Instant::now();
        c.move_leader(target_id).await.unwrap();
        let took = started.elapsed();
        // Asked once, right away: the target already leads and serves a
        // linearizable read.
        let mut t = cluster.client_of(target).await;
        let status = t.status().await.unwrap();
        assert_eq!(
            status.leader(),
            target_id,
            "round {round}: MoveLeader answered before the target led"
        );
        t.get("any", None).await.unwrap();
        eprintln!(
            "round {round}: leadership moved to m{} in {} ms",
            target + 1,
            took.as_millis()
        );
    }
}

/// Adds `m4` in dc1 as a learner (with `extra` in its config) and starts
/// it: its member id, its client endpoint, and its process.
async fn add_learner(cluster: &Cluster, c: &mut etcd_client::Client, extra: &str) -> (u64, String, common::KillOnDrop) {
    let joiner = common::joiner(cluster, "m4", "dc1", extra);
    let added = c
        .member_add(
            [joiner.add_url.clone()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .unwrap();
    let member = added.member().unwrap();
    assert!(member.is_learner());
    let process = common::serve(&joiner.config, &joiner.log);
    (member.id(), format!("http://127.0.0.1:{}", joiner.client_port), process)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_learner_is_promoted_when_the_config_asks() {
    let cluster = Cluster::start(Options {
        extra_config: "auto_promote_learners = true".into(),
        ..Options::default()
    })
    .await;
    let mut c = cluster.client().await;
    for i in 0..100 {
        c.put(format!("before-the-learner/{i}"), "v", None).await.unwrap();
    }
    // A standby in dc1, added as a learner.
    let (m4_id, m4_endpoint, _m4) = add_learner(&cluster, &mut c, "auto_promote_learners = true").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.get("before-the-learner/", None).await.unwrap();
        let listed = c.member_list().await.unwrap();
        let m4 = listed.members().iter().find(|m| m.id() == m4_id).expect("m4 is listed");
        if !m4.is_learner() {
            break;
        }
        assert!(Instant::now() < deadline, "the caught-up learner was never promoted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Four voters now; writes still commit, and the new voter holds them.
    c.put("after-the-promotion", "v", None).await.unwrap();
    let mut m4 = common::connect(&[m4_endpoint]).await;
    let got = m4
        .get(
            "before-the-learner/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_stays_a_learner_by_default() {
    let cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;
    let (m4_id, m4_endpoint, _m4) = add_learner(&cluster, &mut c, "").await;
    // Caught up (it serves a serializable read of a key written after it
    // joined), then given time a promotion would have taken.
    c.put("k", "v", None).await.unwrap();
    let mut m4 = common::connect(&[m4_endpoint]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while m4
        .get("k", Some(etcd_client::GetOptions::new().with_serializable()))
        .await
        .map_or(true, |r| r.kvs().is_empty())
    {
        assert!(Instant::now() < deadline, "the learner never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = c.member_list().await.unwrap();
    let m4 = listed.members().iter().find(|m| m.id() == m4_id).unwrap();
    assert!(m4.is_learner(), "a learner was promoted without auto_promote_learners");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_learner_replaces_a_dead_voter_and_the_cluster_survives_another_loss() {
    let policy = "auto_promote_learners = true\nvoters = 3\nreplace_unreachable_voter_after_ms = 2000";
    let mut cluster = Cluster::start(Options {
        extra_config: policy.into(),
        ..Options::default()
    })
    .await;
    let mut c = cluster.client_of(2).await;
    let (m4_id, _, _m4) = add_learner(&cluster, &mut c, policy).await;
    let m1_id = firebreak_config::member_id("m1");
    let learner = |listed: &etcd_client::MemberListResponse, id: u64| {
        listed.members().iter().find(|m| m.id() == id).map(|m| m.is_learner())
    };
    // Three voters already: the standby stays a learner while all is well.
    c.put("k", "v", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = c.member_list().await.unwrap();
    assert_eq!(learner(&listed, m4_id), Some(true), "promoted past `voters = 3`");

    // dc1's voter dies: two seconds later its standby takes its place.
    cluster.kill(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Ok(listed)) = tokio::time::timeout(Duration::from_secs(5), c.member_list()).await {
            if learner(&listed, m4_id) == Some(false) && learner(&listed, m1_id) == Some(true) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the dead voter was never replaced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Voters m2, m3, m4: the cluster now survives losing m2 as well.
    cluster.kill(1);
    let put = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if c.put("after-two-losses", "v", None).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        put.is_ok(),
        "no write after losing m1 and m2, with m4 promoted in m1's place"
    );
}
