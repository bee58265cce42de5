//! `firebreak bench` against a real three-member cluster: every `--op`, the
//! open loop, the leader target, batched puts, the etcd-client backend and
//! the fsync probe each run for a moment, and their JSON must parse and
//! show work done without errors. Nothing here is about speed: the figures
//! live in docs/benchmarks.md, made by bench/compare-etcd.sh.

mod common;

use std::process::Output;

use common::{Cluster, Options, BIN};
use serde_json::Value;

async fn bench(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run firebreak bench")
}

/// Runs `firebreak bench` and returns its report, failing on a bad exit,
/// unparsable output, no operations or any error.
async fn bench_ok(args: &[&str]) -> Value {
    let out = bench(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "firebreak bench {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{stdout}\n{stderr}"));
    let ops = report["ops"].as_u64().expect("ops");
    assert!(ops > 0, "no operations: {report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "errors: {report}");
    for field in ["p50", "p90", "p99", "p999", "max"] {
        assert!(report["latency_us"][field].as_u64().unwrap() > 0, "{field}: {report}");
    }
    assert!(report["latency_us"]["p50"].as_u64() <= report["latency_us"]["max"].as_u64());
    assert!(report["ops_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    // The members answered Status before and after: elections are counted.
    assert!(report["elections"].as_u64().is_some(), "elections: {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_against_a_cluster_without_errors() {
    let cluster = Cluster::start(Options::default()).await;
    let endpoints = cluster.endpoints().join(",");

    // Load the keyspace first, so that the gets find their keys.
    let load = bench_ok(&[
        "--endpoints",
        &endpoints,
        "--op",
        "put",
        "--keys",
        "200",
        "--batch",
        "50",
        "--key-order",
        "sequential",
        "--total",
        "4",
        "--clients",
        "2",
    ])
    .await;
    assert_eq!(load["ops"].as_u64(), Some(4), "{load}");

    for op in ["put", "get", "get-serializable", "txn", "mixed"] {
        let report = bench_ok(&[
            "--endpoints",
            &endpoints,
            "--op",
            op,
            "--clients",
            "4",
            "--conns",
            "2",
            "--keys",
            "200",
            "--duration",
            "1500ms",
            "--value-size",
            "100",
        ])
        .await;
        assert_eq!(report["op"], op);
        assert_eq!(report["clients"], 4);
        assert_eq!(report["endpoints"].as_array().unwrap().len(), 3, "{report}");
        if op.starts_with("get") {
            assert_eq!(report["misses"].as_u64(), Some(0), "the keys were loaded: {report}");
        }
    }

    // Open loop at a fixed rate against the leader only.
    let open = bench_ok(&[
        "--endpoints",
        &endpoints,
        "--target",
        "leader",
        "--op",
        "put",
        "--clients",
        "8",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--keys",
        "200",
    ])
    .await;
    assert_eq!(open["endpoints"].as_array().unwrap().len(), 1, "{open}");
    assert!(open["service_time_us"]["count"].as_u64().unwrap() > 0, "{open}");
    let sent = open["latency_us"]["count"].as_u64().unwrap();
    assert!(
        (300..=400).contains(&sent),
        "about 400 requests were due in 2 s: {open}"
    );

    // The etcd-client backend, and a warm-up that is not counted.
    bench_ok(&[
        "--endpoints",
        &endpoints,
        "--client",
        "etcd-client",
        "--op",
        "txn",
        "--clients",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--keys",
        "200",
    ])
    .await;
}

#[tokio::test]
async fn a_dead_endpoint_is_an_error_of_the_run() {
    let port = common::free_port();
    let out = bench(&["--endpoints", &format!("127.0.0.1:{port}"), "--duration", "1s"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[tokio::test]
async fn the_fsync_probe_reports_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(&[
        "--fsync-probe",
        "--fsync-dir",
        dir.path().to_str().unwrap(),
        "--fsync-count",
        "30",
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["latency_us"]["count"].as_u64(), Some(30), "{report}");
    assert!(report["latency_us"]["p50"].as_u64().unwrap() > 0);
}
