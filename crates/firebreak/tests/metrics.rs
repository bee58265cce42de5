//! `/metrics` and the health endpoints of real members, under a load whose
//! every request is known: the names and labels are etcd's (so that etcd's
//! dashboards and alerts read them), and the values are what the load
//! makes them. Then two members die, and the survivor says it has no
//! leader, as etcd's `/health` and `etcd_server_has_leader` do.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::http::get;
use common::{Cluster, Options};
use etcd_client::{Error, GetOptions, Txn, TxnOp};

/// Puts through member 0.
const PUTS: u64 = 25;
/// Successful ranges through member 0.
const RANGES: u64 = 10;
/// The space quota every member is configured with.
const QUOTA: u64 = 96 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_under_a_known_load() {
    let started = Instant::now();
    let mut cluster = Cluster::start(Options {
        quota_bytes: Some(QUOTA),
        ..Options::default()
    })
    .await;
    let n = cluster.members.len();

    // Member ids as `etcdctl member list` prints them (lowercase hex), by
    // index, checked against each member's own header.
    let listed: BTreeMap<String, String> = cluster
        .client()
        .await
        .member_list()
        .await
        .unwrap()
        .members()
        .iter()
        .map(|m| (m.name().to_string(), format!("{:x}", m.id())))
        .collect();
    let mut ids = Vec::new();
    for i in 0..n {
        let status = cluster.client_of(i).await.status().await.unwrap();
        let id = format!("{:x}", status.header().unwrap().member_id());
        assert_eq!(listed.get(&cluster.members[i].name), Some(&id), "{listed:?}");
        ids.push(id);
    }
    let leader = cluster.leader().await;

    // The load, through member 0 only; nothing else sends it gRPC calls
    // meanwhile, so its counters move by exactly this much.
    let before = scrape(&cluster, 0).await;
    let mut client = cluster.client_of(0).await;
    let mut revision = 0;
    for i in 0..PUTS {
        let put = client.put(format!("load/{i:03}"), "v", None).await.unwrap();
        revision = put.header().unwrap().revision();
    }
    let puts_done = scrape(&cluster, 0).await;
    for _ in 0..RANGES {
        let got = client
            .get("load/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(got.kvs().len() as u64, PUTS);
    }
    // A range at a future revision: OutOfRange, as etcd answers it.
    let future = client
        .get("load/000", Some(GetOptions::new().with_revision(revision + 1000)))
        .await
        .unwrap_err();
    assert_eq!(grpc_code(future), tonic::Code::OutOfRange);
    // A txn of more operations than etcd allows (128): InvalidArgument.
    let ops: Vec<TxnOp> = (0..129).map(|i| TxnOp::put(format!("big/{i}"), "v", None)).collect();
    let too_big = client.txn(Txn::new().and_then(ops)).await.unwrap_err();
    assert_eq!(grpc_code(too_big), tonic::Code::InvalidArgument);
    let after = scrape(&cluster, 0).await;

    let kv = |method: &'static str| {
        [
            ("grpc_type", "unary"),
            ("grpc_service", "etcdserverpb.KV"),
            ("grpc_method", method),
        ]
    };
    let delta = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let with = |base: [(&'static str, &'static str); 3], code: &'static str| {
        let mut l = base.to_vec();
        l.push(("grpc_code", code));
        l
    };
    assert_eq!(delta("grpc_server_handled_total", &with(kv("Put"), "OK")), PUTS as f64);
    assert_eq!(
        delta("grpc_server_handled_total", &kv("Put")),
        PUTS as f64,
        "Put failed somewhere"
    );
    assert_eq!(delta("grpc_server_started_total", &kv("Put")), PUTS as f64);
    assert_eq!(
        delta("grpc_server_handled_total", &with(kv("Range"), "OK")),
        RANGES as f64
    );
    assert_eq!(
        delta("grpc_server_handled_total", &with(kv("Range"), "OutOfRange")),
        1.0
    );
    assert_eq!(delta("grpc_server_started_total", &kv("Range")), (RANGES + 1) as f64);
    assert_eq!(
        delta("grpc_server_handled_total", &with(kv("Txn"), "InvalidArgument")),
        1.0
    );
    assert_eq!(delta("grpc_server_handled_total", &kv("Txn")), 1.0);
    assert_eq!(delta("grpc_server_handling_seconds_count", &kv("Put")), PUTS as f64);
    // Client traffic: each put is a message of 13 bytes (a key of 8, a
    // value of 1, a tag and a length each) behind gRPC's 5-byte prefix.
    let traffic = |name: &str| puts_done.one(name, &[]) - before.one(name, &[]);
    assert_eq!(
        traffic("etcd_network_client_grpc_received_bytes_total"),
        (PUTS * 18) as f64
    );
    assert!(traffic("etcd_network_client_grpc_sent_bytes_total") >= (PUTS * 5) as f64);
    assert!(delta("etcd_network_client_grpc_received_bytes_total", &[]) > (PUTS * 18) as f64);
    assert_eq!(
        delta("grpc_server_handling_seconds_count", &kv("Range")),
        (RANGES + 1) as f64
    );
    // Every call is started, handled once with its code, and timed once.
    for method in after.label_values("grpc_server_started_total", "grpc_method") {
        let m = [("grpc_method", method.as_str())];
        let started = after.sum("grpc_server_started_total", &m);
        assert_eq!(after.sum("grpc_server_handled_total", &m), started, "{method}");
        assert_eq!(after.sum("grpc_server_handling_seconds_count", &m), started, "{method}");
        let inf = [("grpc_method", method.as_str()), ("le", "+Inf")];
        assert_eq!(
            after.sum("grpc_server_handling_seconds_bucket", &inf),
            started,
            "{method}"
        );
    }

    // The proposals: once the load has settled, every member committed and
    // applied the same entries, the load's among them.
    let scrapes = wait_for(&cluster, Duration::from_secs(15), "the indexes to settle", |s| {
        let committed: BTreeSet<u64> = s
            .iter()
            .map(|s| s.one("etcd_server_proposals_committed_total", &[]) as u64)
            .collect();
        let applied: BTreeSet<u64> = s
            .iter()
            .map(|s| s.one("etcd_server_proposals_applied_total", &[]) as u64)
            .collect();
        committed.len() == 1 && committed == applied
    })
    .await;
    let committed = scrapes[0].one("etcd_server_proposals_committed_total", &[]);
    assert!(committed >= PUTS as f64, "{committed}");
    assert!(
        committed >= before.one("etcd_server_proposals_committed_total", &[]) + 1.0,
        "the load committed nothing"
    );

    // Links to every peer: bytes both ways and round trips, labelled with
    // the peers' ids as `etcdctl member list` prints them. The round trips
    // of a follower to the other follower come from the probes of every
    // peer, which run every few seconds.
    let scrapes = wait_for(&cluster, Duration::from_secs(15), "round trips to every peer", |s| {
        (0..n).all(|i| {
            let peers: BTreeSet<String> = ids.iter().filter(|id| **id != ids[i]).cloned().collect();
            s[i].label_values("etcd_network_peer_round_trip_time_seconds_count", "To") == peers
        })
    })
    .await;
    let mut leaders = Vec::new();
    for (i, s) in scrapes.iter().enumerate() {
        let m = &cluster.members[i];
        let peers: BTreeSet<String> = ids.iter().filter(|id| **id != ids[i]).cloned().collect();
        let ctx = format!("{} ({})", m.name, ids[i]);
        assert_eq!(s.one("etcd_server_has_leader", &[]), 1.0, "{ctx}");
        if s.one("etcd_server_is_leader", &[]) == 1.0 {
            leaders.push(i);
        }
        assert_eq!(s.one("etcd_server_is_learner", &[]), 0.0, "{ctx}");
        assert!(s.one("etcd_server_leader_changes_seen_total", &[]) >= 1.0, "{ctx}");
        assert_eq!(s.one("etcd_server_proposals_pending", &[]), 0.0, "{ctx}");
        assert!(s.one("etcd_disk_wal_fsync_duration_seconds_count", &[]) > 0.0, "{ctx}");
        assert!(s.one("etcd_disk_wal_fsync_duration_seconds_sum", &[]) > 0.0, "{ctx}");
        assert_eq!(
            s.one("etcd_disk_wal_fsync_duration_seconds_bucket", &[("le", "+Inf")]),
            s.one("etcd_disk_wal_fsync_duration_seconds_count", &[]),
            "{ctx}"
        );
        s.one("etcd_disk_backend_commit_duration_seconds_count", &[]);
        for (name, label) in [
            ("etcd_network_peer_sent_bytes_total", "To"),
            ("etcd_network_peer_received_bytes_total", "From"),
            ("etcd_network_peer_round_trip_time_seconds_count", "To"),
        ] {
            assert_eq!(s.label_values(name, label), peers, "{ctx}: {name}");
            for peer in &peers {
                assert!(s.one(name, &[(label, peer)]) > 0.0, "{ctx}: {name} {peer}");
            }
        }
        let db = s.one("etcd_mvcc_db_total_size_in_bytes", &[]);
        let in_use = s.one("etcd_mvcc_db_total_size_in_use_in_bytes", &[]);
        assert!(db > 0.0 && in_use > 0.0 && in_use <= db, "{ctx}: {db} {in_use}");
        assert_eq!(s.one("etcd_debugging_mvcc_db_total_size_in_bytes", &[]), db, "{ctx}");
        assert_eq!(s.one("etcd_server_quota_backend_bytes", &[]), QUOTA as f64, "{ctx}");
        assert_eq!(s.one("etcd_server_id", &[("server_id", &ids[i])]), 1.0, "{ctx}");
        assert_eq!(
            s.one("etcd_server_version", &[("server_version", "3.5.0")]),
            1.0,
            "{ctx}"
        );
        let info = s.only("firebreak_member_info");
        assert_eq!(info.value, 1.0);
        assert_eq!(info.labels["member_id"], ids[i], "{ctx}");
        assert_eq!(info.labels["name"], m.name, "{ctx}");
        assert_eq!(info.labels["datacenter"], m.datacenter, "{ctx}");
        // Any member knows the risk (it asks the leader): with one member
        // in each datacenter, the loss of any one keeps a quorum and loses
        // no acknowledged write.
        assert_eq!(s.one("firebreak_risk_known", &[]), 1.0, "{ctx}");
        for dc in ["dc1", "dc2", "dc3"] {
            assert_eq!(
                s.one("firebreak_datacenter_loss_keeps_quorum", &[("datacenter", dc)]),
                1.0,
                "{ctx}: {dc}"
            );
            assert_eq!(
                s.one("firebreak_datacenter_loss_loses_writes", &[("datacenter", dc)]),
                0.0,
                "{ctx}: {dc}"
            );
            // Settled: every datacenter holds the newest write.
            assert_eq!(
                s.one("firebreak_newest_write_durable_in", &[("datacenter", dc)]),
                1.0,
                "{ctx}: {dc}"
            );
        }
        assert!(s.one("process_resident_memory_bytes", &[]) > 0.0, "{ctx}");
        assert!(s.one("process_open_fds", &[]) > 0.0, "{ctx}");
        assert!(s.one("process_start_time_seconds", &[]) > 1.6e9, "{ctx}");
    }
    assert_eq!(
        leaders,
        vec![leader],
        "exactly one etcd_server_is_leader 1, on the leader"
    );
    // The leader, and only the leader, reports each follower's lag.
    for (i, s) in scrapes.iter().enumerate() {
        let series: BTreeSet<(String, String)> = s
            .all("firebreak_follower_lag_entries")
            .map(|x| (x.labels["follower"].clone(), x.labels["datacenter"].clone()))
            .collect();
        let expected: BTreeSet<(String, String)> = if i == leader {
            (0..n)
                .filter(|&j| j != leader)
                .map(|j| (cluster.members[j].name.clone(), cluster.members[j].datacenter.clone()))
                .collect()
        } else {
            BTreeSet::new()
        };
        assert_eq!(
            series, expected,
            "firebreak_follower_lag_entries on {}",
            cluster.members[i].name
        );
        assert_eq!(s.all("firebreak_follower_lag_seconds").count(), expected.len());
        for x in s.all("firebreak_follower_lag_entries") {
            assert!(
                x.value >= 0.0 && x.value <= 1.0,
                "an idle follower lags {} entries",
                x.value
            );
        }
    }

    // The health endpoints, as etcd answers them.
    for i in 0..n {
        let port = cluster.members[i].client_port;
        let health = get(port, "/health").await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, r#"{"health":"true","reason":""}"#)
        );
        assert!(
            health.content_type.starts_with("application/json"),
            "{}",
            health.content_type
        );
        let version = get(port, "/version").await;
        assert_eq!(version.status, 200);
        let v: serde_json::Value = serde_json::from_str(&version.body).unwrap();
        assert_eq!(v["etcdserver"], "3.5.0", "{}", version.body);
        assert!(
            v["etcdcluster"].as_str().is_some_and(|s| !s.is_empty()),
            "{}",
            version.body
        );
        let livez = get(port, "/livez").await;
        assert_eq!((livez.status, livez.body.trim()), (200, "ok"));
        let readyz = get(port, "/readyz").await;
        assert_eq!((readyz.status, readyz.body.trim()), (200, "ok"));
        let metrics = get(port, "/metrics").await;
        assert!(
            metrics.content_type.starts_with("text/plain; version=0.0.4"),
            "{}",
            metrics.content_type
        );
    }

    // Two members die; the leader survives, without a quorum. Within a few
    // seconds (an election timeout is 0.5 s here) it says it has no leader,
    // as etcd does: an isolated leader is no leader.
    let survivor = leader;
    let failures_before = scrape(&cluster, survivor).await;
    for i in 0..n {
        if i != survivor {
            cluster.kill(i);
        }
    }
    let killed_at = Instant::now();
    let port = cluster.members[survivor].client_port;
    // Until the leader notices (an election timeout without a quorum's
    // acknowledgements), `/health` may also answer 200, or 503 with the
    // linearizable read that timed out ("QGET ERROR"), as etcd's does
    // until its leader steps down.
    let mut answers = Vec::new();
    loop {
        let health = get(port, "/health").await;
        let v: serde_json::Value = serde_json::from_str(&health.body).unwrap();
        if v["reason"] == "RAFT NO LEADER" {
            assert_eq!(health.status, 503);
            assert_eq!(v, serde_json::json!({"health": "false", "reason": "RAFT NO LEADER"}));
            break;
        }
        answers.push(format!(
            "{:.1?}: {} {}",
            killed_at.elapsed(),
            health.status,
            health.body
        ));
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "/health still has a leader after two members died: {answers:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let no_leader_after = killed_at.elapsed();
    let s = scrape(&cluster, survivor).await;
    assert_eq!(s.one("etcd_server_has_leader", &[]), 0.0);
    assert_eq!(s.one("etcd_server_is_leader", &[]), 0.0);
    assert_eq!(s.one("firebreak_risk_known", &[]), 0.0);
    for (i, id) in ids.iter().enumerate() {
        if i != survivor {
            // etcdMembersDown reads these.
            let failures = [("To", id.as_str())];
            assert!(
                s.sum("etcd_network_peer_sent_failures_total", &failures)
                    > failures_before.sum("etcd_network_peer_sent_failures_total", &failures),
                "no failed sends to {id} counted"
            );
        }
    }
    let readyz = get(port, "/readyz").await;
    assert_eq!(readyz.status, 503, "{}", readyz.body);
    let livez = get(port, "/livez").await;
    assert_eq!((livez.status, livez.body.trim()), (200, "ok"));
    println!(
        "{committed} entries committed; no leader reported {no_leader_after:.1?} after two members died \
         (answers before: {answers:?}); {:.1?} in all",
        started.elapsed()
    );
}

fn grpc_code(e: Error) -> tonic::Code {
    match e {
        Error::GRpcStatus(s) => s.code(),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Scrapes of every running member, repeated until `done` holds of them.
async fn wait_for(cluster: &Cluster, limit: Duration, what: &str, done: impl Fn(&[Scrape]) -> bool) -> Vec<Scrape> {
    let deadline = Instant::now() + limit;
    loop {
        let mut scrapes = Vec::new();
        for i in 0..cluster.members.len() {
            scrapes.push(scrape(cluster, i).await);
        }
        if done(&scrapes) {
            return scrapes;
        }
        if Instant::now() > deadline {
            let texts: Vec<&str> = scrapes.iter().map(|s| s.text.as_str()).collect();
            panic!(
                "waited {limit:?} for {what}; the members' metrics:\n{}",
                texts.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scrape(cluster: &Cluster, i: usize) -> Scrape {
    let answer = get(cluster.members[i].client_port, "/metrics").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    Scrape::parse(&answer.body)
}

// ---- Prometheus's text format, as much as these checks need ----

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample: {l:?}")))
            .collect();
        Scrape {
            text: text.to_string(),
            samples,
        }
    }

    /// Samples of `name` that have (at least) `labels`.
    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> {
        self.matching(name, &[])
    }

    /// The value of the one sample of `name` with `labels`.
    fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?} in\n{}", self.text);
        found[0].value
    }

    /// The one sample of `name`, whatever its labels.
    fn only<'a>(&'a self, name: &'a str) -> &'a Sample {
        let found: Vec<&Sample> = self.all(name).collect();
        assert_eq!(found.len(), 1, "{name}: {found:?} in\n{}", self.text);
        found[0]
    }

    /// The sum over the samples of `name` with `labels` (0 if none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.all(name).filter_map(|s| s.labels.get(label).cloned()).collect()
    }
}

/// `name{k="v",...} value [timestamp]`, with the format's escapes in
/// label values.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => continue,
                _ => {
                    let mut key = String::from(c);
                    for (_, c) in chars.by_ref() {
                        if c == '=' {
                            break;
                        }
                        key.push(c);
                    }
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(key.trim().to_string(), value);
                }
            }
        }
        rest = &after[end?..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample { name, labels, value })
}
