//! etcd's snapshot format, both ways, against the real thing (Debian's
//! etcd and etcdctl):
//! - a snapshot taken from etcd (`etcdctl snapshot save`) restored into
//!   every member of a new Firebreak cluster (`firebreak restore`) serves
//!   what etcd served: every key at every revision (create and mod
//!   revisions, versions, values, leases), the compaction, every lease with
//!   its TTL and keys, users, roles and permissions with auth enabled, the
//!   auth revision, and the passwords (etcd's bcrypt hashes);
//! - a snapshot taken from Firebreak is read by `etcdctl snapshot status`
//!   and restored by `etcdctl snapshot restore`, and the etcd started on it
//!   serves what Firebreak served.
//!
//! Skipped (with a message) if etcd or etcdctl is missing, unless `CI` is
//! set. Every server is stopped when the test ends, also when it fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::grpc::unary;
use common::{login, Cluster, KillOnDrop, Options};
use etcd_client::{Client, GetOptions, LeaseTimeToLiveOptions, Permission, PutOptions, Txn, TxnOp};
use firebreak_grpc::auth::{AuthStatusRequest, AuthStatusResponse};

const ROOT_PASSWORD: &str = "rootpw";
const ALICE_PASSWORD: &str = "alice-pw";

fn etcd_installed() -> bool {
    common::installed("etcd", "apt-get install etcd-server")
        && common::installed("etcdctl", "apt-get install etcd-client")
}

/// Runs etcdctl; panics with its output if it fails.
fn etcdctl(args: &[&str]) -> String {
    let out = Command::new("etcdctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a history with everything a snapshot must keep: overwrites,
/// several writes in one revision (a txn, a ranged delete), a large
/// value, keys on leases, a lease without keys, a revoked lease, a delete
/// at the compaction revision, writes after the compaction, a key moved
/// to another lease; then users, roles and permissions, and enables auth.
/// Returns the compaction revision.
async fn write_history(c: &mut Client) -> i64 {
    for i in 0..40 {
        c.put(format!("k/{}", i % 12), format!("value-{i}"), None)
            .await
            .unwrap();
    }
    let txn = Txn::new().and_then([
        TxnOp::put("t/a", "1", None),
        TxnOp::put("t/b", "2", None),
        TxnOp::put("t/c", "3", None),
    ]);
    c.txn(txn).await.unwrap();
    c.delete("k/1", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    c.put("big", "x".repeat(6000), None).await.unwrap();
    let a = c.lease_grant(3600, None).await.unwrap().id();
    let b = c.lease_grant(7200, None).await.unwrap().id();
    let gone = c.lease_grant(1800, None).await.unwrap().id();
    c.put("leased/1", "a", Some(PutOptions::new().with_lease(a)))
        .await
        .unwrap();
    c.put("leased/2", "b", Some(PutOptions::new().with_lease(a)))
        .await
        .unwrap();
    c.put("leased/3", "c", Some(PutOptions::new().with_lease(gone)))
        .await
        .unwrap();
    c.lease_revoke(gone).await.unwrap();
    c.put("doomed", "soon deleted", None).await.unwrap();
    let compact = c.delete("doomed", None).await.unwrap().header().unwrap().revision();
    c.compact(compact, None).await.unwrap();
    c.put("k/3", "after-compaction", None).await.unwrap();
    c.put("leased/2", "moved", Some(PutOptions::new().with_lease(b)))
        .await
        .unwrap();
    c.delete("t/b", None).await.unwrap();

    c.user_add("root", ROOT_PASSWORD, None).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    c.role_add("reader").await.unwrap();
    c.role_grant_permission("reader", Permission::read("k/").with_prefix())
        .await
        .unwrap();
    c.role_grant_permission("reader", Permission::read_write("t/a"))
        .await
        .unwrap();
    c.role_grant_permission("reader", Permission::write("z").with_from_key())
        .await
        .unwrap();
    c.role_add("empty").await.unwrap();
    c.user_add("alice", ALICE_PASSWORD, None).await.unwrap();
    c.user_grant_role("alice", "reader").await.unwrap();
    c.user_add("bob", "bob-pw", None).await.unwrap();
    c.auth_enable().await.unwrap();
    compact
}

/// One key as a read answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kv {
    key: String,
    value_len: usize,
    value_start: String,
    create: i64,
    modified: i64,
    version: i64,
    lease: i64,
}

/// What a server serves, as compared.
#[derive(Debug, Default)]
struct Served {
    revision: i64,
    /// Every key at every revision from 1 on (or the error, normalised).
    at: Vec<(i64, Result<Vec<Kv>, String>)>,
    /// Lease id: (granted TTL, remaining TTL, keys).
    leases: BTreeMap<i64, (i64, i64, Vec<String>)>,
    /// User: roles.
    users: BTreeMap<String, Vec<String>>,
    /// Role: (type, key, range end) of each permission.
    roles: BTreeMap<String, Vec<(i32, String, String)>>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads everything a snapshot holds from a server, as root.
async fn served(c: &mut Client) -> Served {
    let mut s = Served {
        revision: c.get("any", None).await.unwrap().header().unwrap().revision(),
        ..Served::default()
    };
    for rev in 1..=s.revision {
        let got = c
            .get("", Some(GetOptions::new().with_all_keys().with_revision(rev)))
            .await
            .map(|r| {
                r.kvs()
                    .iter()
                    .map(|kv| Kv {
                        key: text(kv.key()),
                        value_len: kv.value().len(),
                        value_start: text(&kv.value()[..kv.value().len().min(40)]),
                        create: kv.create_revision(),
                        modified: kv.mod_revision(),
                        version: kv.version(),
                        lease: kv.lease(),
                    })
                    .collect()
            })
            .map_err(|e| {
                let e = e.to_string();
                if e.contains("required revision has been compacted") {
                    "compacted".to_string()
                } else {
                    e
                }
            });
        s.at.push((rev, got));
    }
    for lease in c.leases().await.unwrap().leases() {
        let ttl = c
            .lease_time_to_live(lease.id(), Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        let mut keys: Vec<String> = ttl.keys().iter().map(|k| text(k)).collect();
        keys.sort();
        s.leases.insert(lease.id(), (ttl.granted_ttl(), ttl.ttl(), keys));
    }
    for user in c.user_list().await.unwrap().users() {
        let roles = c.user_get(user.as_str()).await.unwrap().roles().to_vec();
        s.users.insert(user.clone(), roles);
    }
    for role in c.role_list().await.unwrap().roles() {
        let perms = c
            .role_get(role.as_str())
            .await
            .unwrap()
            .permissions()
            .iter()
            .map(|p| (p.get_type(), text(p.key()), text(p.range_end())))
            .collect();
        s.roles.insert(role.clone(), perms);
    }
    s
}

/// Asserts that `got` (from `who`) serves what `want` served.
fn assert_serves_the_same(got: &Served, want: &Served, who: &str) {
    assert_eq!(got.revision, want.revision, "{who}: the current revision");
    assert_eq!(got.at.len(), want.at.len());
    for ((rev, g), (_, w)) in got.at.iter().zip(&want.at) {
        assert_eq!(g, w, "{who}: every key at revision {rev}");
    }
    let granted = |s: &Served| -> BTreeMap<i64, (i64, Vec<String>)> {
        s.leases.iter().map(|(id, (g, _, k))| (*id, (*g, k.clone()))).collect()
    };
    assert_eq!(granted(got), granted(want), "{who}: leases (granted TTLs and keys)");
    for (id, (granted, ttl, _)) in &got.leases {
        assert!(
            *ttl > 0 && ttl <= granted,
            "{who}: lease {id:x} has TTL {ttl} of {granted}"
        );
    }
    assert_eq!(got.users, want.users, "{who}: users and their roles");
    assert_eq!(got.roles, want.roles, "{who}: roles and their permissions");
}

/// A client of `endpoints` logged in as root, once every one of them
/// answers a linearizable read.
async fn root_client_when_ready(endpoints: &[String], log: impl Fn() -> String) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    for e in endpoints {
        loop {
            let attempt = async {
                let mut c = login(std::slice::from_ref(e), "root", ROOT_PASSWORD).await?;
                c.get("any", None).await
            };
            match tokio::time::timeout(Duration::from_secs(10), attempt).await {
                Ok(Ok(_)) => break,
                _ if Instant::now() > deadline => panic!("{e} does not serve root after 60s; log:\n{}", log()),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    login(endpoints, "root", ROOT_PASSWORD).await.unwrap()
}

/// Alice, with the password she was given, reads under `k/` and may not
/// write there: her hash and her role's permissions survived.
async fn alice_keeps_her_password_and_permissions(endpoints: &[String], who: &str) {
    let mut alice = login(endpoints, "alice", ALICE_PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("{who}: alice cannot log in with her password: {e}"));
    alice
        .get("k/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap_or_else(|e| panic!("{who}: alice cannot read k/: {e}"));
    let denied = alice.put("k/new", "x", None).await.unwrap_err().to_string();
    assert!(denied.contains("permission denied"), "{who}: {denied}");
    assert!(
        login(endpoints, "alice", "wrong").await.is_err(),
        "{who}: a wrong password is taken"
    );
}

/// The auth revision a snapshot file records (`auth/authRevision`).
fn file_auth_revision(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let root = firebreak_snapshot::bbolt::read(&bytes[..bytes.len() - 32]).unwrap();
    let auth = &root.buckets[b"auth".as_slice()];
    let (_, v) = auth.entries.iter().find(|(k, _)| k == b"authRevision").unwrap();
    u64::from_be_bytes(v[..].try_into().unwrap())
}

/// Firebreak's auth revision (AuthStatus, which etcd 3.4 lacks).
async fn firebreak_auth_revision(endpoint: &str, c: &mut Client) -> u64 {
    let token = c
        .auth_client()
        .authenticate("root".into(), ROOT_PASSWORD.into())
        .await
        .unwrap()
        .token()
        .to_string();
    let status: AuthStatusResponse = unary(
        endpoint,
        "/etcdserverpb.Auth/AuthStatus",
        Some(&token),
        AuthStatusRequest {},
    )
    .await
    .unwrap();
    assert!(status.enabled);
    status.auth_revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_snapshot_restores_into_firebreak_with_its_history_leases_and_auth() {
    if !etcd_installed() {
        return;
    }
    let started = Instant::now();
    let etcd = Etcd::start();
    let mut c = etcd.client().await;
    let compact = write_history(&mut c).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    let user = format!("root:{ROOT_PASSWORD}");
    etcdctl(&[
        &format!("--endpoints={}", etcd.endpoint()),
        "--user",
        &user,
        "snapshot",
        "save",
        file.to_str().unwrap(),
    ]);
    let mut e = root_client_when_ready(&[etcd.endpoint().to_string()], || etcd.log()).await;
    let want = served(&mut e).await;
    assert!(want.at.iter().any(|(r, got)| *r == compact - 1 && got.is_err()));
    assert!(want.at.iter().any(|(r, got)| *r == compact && got.is_ok()));

    // Every member of a new cluster restored from the same file.
    let mut cluster = Cluster::prepare(Options::default());
    cluster.restore_each(&file);
    for i in 0..cluster.members.len() {
        cluster.start_member(i);
    }
    let endpoints = cluster.endpoints();
    let mut f = root_client_when_ready(&endpoints, || cluster.log(0)).await;
    let got = served(&mut f).await;
    assert_serves_the_same(&got, &want, "Firebreak restored from etcd");
    // Every member holds the same state (serializable reads, each alone).
    for (i, endpoint) in endpoints.iter().enumerate() {
        let mut one = login(std::slice::from_ref(endpoint), "root", ROOT_PASSWORD)
            .await
            .unwrap();
        let r = one
            .get("", Some(GetOptions::new().with_all_keys().with_serializable()))
            .await
            .unwrap();
        assert_eq!(r.header().unwrap().revision(), want.revision, "member {i}");
    }
    assert_eq!(
        firebreak_auth_revision(&endpoints[0], &mut f).await,
        file_auth_revision(&file),
        "the auth revision"
    );
    alice_keeps_her_password_and_permissions(&endpoints, "Firebreak restored from etcd").await;
    alice_keeps_her_password_and_permissions(&[etcd.endpoint().to_string()], "etcd").await;

    // A damaged copy is refused, naming the check.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = Command::new(common::BIN)
        .arg("restore")
        .arg(&damaged)
        .arg("--data-dir")
        .arg(dir.path().join("never"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHA-256"));
    eprintln!(
        "etcd -> Firebreak: {} revisions, {} leases, {} users, {} roles in {:.1?}",
        want.revision,
        want.leases.len(),
        want.users.len(),
        want.roles.len(),
        started.elapsed()
    );
}

/// Starts etcd on a data directory `etcdctl snapshot restore` prepared.
fn etcd_on(data_dir: &Path, name: &str, client: u16, peer: u16, log: &Path) -> KillOnDrop {
    KillOnDrop(
        common::etcd::command(name, data_dir, client, peer, log)
            .spawn()
            .expect("start etcd"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firebreak_snapshot_restores_into_etcd_and_serves_the_same() {
    if !etcd_installed() {
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::start(Options::default()).await;
    let mut c = cluster.client().await;
    write_history(&mut c).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("firebreak.db");
    let user = format!("root:{ROOT_PASSWORD}");
    etcdctl(&[
        &format!("--endpoints={}", cluster.members[1].endpoint()),
        "--user",
        &user,
        "snapshot",
        "save",
        file.to_str().unwrap(),
    ]);
    let endpoints = cluster.endpoints();
    let mut f = root_client_when_ready(&endpoints, || cluster.log(0)).await;
    let want = served(&mut f).await;
    assert_eq!(
        firebreak_auth_revision(&endpoints[0], &mut f).await,
        file_auth_revision(&file),
        "the auth revision"
    );

    // etcdctl reads it: bbolt's integrity check passes, and it finds the
    // revision and every entry of every bucket.
    let status: serde_json::Value =
        serde_json::from_str(&etcdctl(&["snapshot", "status", file.to_str().unwrap(), "-w", "json"])).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let buckets = firebreak_snapshot::bbolt::read(&bytes[..bytes.len() - 32]).unwrap();
    let entries: usize = buckets.buckets.values().map(|b| b.entries.len()).sum();
    assert_eq!(status["revision"], want.revision, "{status}");
    assert_eq!(status["totalKey"], entries as u64, "{status}");
    assert_eq!(status["totalSize"], (bytes.len() - 32) as u64, "{status}");

    // etcdctl restores it, and an etcd started on it serves the same.
    let (client, peer) = (common::free_port(), common::free_port());
    let data = dir.path().join("etcd-data");
    let peer_url = format!("http://127.0.0.1:{peer}");
    etcdctl(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "restored",
        "--initial-cluster",
        &format!("restored={peer_url}"),
        "--initial-advertise-peer-urls",
        &peer_url,
    ]);
    let log = dir.path().join("etcd.log");
    let _etcd = etcd_on(&data, "restored", client, peer, &log);
    let etcd_endpoint = format!("http://127.0.0.1:{client}");
    let mut e = root_client_when_ready(std::slice::from_ref(&etcd_endpoint), || {
        std::fs::read_to_string(&log).unwrap_or_default()
    })
    .await;
    let got = served(&mut e).await;
    assert_serves_the_same(&got, &want, "etcd restored from Firebreak");
    alice_keeps_her_password_and_permissions(&[etcd_endpoint], "etcd restored from Firebreak").await;
    eprintln!(
        "Firebreak -> etcd: {} revisions, {} leases, {} users, {} roles, {} entries in {:.1?}",
        want.revision,
        want.leases.len(),
        want.users.len(),
        want.roles.len(),
        entries,
        started.elapsed()
    );
}
