//! Moving a live etcd cluster over: `etcdctl make-mirror` from a running
//! etcd into Firebreak keeps Firebreak in sync while clients still write to
//! etcd; then the cut-over of docs/migration.md: stop writes, let the
//! mirror catch up, check that both hold the same keys and values, switch.
//!
//! Without `etcd` and `etcdctl` the test skips, unless `CI` is set, where
//! it fails.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::{Cluster, Options};
use etcd_client::{Client, GetOptions};

/// Every key and value, as a client sees them.
async fn content(c: &mut Client) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let all = c.get("", Some(GetOptions::new().with_all_keys())).await.unwrap();
    all.kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect()
}

/// Kills the mirror even when the test fails.
struct Mirror(std::process::Child);

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_mirror_keeps_firebreak_in_sync_until_the_cut_over() {
    if !(common::installed("etcd", "apt-get install etcd-server")
        && common::installed("etcdctl", "apt-get install etcd-client"))
    {
        return;
    }
    let etcd = Etcd::start();
    let mut source = etcd.client().await;
    let cluster = Cluster::start(Options::default()).await;
    let mut target = cluster.client().await;
    // The harness's own key in Firebreak is not the source's; leave it out.
    let ours: Vec<Vec<u8>> = content(&mut target).await.into_keys().collect();

    // Data before the mirror starts: it is copied first.
    for i in 0..200 {
        source
            .put(format!("app/config/{i:03}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    let destination = cluster.members[0].endpoint().trim_start_matches("http://").to_string();
    let mirror = Mirror(
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", etcd.endpoint()))
            .args(["make-mirror", "--no-dest-prefix"])
            .arg(&destination)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // Clients keep writing to etcd while the mirror runs: puts, overwrites,
    // deletes, and a txn.
    for round in 0..5 {
        for i in 0..50 {
            source
                .put(format!("app/live/{i:03}"), format!("r{round}"), None)
                .await
                .unwrap();
        }
        source
            .delete(format!("app/config/{:03}", round * 7), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let txn = etcd_client::Txn::new().and_then(vec![
        etcd_client::TxnOp::put("app/txn/a", "1", None),
        etcd_client::TxnOp::put("app/txn/b", "2", None),
    ]);
    source.txn(txn).await.unwrap();

    // Cut-over: writes stop; the mirror catches up; the contents agree.
    let expected = content(&mut source).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen;
    loop {
        seen = content(&mut target).await;
        seen.retain(|k, _| !ours.contains(k));
        if seen == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror never caught up: {} keys in etcd, {} in Firebreak; first differences: {:?}",
            expected.len(),
            seen.len(),
            expected
                .iter()
                .filter(|(k, v)| seen.get(*k) != Some(*v))
                .take(5)
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(expected.len() > 200, "{}", expected.len());
    drop(mirror);

    // Switched: clients write to Firebreak now, and read what etcd had.
    target.put("app/after-cut-over", "yes", None).await.unwrap();
    let got = target.get("app/live/049", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"r4");
}
