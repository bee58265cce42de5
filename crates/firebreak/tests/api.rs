//! Watches, leases, locks, elections and maintenance through the
//! `etcd-client` crate, including across the loss of the leader.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, Options};
use etcd_client::{Client, EventType, GetOptions, LockOptions, PutOptions, WatchOptions};

/// Connects to every member except `skip`.
async fn client_without(cluster: &Cluster, skip: usize) -> Client {
    let endpoints: Vec<String> = (0..cluster.members.len())
        .filter(|i| *i != skip)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    common::connect(&endpoints).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_event_once_while_the_leader_is_killed() {
    let mut cluster = Cluster::start(Options::default()).await;
    let leader = cluster.leader().await;
    let start = cluster.client().await.get("__ready", None).await.unwrap().header().unwrap().revision() + 1;

    // The watcher is served by the leader's member, which will die.
    let watch_endpoint = cluster.members[leader].endpoint();
    let others: Vec<String> = (0..3).filter(|i| *i != leader).map(|i| cluster.members[i].endpoint()).collect();
    let watcher = tokio::spawn(async move {
        let mut seen: Vec<(i64, String)> = Vec::new();
        let mut next = start;
        let mut endpoints = vec![watch_endpoint];
        let deadline = Instant::now() + Duration::from_secs(40);
        'outer: while Instant::now() < deadline {
            let Ok(mut c) = Client::connect(&endpoints, None).await else {
                endpoints = others.clone();
                continue;
            };
            let Ok(mut stream) = c.watch("w/", Some(WatchOptions::new().with_prefix().with_start_revision(next))).await
            else {
                endpoints = others.clone();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            loop {
                match tokio::time::timeout(Duration::from_secs(3), stream.message()).await {
                    Ok(Ok(Some(resp))) => {
                        for e in resp.events() {
                            let kv = e.kv().unwrap();
                            assert_eq!(e.event_type(), EventType::Put);
                            seen.push((kv.mod_revision(), kv.key_str().unwrap().to_string()));
                            next = kv.mod_revision() + 1;
                            if kv.key_str().unwrap() == "w/199" {
                                break 'outer;
                            }
                        }
                    }
                    // The stream broke (its member died) or went quiet:
                    // resume elsewhere from the last revision plus one.
                    _ => {
                        endpoints = others.clone();
                        break;
                    }
                }
            }
        }
        seen
    });

    let mut writer = client_without(&cluster, leader).await;
    let mut revisions = BTreeMap::new();
    for i in 0..200 {
        if i == 60 {
            cluster.kill(leader);
        }
        let key = format!("w/{i:03}");
        loop {
            match writer.put(key.clone(), "v", None).await {
                Ok(r) => {
                    revisions.insert(r.header().unwrap().revision(), key.clone());
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    let seen = watcher.await.unwrap();
    let revs: Vec<i64> = seen.iter().map(|(r, _)| *r).collect();
    let mut sorted = revs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(revs, sorted, "events out of order or duplicated");
    for (rev, key) in &revisions {
        assert!(seen.contains(&(*rev, key.clone())), "the watcher missed {key} at revision {rev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_lease_survives_a_leader_kill_and_expires_after() {
    let mut cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;
    let lease = c.lease_grant(2, None).await.unwrap();
    let id = lease.id();
    c.put("session", "alive", Some(PutOptions::new().with_lease(id))).await.unwrap();

    let leader = cluster.leader().await;
    let mut keeper = client_without(&cluster, leader).await;
    cluster.kill(leader);
    // Keep it alive through the failover for longer than three TTLs.
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        if let Ok((mut k, mut s)) = keeper.lease_keep_alive(id).await {
            let _ = k.keep_alive().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), s.message()).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = keeper.get("session", None).await.unwrap();
    assert_eq!(got.kvs().len(), 1, "a kept-alive lease expired during a failover");
    let ttl = keeper.lease_time_to_live(id, None).await.unwrap();
    assert!(ttl.ttl() > 0);

    // Without keep-alives it expires: TTL plus at most an election timeout.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if keeper.get("session", None).await.unwrap().kvs().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(keeper.lease_time_to_live(id, None).await.unwrap().ttl(), -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_blocks_others_until_released_or_its_lease_ends() {
    let cluster = Cluster::start(Options::default()).await;
    let mut a = cluster.client_of(0).await;
    let mut b = cluster.client_of(1).await;
    let lease_a = a.lease_grant(30, None).await.unwrap().id();
    let lease_b = b.lease_grant(30, None).await.unwrap().id();
    let held = a.lock("job", Some(LockOptions::new().with_lease(lease_a))).await.unwrap();

    let mut b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.lock("job", Some(LockOptions::new().with_lease(lease_b))).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished(), "a second holder got the lock");
    a.unlock(held.key()).await.unwrap();
    let got_b = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap().unwrap();
    assert!(got_b.key().starts_with(b"job/"));

    // A third waiter gets it when the holder's lease ends.
    let mut c = cluster.client_of(2).await;
    let lease_c = c.lease_grant(30, None).await.unwrap().id();
    let mut c2 = c.clone();
    let waiter = tokio::spawn(async move { c2.lock("job", Some(LockOptions::new().with_lease(lease_c))).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished());
    b.lease_revoke(lease_b).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_campaign_proclaim_observe_and_resign() {
    let cluster = Cluster::start(Options::default()).await;
    let mut a = cluster.client_of(0).await;
    let mut b = cluster.client_of(1).await;
    let lease_a = a.lease_grant(30, None).await.unwrap().id();
    let lease_b = b.lease_grant(30, None).await.unwrap().id();
    let won = a.campaign("svc", "a-1", lease_a).await.unwrap();
    let leader_key = won.leader().unwrap().clone();
    assert_eq!(b.leader("svc").await.unwrap().kv().unwrap().value(), b"a-1");

    let mut observer = b.observe("svc").await.unwrap();
    let first = observer.message().await.unwrap().unwrap();
    assert_eq!(first.kv().unwrap().value(), b"a-1");

    let mut b2 = b.clone();
    let challenger = tokio::spawn(async move { b2.campaign("svc", "b-1", lease_b).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!challenger.is_finished());
    a.proclaim("a-2", Some(etcd_client::ProclaimOptions::new().with_leader(leader_key.clone()))).await.unwrap();
    let second = observer.message().await.unwrap().unwrap();
    assert_eq!(second.kv().unwrap().value(), b"a-2");
    a.resign(Some(etcd_client::ResignOptions::new().with_leader(leader_key))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), challenger).await.unwrap().unwrap().unwrap();
    assert_eq!(a.leader("svc").await.unwrap().kv().unwrap().value(), b"b-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_hashes_agree_and_the_space_quota_alarms() {
    let cluster = Cluster::start(Options {
        quota_bytes: Some(64 * 1024),
        ..Options::default()
    })
    .await;
    let mut c = cluster.client().await;
    for i in 0..20 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    let rev = c.get("k0", None).await.unwrap().header().unwrap().revision();
    let mut hashes = Vec::new();
    for i in 0..3 {
        let mut m = cluster.client_of(i).await;
        // Serializable read first, so the member has applied `rev`.
        m.get("k19", Some(GetOptions::new().with_serializable())).await.unwrap();
        hashes.push(m.hash_kv(rev).await.unwrap().hash());
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "replicas disagree: {hashes:?}");
    c.defragment().await.unwrap();

    // Fill past the quota: NOSPACE, then writes are refused.
    let big = vec![b'x'; 8 * 1024];
    let mut refused = None;
    for i in 0..20 {
        if let Err(e) = c.put(format!("big{i}"), big.clone(), None).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let refused = refused.expect("the quota was never hit");
    assert!(refused.contains("database space exceeded"), "{refused}");
    let alarms = c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None).await.unwrap();
    assert_eq!(alarms.alarms().len(), 1);
    assert!(c.put("small", "v", None).await.is_err(), "writes go on under NOSPACE");

    // Free space, compact, disarm: writes are back.
    c.delete("big", Some(etcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    let now = c.get("k0", None).await.unwrap().header().unwrap().revision();
    c.compact(now, None).await.unwrap();
    let member = alarms.alarms()[0].member_id();
    let mut disarm = etcd_client::AlarmOptions::new();
    disarm.with_member(member);
    c.alarm(etcd_client::AlarmAction::Deactivate, etcd_client::AlarmType::Nospace, Some(disarm))
        .await
        .unwrap();
    c.put("small", "v", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_hands_leadership_to_another_voter() {
    let cluster = Cluster::start(Options::default()).await;
    let leader = cluster.leader().await;
    let target = (leader + 1) % 3;
    let mut c = cluster.client_of(leader).await;
    let members = c.member_list().await.unwrap();
    let target_id = members.members()[target].id();
    c.move_leader(target_id).await.unwrap();
    assert_eq!(cluster.leader().await, target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_a_new_cluster() {
    let cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;
    for i in 0..30 {
        c.put(format!("s/{i}"), format!("v{i}"), None).await.unwrap();
    }
    let mut stream = c.snapshot().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes.extend_from_slice(chunk.blob());
    }
    let file = cluster.dir.path().join("backup.db");
    std::fs::write(&file, &bytes).unwrap();

    // A new cluster, each member restored from the same file first.
    let restored = Cluster::prepare(Options::default());
    for m in &restored.members {
        let out = std::process::Command::new(common::BIN)
            .arg("restore")
            .arg(&file)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let restored = restored.launch().await;
    let mut r = restored.client().await;
    let got = r.get("s/", Some(GetOptions::new().with_prefix())).await.unwrap();
    assert_eq!(got.count(), 30);
}
