//! Crashes and restarts of real member processes: nothing acknowledged is
//! lost, and writes resume after the leader is killed.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, Options};
use etcd_client::GetOptions;

/// Reads every `w/` key through member `i` (serializably, so the member's
/// own replica answers) and returns key → value.
async fn replica_contents(cluster: &Cluster, i: usize) -> BTreeMap<String, String> {
    try_replica_contents(cluster, i).await.unwrap()
}

async fn try_replica_contents(cluster: &Cluster, i: usize) -> Result<BTreeMap<String, String>, etcd_client::Error> {
    let mut c = cluster.client_of(i).await;
    let resp = c
        .get("w/", Some(GetOptions::new().with_prefix().with_serializable()))
        .await?;
    Ok(resp
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.value_str().unwrap().to_string()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_member_keeps_every_write() {
    let mut cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;
    for i in 0..50 {
        c.put(format!("w/{i:03}"), format!("v{i}"), None).await.unwrap();
    }
    let revision = c.get("w/000", None).await.unwrap().header().unwrap().revision();
    drop(c);

    // A clean stop of all, then all back on the same data.
    for i in 0..3 {
        cluster.stop(i);
    }
    for i in 0..3 {
        cluster.start_member(i);
    }
    cluster.wait_writable(Duration::from_secs(30)).await;
    let mut c = cluster.client().await;
    let all = c.get("w/", Some(GetOptions::new().with_prefix())).await.unwrap();
    assert_eq!(all.count(), 50);
    assert!(all.header().unwrap().revision() > revision);

    // A crash of all (SIGKILL), then all back.
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.start_member(i);
    }
    cluster.wait_writable(Duration::from_secs(30)).await;
    for i in 0..3 {
        assert_eq!(
            replica_contents(&cluster, i).await.len(),
            50,
            "member {i} after a crash of all"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(Options::default()).await;
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Writers, each against every endpoint, retrying on errors as clients do.
    let mut writers = Vec::new();
    for w in 0..4 {
        let endpoints = cluster.endpoints();
        let acked = acked.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            let mut last_ok = Instant::now();
            let mut longest_gap = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let endpoint = &endpoints[(w + n) % endpoints.len()];
                let key = format!("w/{w}-{n:05}");
                let value = format!("value-{w}-{n}");
                let attempt = async {
                    let mut c = common::connect(std::slice::from_ref(endpoint)).await;
                    c.put(key.clone(), value.clone(), None).await
                };
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), attempt).await {
                    acked.lock().unwrap().insert(key, value);
                    longest_gap = longest_gap.max(last_ok.elapsed());
                    last_ok = Instant::now();
                }
                n += 1;
            }
            longest_gap
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = cluster.leader().await;
    let before = acked.lock().unwrap().len();
    cluster.kill(leader);
    let killed_at = Instant::now();

    // Writes resume on the survivors.
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if acked.lock().unwrap().len() > before + 20 {
            break;
        }
        if killed_at.elapsed() > Duration::from_secs(15) {
            let logs: Vec<String> = (0..cluster.members.len())
                .filter(|&i| i != leader)
                .map(|i| format!("--- member {i}:\n{}", cluster.log(i)))
                .collect();
            panic!(
                "writes did not resume within 15 s of killing the leader\n{}",
                logs.join("\n")
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The old leader comes back and catches up.
    cluster.start_member(leader);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    cluster.wait_writable(Duration::from_secs(30)).await;

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > before);
    let mut c = cluster.client().await;
    let linearizable = c.get("w/", Some(GetOptions::new().with_prefix())).await.unwrap();
    let seen: BTreeMap<String, String> = linearizable
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.value_str().unwrap().to_string()))
        .collect();
    for (key, value) in &acked {
        assert_eq!(seen.get(key), Some(value), "acknowledged write {key} was lost");
    }
    for i in 0..3 {
        let replica = replica_contents(&cluster, i).await;
        for key in acked.keys() {
            assert!(replica.contains_key(key), "member {i} misses acknowledged {key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_a_compacted_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(Options {
        snapshot_entries: 50,
        ..Options::default()
    })
    .await;
    let leader = cluster.leader().await;
    let lagging = (leader + 1) % 3;
    cluster.kill(lagging);

    let others: Vec<usize> = (0..3).filter(|i| *i != lagging).collect();
    let mut c = cluster.client_of(others[0]).await;
    for i in 0..400 {
        c.put(format!("w/{i:04}"), format!("v{i}"), None).await.unwrap();
    }
    drop(c);

    cluster.start_member(lagging);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = try_replica_contents(&cluster, lagging).await.map_or(0, |r| r.len());
        if n == 400 {
            break;
        }
        assert!(Instant::now() < deadline, "lagging member has {n} of 400 keys");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        cluster.log(lagging).contains("snapshot installed"),
        "the lagging member should have caught up by snapshot; log:\n{}",
        cluster.log(lagging)
    );
}

/// openraft 0.10 replicates an entry while the leader's own write of it
/// is still under way, and commits it once a majority holds it on disk:
/// the followers alone, if the leader's disk is slow. With the leader's
/// log writes held back 1.5 s (failpoint `leader-log-write`), a put is
/// answered before the leader's copy is on disk; the leader is then killed
/// (SIGKILL) before that copy lands. The acknowledged write must survive:
/// the followers hold it, the next leader serves it, and the old leader,
/// restarted, gets it back from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_acknowledged_before_the_leaders_own_fsync_survives_the_leaders_death() {
    const HELD: Duration = Duration::from_millis(1500);
    let bin = common::failpoints_binary();
    let mut cluster = Cluster::start(Options {
        bin: Some(bin),
        env: vec![(
            "FAILPOINTS".into(),
            format!("leader-log-write=sleep({})", HELD.as_millis()),
        )],
        ..Options::default()
    })
    .await;
    let leader = cluster.leader().await;
    let followers: Vec<usize> = (0..cluster.members.len()).filter(|&i| i != leader).collect();
    // The leader's writes before the put land first, so that the put's own
    // write is the one held back when the leader dies.
    tokio::time::sleep(HELD * 2).await;

    let mut writer = cluster.client_of(leader).await;
    let started = Instant::now();
    writer.put("held", "v", None).await.expect("the put is acknowledged");
    let answered = started.elapsed();
    assert!(
        answered < HELD - Duration::from_millis(300),
        "the put took {answered:?}: it waited for the leader's held-back write, so the test \
         never reached the window it is about"
    );
    cluster.kill(leader);
    eprintln!("put answered after {answered:?}; leader killed with its copy not yet on disk");

    for &f in &followers {
        let mut c = cluster.client_of(f).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match c.get("held", None).await {
                Ok(r) if r.kvs().first().is_some_and(|kv| kv.value() == b"v") => break,
                Ok(r) => panic!("member {f} lost the acknowledged write: {:?}", r.kvs()),
                Err(e) => {
                    assert!(Instant::now() < deadline, "member {f} serves no reads: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    cluster.start_member(leader);
    let mut c = cluster.client_of(leader).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = c.get("held", Some(GetOptions::new().with_serializable())).await;
        if seen.is_ok_and(|r| r.kvs().first().is_some_and(|kv| kv.value() == b"v")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted leader never got the write back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
