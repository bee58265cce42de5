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
    let start = cluster
        .client()
        .await
        .get("__ready", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
        + 1;

    // The watcher is served by the leader's member, which will die.
    let watch_endpoint = cluster.members[leader].endpoint();
    let others: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].endpoint())
        .collect();
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
            let Ok(mut stream) = c
                .watch("w/", Some(WatchOptions::new().with_prefix().with_start_revision(next)))
                .await
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
        assert!(
            seen.contains(&(*rev, key.clone())),
            "the watcher missed {key} at revision {rev}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_lease_survives_a_leader_kill_and_expires_after() {
    let mut cluster = Cluster::start(Options::default()).await;
    let leader = cluster.leader().await;
    // Granted through the leader just before it dies: the survivors may
    // not have applied the grant yet when one of them takes over.
    let mut c = cluster.client_of(leader).await;
    let lease = c.lease_grant(2, None).await.unwrap();
    let id = lease.id();
    c.put("session", "alive", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    let mut keeper = client_without(&cluster, leader).await;
    cluster.kill(leader);
    // Keep it alive through the failover for longer than three TTLs, as
    // often as a client in a hurry would; every answer must carry the
    // lease's real TTL, never 0 ("not found").
    let mut answers = Vec::new();
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        if let Some(ttl) = common::keep_alive_once(&mut keeper, id, Duration::from_secs(1)).await {
            answers.push(ttl);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answers.len() > 10, "too few keep-alives were answered: {answers:?}");
    assert!(
        answers.iter().all(|&ttl| ttl == 2),
        "keep-alives after the failover answered TTLs {answers:?} (0 means not found)"
    );
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

/// Issue 9, item 3: members that apply late (failpoint `apply-delay`, 1 s
/// before every batch, on both followers) still answer lease questions as
/// of every acknowledged write: TimeToLive lists a key put just before,
/// Lock and Campaign find a lease granted just before, and after the
/// leader dies its successor, which has not applied the grant yet when it
/// wins, answers keep-alives with the real TTL, never 0 ("not found").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_answers_reflect_every_acknowledged_write_on_members_that_apply_late() {
    let mut cluster = Cluster::start(Options {
        bin: Some(common::failpoints_binary()),
        ..Options::default()
    })
    .await;
    let leader = cluster.leader().await;
    let slow = [("FAILPOINTS".to_string(), "apply-delay=return(1000)".to_string())];
    for f in (0..3).filter(|&i| i != leader) {
        cluster.kill(f);
        cluster.start_member_with_env(f, &slow);
    }
    cluster.wait_writable(Duration::from_secs(60)).await;
    // Every apply costs a second: let the backlog drain.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut at_leader = cluster.client_of(leader).await;
    let mut at_follower = cluster.client_of(follower).await;

    let id = at_leader.lease_grant(30, None).await.unwrap().id();
    at_leader
        .put("with-lease", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    let ttl = at_follower
        .lease_time_to_live(id, Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert!(ttl.ttl() > 0, "TimeToLive at a lagging member: {ttl:?}");
    assert_eq!(
        ttl.keys(),
        [b"with-lease".to_vec()],
        "TimeToLive at a lagging member misses the key"
    );

    let id = at_leader.lease_grant(30, None).await.unwrap().id();
    at_follower
        .lock("lagging-lock", Some(LockOptions::new().with_lease(id)))
        .await
        .expect("a lock at a lagging member finds a lease granted before");
    let id = at_leader.lease_grant(30, None).await.unwrap().id();
    at_follower
        .campaign("lagging-election", "me", id)
        .await
        .expect("a campaign at a lagging member finds a lease granted before");

    // The failover: granted just before the leader dies, the lease is not
    // yet applied on the member that takes over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let id = at_leader.lease_grant(20, None).await.unwrap().id();
    let mut keeper = client_without(&cluster, leader).await;
    cluster.kill(leader);
    let mut answers = Vec::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        if let Some(ttl) = common::keep_alive_once(&mut keeper, id, Duration::from_secs(2)).await {
            answers.push(ttl);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!answers.is_empty(), "no keep-alive was answered after the failover");
    assert!(
        answers.iter().all(|&ttl| ttl == 20),
        "keep-alives after the failover answered TTLs {answers:?} (0 means not found)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_blocks_others_until_released_or_its_lease_ends() {
    let cluster = Cluster::start(Options::default()).await;
    let mut a = cluster.client_of(0).await;
    let mut b = cluster.client_of(1).await;
    let lease_a = a.lease_grant(30, None).await.unwrap().id();
    let lease_b = b.lease_grant(30, None).await.unwrap().id();
    let held = a
        .lock("job", Some(LockOptions::new().with_lease(lease_a)))
        .await
        .unwrap();

    let mut b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.lock("job", Some(LockOptions::new().with_lease(lease_b))).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished(), "a second holder got the lock");
    a.unlock(held.key()).await.unwrap();
    let got_b = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(got_b.key().starts_with(b"job/"));

    // A third waiter gets it when the holder's lease ends.
    let mut c = cluster.client_of(2).await;
    let lease_c = c.lease_grant(30, None).await.unwrap().id();
    let mut c2 = c.clone();
    let waiter = tokio::spawn(async move { c2.lock("job", Some(LockOptions::new().with_lease(lease_c))).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished());
    b.lease_revoke(lease_b).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
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
    a.proclaim(
        "a-2",
        Some(etcd_client::ProclaimOptions::new().with_leader(leader_key.clone())),
    )
    .await
    .unwrap();
    let second = observer.message().await.unwrap().unwrap();
    assert_eq!(second.kv().unwrap().value(), b"a-2");
    a.resign(Some(etcd_client::ResignOptions::new().with_leader(leader_key)))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), challenger)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
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
        // A linearizable read first, so the member has applied `rev`.
        m.get("k19", None).await.unwrap();
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
    let alarms = c
        .alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(alarms.alarms().len(), 1);
    assert!(c.put("small", "v", None).await.is_err(), "writes go on under NOSPACE");

    // Free space, compact, disarm: writes are back.
    c.delete("big", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let now = c.get("k0", None).await.unwrap().header().unwrap().revision();
    c.compact(now, None).await.unwrap();
    let member = alarms.alarms()[0].member_id();
    let mut disarm = etcd_client::AlarmOptions::new();
    disarm.with_member(member);
    c.alarm(
        etcd_client::AlarmAction::Deactivate,
        etcd_client::AlarmType::Nospace,
        Some(disarm),
    )
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
    restored.restore_each(&file);
    let restored = restored.launch().await;
    let mut r = restored.client().await;
    let got = r.get("s/", Some(GetOptions::new().with_prefix())).await.unwrap();
    assert_eq!(got.count(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_the_past_filters_progress_fragments_and_compaction() {
    let cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;
    let first = c.put("f/a", "1", None).await.unwrap().header().unwrap().revision();
    c.put("f/a", "2", None).await.unwrap();
    c.delete("f/a", None).await.unwrap();

    // From a past revision, with prev_kv and the NOPUT filter.
    let mut s = c
        .watch(
            "f/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(first)
                    .with_prev_key()
                    .with_filters([etcd_client::WatchFilterType::NoPut]),
            ),
        )
        .await
        .unwrap();
    let created = s.message().await.unwrap().unwrap();
    assert!(created.created());
    let events = s.message().await.unwrap().unwrap();
    assert_eq!(events.events().len(), 1);
    let delete = &events.events()[0];
    assert_eq!(delete.event_type(), EventType::Delete);
    assert_eq!(delete.prev_kv().unwrap().value(), b"2");

    // A progress request answers with the current revision.
    s.request_progress().await.unwrap();
    let progress = s.message().await.unwrap().unwrap();
    assert!(progress.events().is_empty());
    let now = c.get("f/a", None).await.unwrap().header().unwrap().revision();
    assert_eq!(progress.header().unwrap().revision(), now);

    // Two 1 MiB events do not fit one message: fragments.
    let big = vec![b'x'; 1 << 20];
    let from = c
        .put("big/1", big.clone(), None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.put("big/2", big, None).await.unwrap();
    // Watch through a member that has applied both writes (a linearizable
    // read through it first), so that its first sync holds both events.
    let mut one = cluster.client_of(0).await;
    one.get("big/2", None).await.unwrap();
    let mut f = one
        .watch(
            "big/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(from)
                    .with_fragment(),
            ),
        )
        .await
        .unwrap();
    let mut events = 0;
    let mut fragments = 0;
    while events < 2 {
        let m = tokio::time::timeout(Duration::from_secs(10), f.message())
            .await
            .expect("no events within 10 s")
            .unwrap()
            .unwrap();
        events += m.events().len();
        fragments += usize::from(m.0.fragment);
    }
    assert!(fragments >= 1, "a 2 MiB batch was sent unfragmented");

    // A start below the compaction revision is cancelled with it.
    let head = c.get("f/a", None).await.unwrap().header().unwrap().revision();
    c.compact(head, None).await.unwrap();
    // Through a member that has applied the compaction (a linearizable
    // read through it first): a lagging one would still serve the range.
    one.get("f/a", None).await.unwrap();
    let mut old = one
        .watch("f/", Some(WatchOptions::new().with_prefix().with_start_revision(first)))
        .await
        .unwrap();
    let mut cancelled = None;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(10), old.message())
        .await
        .expect("no cancellation within 10 s")
        .unwrap()
    {
        if m.canceled() {
            cancelled = Some(m.compact_revision());
            break;
        }
    }
    assert_eq!(cancelled, Some(head));
}

/// A progress answer at revision P promises that every event up to P was
/// sent: while writers keep the revision moving, no event at or below an
/// answered progress revision may come after it (the chaos drill once
/// caught one, when the answer took a newer revision than its sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_answers_never_run_ahead_of_the_events_sent() {
    let cluster = Cluster::start(Options::default()).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut c = cluster.client_of(w % 3).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if c.put(format!("pr/{w}"), n.to_string(), None).await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    // Watch through a follower and the leader alike: each applies on its own.
    let mut requests = 0;
    let mut events = 0;
    for member in 0..3 {
        let mut c = cluster.client_of(member).await;
        let mut s = c.watch("pr/", Some(WatchOptions::new().with_prefix())).await.unwrap();
        assert!(s.message().await.unwrap().unwrap().created());
        let mut promised = 0;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            s.request_progress().await.unwrap();
            requests += 1;
            loop {
                let m = s.message().await.unwrap().unwrap();
                if m.events().is_empty() {
                    // The progress answer.
                    promised = m.header().unwrap().revision();
                    break;
                }
                for e in m.events() {
                    let revision = e.kv().unwrap().mod_revision();
                    assert!(
                        revision > promised,
                        "member {member}: event at revision {revision} after a progress answer at {promised}"
                    );
                    events += 1;
                }
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    println!("{requests} progress requests, {events} events, {writes} writes");
    assert!(requests > 100 && events > 100, "too little happened to judge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_watchers_on_one_member_each_get_the_event() {
    let cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client_of(0).await;
    let mut streams = Vec::new();
    for i in 0..2000 {
        streams.push(c.watch(format!("many/{}", i % 50), None).await.unwrap());
    }
    for s in &mut streams {
        assert!(s.message().await.unwrap().unwrap().created());
    }
    let started = Instant::now();
    for k in 0..50 {
        c.put(format!("many/{k}"), "x", None).await.unwrap();
    }
    for s in &mut streams {
        let m = tokio::time::timeout(Duration::from_secs(20), s.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.events().len(), 1);
    }
    eprintln!("2000 watchers: 50 writes delivered to all in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burned_datacenter_is_replaced_while_clients_write() {
    let mut cluster = Cluster::start(Options::default()).await;
    // dc3's member burns.
    let burned = 2;
    cluster.kill(burned);
    let mut c = client_without(&cluster, burned).await;
    let writer = {
        let mut c = c.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..300 {
                if c.put(format!("r/{i:03}"), "v", None).await.is_ok() {
                    acked.push(i);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };

    // Removing it first would leave two datacenters: refused.
    let members = c.member_list().await.unwrap();
    let burned_id = members.members().iter().find(|m| m.name() == "m3").unwrap().id();
    let refused = c.member_remove(burned_id).await.unwrap_err().to_string();
    assert!(refused.contains("span only 2 datacenter"), "{refused}");

    // A new member in dc4 joins, then the burned one is removed.
    let joiner = common::joiner(&cluster, "m4", "dc4", "");
    let _m4 = common::serve(&joiner.config, &joiner.log);
    let added = c.member_add([joiner.add_url.clone()], None).await.unwrap();
    let m4_id = added.member().unwrap().id();
    let removed = c.member_remove(burned_id).await.unwrap();
    let names: Vec<String> = removed.members().iter().map(|m| m.name().to_string()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"m4".to_string()));
    // MemberList is served from a member's own view (as in etcd 3.4): ask
    // one member after a linearizable read there, so it has applied the
    // changes.
    let mut one = cluster.client_of(0).await;
    one.get("r/", None).await.unwrap();
    let listed = one.member_list().await.unwrap();
    assert_eq!(listed.members().len(), 3);
    let m4 = listed.members().iter().find(|m| m.name() == "m4").unwrap();
    assert_eq!(m4.id(), m4_id, "MemberAdd answered the id the member list shows");
    assert!(!m4.is_learner());

    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 250,
        "writes stalled during the replacement: {} of 300",
        acked.len()
    );
    // The new member holds every acknowledged write.
    let mut fresh = common::connect(&[format!("http://127.0.0.1:{}", joiner.client_port)]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = fresh
            .get(
                "r/",
                Some(GetOptions::new().with_prefix().with_serializable().with_count_only()),
            )
            .await;
        if got.map(|g| g.count()).unwrap_or(0) as usize >= acked.len() {
            break;
        }
        assert!(Instant::now() < deadline, "the new member did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
