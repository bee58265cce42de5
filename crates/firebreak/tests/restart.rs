//! Issue 9: acknowledged writes must survive a leader that is killed with
//! SIGKILL and restarted at once, well inside one election timeout, while
//! clients write through every member. Before the fix the restarted leader
//! came back as leader of the same term and reused log ids that its
//! followers already held with other contents, so members diverged and
//! acknowledged writes were missing from some of them.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, Options};
use etcd_client::GetOptions;

/// Writers, spread over the members' endpoints.
const WRITERS: usize = 12;

/// Puts unique keys through member `endpoint` until `stop`, recording each
/// acknowledged key.
async fn writer(
    endpoint: String,
    id: usize,
    acked: Arc<Mutex<Vec<(Instant, Instant, String)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let mut attempts = 0;
    let mut seq = 0u64;
    let mut client = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if client.is_none() {
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(3));
            match etcd_client::Client::connect([endpoint.as_str()], Some(options)).await {
                Ok(c) => client = Some(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let c = client.as_mut().expect("connected");
        seq += 1;
        attempts += 1;
        let key = format!("w/{id:02}/{seq:08}");
        let sent = Instant::now();
        match c.put(key.as_str(), "v", None).await {
            Ok(_) => {
                acked.lock().unwrap().push((sent, Instant::now(), key));
            }
            // Unknown outcome: it may or may not have taken effect.
            Err(_) => {
                client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    attempts
}

/// Each member's applied revision, as its own status says (None: no answer).
async fn revisions(cluster: &Cluster) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for i in 0..cluster.members.len() {
        let status = async {
            let mut c = cluster.client_of(i).await;
            c.get("w/", Some(GetOptions::new().with_serializable().with_count_only()))
                .await
        };
        out.push(match tokio::time::timeout(Duration::from_secs(2), status).await {
            Ok(Ok(r)) => r.header().map(|h| h.revision()),
            _ => None,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_repeated_fast_restarts_of_the_leader() {
    restart_the_leader_under_load(Options::default()).await;
}

/// The same with a slow disk under the leader: each write of its own
/// entries takes 30 ms longer (failpoint `leader-log-write`), so that a
/// kill always finds entries that the followers hold and the leader has
/// not written yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_fast_restarts_of_a_leader_with_a_slow_disk() {
    restart_the_leader_under_load(Options {
        bin: Some(common::failpoints_binary()),
        env: vec![("FAILPOINTS".into(), "leader-log-write=sleep(30)".into())],
        ..Options::default()
    })
    .await;
}

/// Replication is pipelined: many AppendEntries in flight per follower,
/// their answers matched to them by order (`crates/firebreak-raft/src/network.rs`).
/// With one stream in ten broken before an answer is read (failpoint
/// `replication-stream-break`), openraft restarts the stream from what the
/// follower confirmed, and nothing acknowledged is lost when the leader
/// dies. Were an answer ever taken for a later request than its own, the
/// leader would count a follower for entries it does not hold, and a kill
/// would lose acknowledged writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_restarts_when_replication_streams_break() {
    restart_the_leader_under_load(Options {
        bin: Some(common::failpoints_binary()),
        env: vec![("FAILPOINTS".into(), "replication-stream-break=10%return".into())],
        ..Options::default()
    })
    .await;
}

/// Issue 9, item 6: with five or more voters, a proposal that openraft
/// answers "forward to leader" after it was appended may still be committed
/// by a later leader, so retrying it could apply it twice. Six voters (two
/// per datacenter), leaders killed and restarted or hung for longer than an
/// election timeout and then resumed (it finds its entries replaced), under
/// writes through every member: every key written once has version 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retried_write_is_applied_twice_with_six_voters() {
    restart_the_leader_under_load(Options {
        members: 6,
        ..Options::default()
    })
    .await;
}

async fn restart_the_leader_under_load(opts: Options) {
    let restarts: usize = std::env::var("FIREBREAK_TEST_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    // `firebreak up`'s timing: the restarted member is back well inside one
    // election timeout.
    let mut cluster = Cluster::start(Options {
        heartbeat_ms: 100,
        election_ms: 1000,
        ..opts
    })
    .await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    let endpoints = cluster.endpoints();
    for w in 0..WRITERS {
        writers.push(tokio::spawn(writer(
            endpoints[w % endpoints.len()].clone(),
            w,
            acked.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut restarted = Vec::new();
    let mut kills = Vec::new();
    for round in 0..restarts {
        let leader = cluster.leader().await;
        let before = acked.lock().unwrap().len();
        kills.push(Instant::now());
        let hang = cluster.members.len() > 3 && round % 2 == 1;
        if hang {
            // Hung past an election timeout, then back: it finds a new
            // leader whose entries replace its own unfinished ones.
            cluster.pause(leader, true);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            cluster.pause(leader, false);
        } else {
            cluster.kill(leader);
            cluster.start_member(leader);
        }
        restarted.push(cluster.members[leader].name.clone());
        eprintln!(
            "round {round}: {} the leader {} ({before} writes acknowledged so far)",
            if hang {
                "hung and resumed"
            } else {
                "killed and restarted"
            },
            cluster.members[leader].name
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = cluster.leader().await;
        let mut c = cluster.client_of(now).await;
        let term = c.status().await.map(|s| s.raft_term()).unwrap_or(0);
        eprintln!("  leader now {} in term {term}", cluster.members[now].name);
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut attempts = 0;
    for w in writers {
        attempts += w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{} of {attempts} writes acknowledged; leaders restarted: {restarted:?}",
        acked.len()
    );
    // What a restart costs: from the kill to the first acknowledgement of
    // a write sent after it.
    let outages: Vec<u128> = kills
        .iter()
        .filter_map(|k| {
            acked
                .iter()
                .filter(|(sent, _, _)| sent > k)
                .map(|(_, done, _)| (*done - *k).as_millis())
                .min()
        })
        .collect();
    eprintln!("writes resumed after each restart in (ms): {outages:?}");
    let unknown: usize = (0..cluster.members.len())
        .map(|i| cluster.log(i).matches("its outcome is unknown").count())
        .sum();
    eprintln!("proposals refused after they were appended (outcome unknown, not retried): {unknown}");
    let acked: BTreeSet<String> = acked.into_iter().map(|(_, _, key)| key).collect();
    assert!(acked.len() > 100, "too few writes were acknowledged to test anything");

    // Every member settles at the same revision...
    let deadline = Instant::now() + Duration::from_secs(20);
    let settled = loop {
        let revs = revisions(&cluster).await;
        if revs.iter().all(|r| r.is_some() && *r == revs[0]) {
            break revs[0].unwrap();
        }
        if Instant::now() > deadline {
            panic!("the members never agreed on a revision: {revs:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // ...holds every acknowledged write...
    let mut hashes = Vec::new();
    for i in 0..cluster.members.len() {
        let mut c = cluster.client_of(i).await;
        let got = c
            .get(
                "w/",
                Some(GetOptions::new().with_prefix().with_keys_only().with_serializable()),
            )
            .await
            .unwrap();
        let held: BTreeSet<String> = got
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        let missing: Vec<&String> = acked.difference(&held).collect();
        assert!(
            missing.is_empty(),
            "{} lacks {} acknowledged writes, e.g. {:?}",
            cluster.members[i].name,
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        // Each key was put once: a write applied twice would show version 2.
        let twice: Vec<String> = c
            .get("w/", Some(GetOptions::new().with_prefix().with_serializable()))
            .await
            .unwrap()
            .kvs()
            .iter()
            .filter(|kv| kv.version() != 1)
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        assert!(twice.is_empty(), "writes applied twice: {twice:?}");
        hashes.push(c.hash_kv(settled).await.unwrap().hash());
    }
    // ...and the same history.
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "HashKV at revision {settled} differs: {hashes:?}"
    );
}
