//! etcd's HTTP/JSON gateway on every member's client port, from outside:
//! `curl` against a three-member Firebreak cluster and, the same calls,
//! against a real etcd, whose JSON must match (minus what names the
//! cluster or depends on its history: ids, terms, revisions, TTLs that
//! tick, tokens); and the `etcd3gw` Python library, unchanged, through its
//! KV, lease, lock and watch calls (`tests/gateway/etcd3gw_test.py`).
//!
//! Needs `curl`; the comparison needs `etcd`, the Python test a Python with
//! `etcd3gw` (`ETCD3GW_PYTHON`, else `<target>/etcd3gw/bin/python`, else
//! `python3`; .ci/run makes the virtualenv). What is missing is skipped
//! with a message, unless `CI` is set, where it fails.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::{installed, Cluster, Options};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// An HTTP answer, as curl saw it.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// `curl -X POST base+path --data-binary body`, with `headers`.
async fn post(base: &str, path: &str, body: &str, headers: &[String]) -> Reply {
    curl(base, path, &["-X", "POST", "--data-binary", body], headers).await
}

async fn curl(base: &str, path: &str, args: &[&str], headers: &[String]) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("{base}{path}"));
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    let out = cmd.kill_on_drop(true).output().await.expect("run curl");
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let (body, code) = text.rsplit_once('\n').expect("curl's status line");
    Reply {
        status: code.trim().parse().expect("a status"),
        body: body.to_owned(),
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Fields that name a cluster or depend on its history: their values are
/// replaced, keeping the JSON type (so 64-bit integers must still be
/// strings on both sides).
const VOLATILE: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "revision",
    "create_revision",
    "mod_revision",
    "rev",
    "compact_revision",
    "token",
];

fn normalise(value: &Value, extra: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if VOLATILE.contains(&k.as_str()) || extra.contains(&k.as_str()) {
                        match v {
                            Value::String(_) => json!("<string>"),
                            Value::Number(_) => json!("<number>"),
                            other => other.clone(),
                        }
                    } else {
                        normalise(v, extra)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| normalise(v, extra)).collect()),
        other => other.clone(),
    }
}

/// A Firebreak member and, when etcd is installed, a real etcd: each call
/// goes to both and their answers are compared.
struct Pair {
    firebreak: String,
    etcd: Option<String>,
}

impl Pair {
    /// Firebreak's member and etcd.
    fn bases(&self) -> Vec<String> {
        std::iter::once(self.firebreak.clone())
            .chain(self.etcd.clone())
            .collect()
    }

    /// Posts to both; the JSON answers (normalised, with `extra` fields
    /// volatile too) and HTTP statuses must be the same. Firebreak's answer.
    async fn same(&self, path: &str, body: &str, extra: &[&str]) -> Reply {
        self.same_with(path, body, &[], extra).await
    }

    async fn same_with(&self, path: &str, body: &str, headers: &[String], extra: &[&str]) -> Reply {
        let ours = post(&self.firebreak, path, body, headers).await;
        if let Some(etcd) = &self.etcd {
            let theirs = post(etcd, path, body, headers).await;
            assert_eq!(ours.status, theirs.status, "{path} {body}: {ours:?} vs etcd {theirs:?}");
            assert_eq!(
                normalise(&ours.json(), extra),
                normalise(&theirs.json(), extra),
                "{path} {body}: Firebreak {} vs etcd {}",
                ours.body,
                theirs.body
            );
        }
        ours
    }

    /// Posts to both; only the HTTP status and the gRPC code must be the
    /// same (the message is a parser's). Firebreak's answer.
    async fn same_code(&self, path: &str, body: &str) -> Reply {
        let ours = post(&self.firebreak, path, body, &[]).await;
        if let Some(etcd) = &self.etcd {
            let theirs = post(etcd, path, body, &[]).await;
            assert_eq!(ours.status, theirs.status, "{path}: {ours:?} vs etcd {theirs:?}");
            assert_eq!(
                ours.json()["code"],
                theirs.json()["code"],
                "{path}: {ours:?} vs etcd {theirs:?}"
            );
        }
        ours
    }
}

/// A streamed answer (`curl -N`), read line by line; curl is killed when
/// this is dropped.
struct Stream {
    _curl: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Stream {
    async fn open(base: &str, path: &str, body: &str, headers: &[String]) -> Stream {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-N", "--max-time", "60", "-X", "POST", "--data-binary", body])
            .arg(format!("{base}{path}"));
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        let mut child = cmd.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("run curl");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Stream { _curl: child, lines }
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(15), self.lines.next_line())
            .await
            .expect("a streamed line within 15 s")
            .expect("read")
            .expect("the stream goes on");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }
}

/// The Prometheus sample `name{labels…}` of the member at `base`.
async fn metric(base: &str, name: &str, labels: &[&str]) -> f64 {
    let text = curl(base, "/metrics", &[], &[]).await.body;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn curl_gets_etcds_json_from_every_member() {
    if !installed("curl", "apt-get install curl") {
        return;
    }
    let etcd = installed("etcd", "apt-get install etcd-server").then(Etcd::start);
    let cluster = Cluster::start(Options::default()).await;
    if let Some(etcd) = &etcd {
        etcd.client().await;
    }
    let p = Pair {
        firebreak: cluster.members[1].endpoint(),
        etcd: etcd.as_ref().map(|e| e.endpoint().to_owned()),
    };
    let fb = p.firebreak.clone();
    let (foo, bar) = (b64("gw/foo"), b64("bar"));

    // KV: base64 bytes, int64 as strings, defaults left out, unknown fields
    // ignored, enums by name or number, /v3beta/ as /v3/.
    let put = p
        .same(
            "/v3/kv/put",
            &format!(r#"{{"key":"{foo}","value":"{bar}","no_such_field":{{"x":[1]}}}}"#),
            &[],
        )
        .await;
    assert_eq!(put.status, 200);
    let header = &put.json()["header"];
    for field in ["cluster_id", "member_id", "revision", "raft_term"] {
        assert!(header[field].is_string(), "{field} as a string: {}", put.body);
    }
    let range = p.same("/v3/kv/range", &format!(r#"{{"key":"{foo}"}}"#), &[]).await;
    let kv = &range.json()["kvs"][0];
    assert_eq!(kv["key"], json!(foo));
    assert_eq!(kv["value"], json!(bar));
    assert_eq!(kv["version"], json!("1"));
    assert!(kv.get("lease").is_none(), "a default is left out: {}", range.body);
    assert_eq!(range.json()["count"], json!("1"));
    p.same(
        "/v3/kv/put",
        &format!(
            r#"{{"key":"{}","value":"{}","prev_kv":true}}"#,
            b64("gw/foo2"),
            b64("x")
        ),
        &[],
    )
    .await;
    let (from, to) = (b64("gw/"), b64("gw0"));
    let sorted = p
        .same(
            "/v3beta/kv/range",
            &format!(r#"{{"key":"{from}","range_end":"{to}","sort_order":"DESCEND","sort_target":0,"limit":"1"}}"#),
            &[],
        )
        .await
        .json();
    assert_eq!(sorted["kvs"][0]["key"], json!(b64("gw/foo2")));
    assert_eq!(sorted["more"], json!(true));
    assert_eq!(sorted["count"], json!("2"));
    p.same(
        "/v3/kv/range",
        &format!(r#"{{"key":"{from}","range_end":"{to}","count_only":true}}"#),
        &[],
    )
    .await;
    p.same("/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("gw/none")), &[])
        .await;

    // Txn: both branches, nested answers, a oneof at its default.
    let txn = |value: &str| {
        format!(
            r#"{{"compare":[{{"key":"{foo}","result":"EQUAL","target":"VALUE","value":"{}"}}],
                "success":[{{"request_put":{{"key":"{foo}","value":"{}","prev_kv":true}}}}],
                "failure":[{{"request_range":{{"key":"{foo}"}}}}]}}"#,
            b64(value),
            b64("baz")
        )
    };
    let done = p.same("/v3/kv/txn", &txn("bar"), &[]).await.json();
    assert_eq!(done["succeeded"], json!(true));
    assert_eq!(done["responses"][0]["response_put"]["prev_kv"]["value"], json!(bar));
    let failed = p.same("/v3/kv/txn", &txn("bar"), &[]).await.json();
    assert!(failed.get("succeeded").is_none(), "false is left out: {failed}");
    assert_eq!(
        failed["responses"][0]["response_range"]["kvs"][0]["value"],
        json!(b64("baz"))
    );
    let create =
        format!(r#"{{"compare":[{{"key":"{foo}","target":"CREATE","create_revision":0}}],"success":[],"failure":[]}}"#);
    p.same("/v3/kv/txn", &create, &[]).await;

    // DeleteRange.
    let deleted = p
        .same(
            "/v3/kv/deleterange",
            &format!(r#"{{"key":"{}","prev_kv":true}}"#, b64("gw/foo2")),
            &[],
        )
        .await
        .json();
    assert_eq!(deleted["deleted"], json!("1"));
    assert_eq!(deleted["prev_kvs"][0]["value"], json!(b64("x")));

    // Compaction, and a read below it.
    for base in &p.bases() {
        let rev: i64 = post(base, "/v3/kv/range", &format!(r#"{{"key":"{foo}"}}"#), &[])
            .await
            .json()["header"]["revision"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let compacted = post(
            base,
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{rev}","physical":true}}"#),
            &[],
        )
        .await;
        assert_eq!(compacted.status, 200, "{base}: {compacted:?}");
        assert!(compacted.json()["header"].is_object());
    }
    let old = p
        .same("/v3/kv/range", &format!(r#"{{"key":"{foo}","revision":2}}"#), &[])
        .await;
    assert_eq!(old.status, 400);
    assert_eq!(old.json()["code"], json!(11));
    assert_eq!(
        old.json()["error"],
        json!("etcdserver: mvcc: required revision has been compacted")
    );

    // Leases, and the /v3/kv/lease/* aliases.
    let granted = p.same("/v3/lease/grant", r#"{"ID":4242,"TTL":60}"#, &[]).await.json();
    assert_eq!(granted["ID"], json!("4242"));
    assert_eq!(granted["TTL"], json!("60"));
    p.same(
        "/v3/kv/put",
        &format!(r#"{{"key":"{}","value":"{bar}","lease":4242}}"#, b64("gw/leased")),
        &[],
    )
    .await;
    let alive = p.same("/v3/lease/keepalive", r#"{"ID":"4242"}"#, &["TTL"]).await;
    assert!(alive.body.ends_with('\n'), "a streamed line: {alive:?}");
    assert_eq!(alive.json()["result"]["ID"], json!("4242"));
    for path in ["/v3/lease/timetolive", "/v3/kv/lease/timetolive"] {
        let ttl = p.same(path, r#"{"ID":4242,"keys":true}"#, &["TTL"]).await.json();
        assert_eq!(ttl["grantedTTL"], json!("60"));
        assert_eq!(ttl["keys"], json!([b64("gw/leased")]));
    }
    for path in ["/v3/lease/leases", "/v3/kv/lease/leases"] {
        let leases = p.same(path, "{}", &[]).await.json();
        assert_eq!(leases["leases"], json!([{"ID": "4242"}]));
    }
    p.same("/v3/lease/grant", r#"{"ID":4343,"TTL":60}"#, &[]).await;
    p.same("/v3/lease/revoke", r#"{"ID":4343}"#, &[]).await;
    p.same("/v3/kv/lease/revoke", r#"{"ID":4242}"#, &[]).await;
    let gone = p.same("/v3/kv/lease/revoke", r#"{"ID":4242}"#, &[]).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.json(),
        json!({"error": "etcdserver: requested lease not found", "code": 5,
               "message": "etcdserver: requested lease not found"})
    );
    // Keeping a revoked lease alive answers without a TTL (etcd3gw reads
    // that as -1).
    let expired = p.same("/v3/lease/keepalive", r#"{"ID":4242}"#, &[]).await.json();
    assert!(expired["result"].get("TTL").is_none(), "{expired}");
    p.same("/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("gw/leased")), &[])
        .await;

    // Lock and election, on a lease of the client's choosing.
    p.same("/v3/lease/grant", r#"{"ID":5151,"TTL":60}"#, &[]).await;
    let locked = p
        .same(
            "/v3/lock/lock",
            &format!(r#"{{"name":"{}","lease":5151}}"#, b64("gw-lock")),
            &[],
        )
        .await
        .json();
    let key = locked["key"].as_str().unwrap().to_owned();
    assert_eq!(key, b64(&format!("gw-lock/{:x}", 5151)));
    p.same("/v3/lock/unlock", &format!(r#"{{"key":"{key}"}}"#), &[]).await;
    // Each server proclaims and resigns with its own leader key (the
    // revisions differ); the answers are compared all the same.
    let campaign = format!(
        r#"{{"name":"{}","lease":"5151","value":"{}"}}"#,
        b64("gw-el"),
        b64("me")
    );
    let mut answers = Vec::new();
    for base in p.bases() {
        let leader = post(&base, "/v3/election/campaign", &campaign, &[]).await.json();
        let leader = leader["leader"].clone();
        assert_eq!(leader["name"], json!(b64("gw-el")), "{base}: {leader}");
        assert_eq!(leader["lease"], json!("5151"), "{base}: {leader}");
        let current = post(
            &base,
            "/v3/election/leader",
            &format!(r#"{{"name":"{}"}}"#, b64("gw-el")),
            &[],
        )
        .await;
        assert_eq!(current.json()["kv"]["value"], json!(b64("me")), "{base}: {current:?}");
        let observe_body = format!(r#"{{"name":"{}"}}"#, b64("gw-el"));
        let mut observe = Stream::open(&base, "/v3/election/observe", &observe_body, &[]).await;
        let observed = observe.next().await;
        assert_eq!(
            observed["result"]["kv"]["value"],
            json!(b64("me")),
            "{base}: {observed}"
        );
        let proclaim = json!({"leader": leader, "value": b64("you")}).to_string();
        let proclaimed = post(&base, "/v3/election/proclaim", &proclaim, &[]).await;
        let observed_too = observe.next().await;
        assert_eq!(
            observed_too["result"]["kv"]["value"],
            json!(b64("you")),
            "{base}: {observed_too}"
        );
        let resigned = post(
            &base,
            "/v3/election/resign",
            &json!({"leader": leader}).to_string(),
            &[],
        )
        .await;
        answers
            .push([leader, current.json(), observed, proclaimed.json(), resigned.json()].map(|v| normalise(&v, &[])));
    }
    if let [ours, theirs] = &answers[..] {
        assert_eq!(ours, theirs);
    }
    // No leader: etcd answers Unknown (500) for this error that its
    // election server does not translate; Firebreak's gRPC service says
    // FailedPrecondition (400). Not the gateway's doing: only the words
    // are compared.
    let none = post(
        &fb,
        "/v3/election/leader",
        &format!(r#"{{"name":"{}"}}"#, b64("gw-el")),
        &[],
    )
    .await;
    assert_eq!(none.json()["error"], json!("election: no leader"), "{none:?}");

    // Cluster and maintenance: shapes only (the clusters differ).
    let members = post(&fb, "/v3/cluster/member/list", "{}", &[]).await.json();
    let members = members["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        assert!(
            m["ID"].is_string() && m["name"].is_string() && m["peerURLs"].is_array(),
            "{m}"
        );
        assert!(
            m["clientURLs"][0].as_str().unwrap().starts_with("http://127.0.0.1:"),
            "{m}"
        );
    }
    let status = post(&fb, "/v3/maintenance/status", "{}", &[]).await.json();
    assert!(status["version"].as_str().unwrap().starts_with("3.5"), "{status}");
    for field in ["dbSize", "leader", "raftIndex", "raftTerm"] {
        assert!(status[field].is_string(), "{field} as a string: {status}");
    }

    // A snapshot: the database in base64 blobs, one line each.
    let snapshot = post(&fb, "/v3/maintenance/snapshot", "{}", &[]).await;
    assert_eq!(snapshot.status, 200);
    let blobs: Vec<Value> = snapshot
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        blobs[0]["result"]["blob"].is_string(),
        "{}",
        &snapshot.body[..200.min(snapshot.body.len())]
    );
    assert!(blobs.last().unwrap()["result"].get("remaining_bytes").is_none());

    // Watch: a stream of {"result":…} lines, from any member.
    let watch_body = format!(r#"{{"create_request":{{"key":"{foo}","prev_kv":true}}}}"#);
    let mut streams = Vec::new();
    for base in &p.bases() {
        let mut stream = Stream::open(base, "/v3/watch", &watch_body, &[]).await;
        let created = stream.next().await;
        assert_eq!(created["result"]["created"], json!(true), "{created}");
        post(
            base,
            "/v3/kv/put",
            &format!(r#"{{"key":"{foo}","value":"{}"}}"#, b64("w1")),
            &[],
        )
        .await;
        post(base, "/v3/kv/deleterange", &format!(r#"{{"key":"{foo}"}}"#), &[]).await;
        let mut got = vec![created];
        while got
            .iter()
            .map(|l| l["result"]["events"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
            < 2
        {
            got.push(stream.next().await);
        }
        streams.push(got);
    }
    let events: Vec<Vec<Value>> = streams
        .iter()
        .map(|lines| {
            lines
                .iter()
                .flat_map(|l| l["result"]["events"].as_array().cloned().unwrap_or_default())
                .map(|e| normalise(&e, &[]))
                .collect()
        })
        .collect();
    assert_eq!(events[0][0]["kv"]["value"], json!(b64("w1")));
    assert_eq!(events[0][0]["prev_kv"]["value"], json!(b64("baz")));
    assert!(
        events[0][0].get("type").is_none(),
        "PUT is the default: {:?}",
        events[0]
    );
    assert_eq!(events[0][1]["type"], json!("DELETE"));
    if let Some(etcd_events) = events.get(1) {
        assert_eq!(&events[0], etcd_events);
        assert_eq!(normalise(&streams[0][0], &[]), normalise(&streams[1][0], &[]));
    }
    // A watch on another member, with several requests in one body.
    let mut other = Stream::open(
        &cluster.members[2].endpoint(),
        "/v3/watch",
        &format!(r#"{{"create_request":{{"key":"{foo}","watch_id":7}}}} {{"progress_request":{{}}}}"#),
        &[],
    )
    .await;
    let created = other.next().await;
    assert_eq!(created["result"]["watch_id"], json!("7"), "{created}");
    let progress = other.next().await;
    assert!(progress["result"].get("events").is_none(), "{progress}");
    // A watch ends when its client goes away: every watch call the
    // gateway made (counted by the gRPC metrics, as a client's) is done.
    drop(other);
    let watch = ["grpc_method=\"Watch\""];
    let deadline = Instant::now() + Duration::from_secs(10);
    for m in [1, 2] {
        let base = cluster.members[m].endpoint();
        loop {
            let started = metric(&base, "grpc_server_started_total", &watch).await;
            let handled = metric(&base, "grpc_server_handled_total", &watch).await;
            if started >= 1.0 && started == handled {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {m}: {started} watches started, {handled} ended"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let ranges = metric(&fb, "grpc_server_started_total", &["grpc_method=\"Range\""]).await;
    assert!(ranges >= 5.0, "gateway calls are counted as gRPC calls: {ranges}");

    // Errors: etcd's body and statuses; the gateway's own refusals.
    let bad = p.same_code("/v3/kv/range", r#"{"key":"#).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], json!(3));
    let bad_watch = p.same_code("/v3/watch", r#"{"create_request":"#).await;
    assert_eq!(bad_watch.status, 500);
    let empty = p.same("/v3/kv/range", "", &[]).await;
    assert_eq!(empty.json()["error"], json!("etcdserver: key is not provided"));
    let future = p
        .same(
            "/v3/kv/range",
            &format!(r#"{{"key":"{foo}","revision":"100000"}}"#),
            &[],
        )
        .await;
    assert_eq!(future.status, 400);
    for (path, args, status) in [
        ("/v3/kv/nothing", vec!["-X", "POST", "-d", "{}"], 404),
        ("/v3/kv/range", vec![], 405),
        ("/v3beta/kv/range", vec!["-X", "GET"], 405),
    ] {
        let ours = curl(&fb, path, &args, &[]).await;
        assert_eq!(ours.status, status, "{path}: {ours:?}");
        if let Some(etcd) = &p.etcd {
            let theirs = curl(etcd, path, &args, &[]).await;
            assert_eq!((ours.status, &ours.body), (theirs.status, &theirs.body), "{path}");
        }
    }

    // Auth: enabled through the gateway; the token goes in Authorization.
    p.same("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#, &[])
        .await;
    p.same("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#, &[])
        .await;
    p.same("/v3/auth/enable", "{}", &[]).await;
    let refused = p.same("/v3/kv/range", &format!(r#"{{"key":"{foo}"}}"#), &[]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"], json!("etcdserver: user name is empty"));
    let wrong = p
        .same("/v3/auth/authenticate", r#"{"name":"root","password":"nope"}"#, &[])
        .await;
    assert_eq!(wrong.status, 400, "{wrong:?}");
    let bogus = vec!["Authorization: bogus".to_owned()];
    let invalid = p
        .same_with("/v3/kv/range", &format!(r#"{{"key":"{foo}"}}"#), &bogus, &[])
        .await;
    assert_eq!(invalid.status, 401);
    let mut tokens = Vec::new();
    for base in &p.bases() {
        let auth = post(base, "/v3/auth/authenticate", r#"{"name":"root","password":"pw"}"#, &[]).await;
        assert_eq!(auth.status, 200, "{base}: {auth:?}");
        let token = auth.json()["token"].as_str().unwrap().to_owned();
        let with = vec![format!("Authorization: {token}")];
        let read = post(
            base,
            "/v3/kv/put",
            &format!(r#"{{"key":"{foo}","value":"{bar}"}}"#),
            &with,
        )
        .await;
        assert_eq!(read.status, 200, "{base}: {read:?}");
        tokens.push(with);
    }
    // The token is valid on every member, and on streams.
    let on_other = post(
        &cluster.members[0].endpoint(),
        "/v3/kv/range",
        &format!(r#"{{"key":"{foo}"}}"#),
        &tokens[0],
    )
    .await;
    assert_eq!(on_other.json()["kvs"][0]["value"], json!(bar), "{on_other:?}");
    let mut watch = Stream::open(&fb, "/v3/watch", &watch_body, &tokens[0]).await;
    assert_eq!(watch.next().await["result"]["created"], json!(true));
    let mut refused_watch = Stream::open(&fb, "/v3/watch", &watch_body, &bogus).await;
    let cancelled = refused_watch.next().await;
    assert_eq!(cancelled["result"]["canceled"], json!(true), "{cancelled}");
    let refused_keepalive = post(&fb, "/v3/lease/keepalive", r#"{"ID":5151}"#, &bogus).await;
    assert_eq!(refused_keepalive.status, 401);
    assert_eq!(
        refused_keepalive.json(),
        json!({"error": {"grpc_code": 16, "http_code": 401, "message": "etcdserver: invalid auth token",
                         "http_status": "Unauthorized"}})
    );
    let status = post(&fb, "/v3/auth/status", "{}", &tokens[0]).await.json();
    assert_eq!(status["enabled"], json!(true), "{status}");
    for (i, base) in p.bases().iter().enumerate() {
        let off = post(base, "/v3/auth/disable", "{}", &tokens[i]).await;
        assert_eq!(off.status, 200, "{base}: {off:?}");
    }
}

/// The Python that has `etcd3gw`, if any.
fn etcd3gw_python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../etcd3gw/bin/python");
    let candidates: Vec<PathBuf> = match std::env::var_os("ETCD3GW_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![venv, PathBuf::from("python3")],
    };
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import etcd3gw"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    let install = "python3 -m venv target/etcd3gw && target/etcd3gw/bin/pip install etcd3gw==2.7.0";
    if std::env::var_os("CI").is_some() {
        panic!("no Python with etcd3gw, and CI must run this test ({install})");
    }
    println!("skipping: no Python with etcd3gw ({install}, or set ETCD3GW_PYTHON)");
    None
}

#[tokio::test]
async fn etcd3gw_works_unchanged() {
    let Some(python) = etcd3gw_python() else { return };
    let cluster = Cluster::start(Options::default()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/etcd3gw_test.py");
    let run = Command::new(&python)
        .arg(script)
        .arg("127.0.0.1")
        .arg(cluster.members[0].client_port.to_string())
        .arg(cluster.members[1].client_port.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("etcd3gw's test ends within 120 s")
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "etcd3gw's test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("etcd3gw: all checks passed"), "{stdout}");
    // Every watch that etcd3gw opened and cancelled has ended on the
    // member.
    let base = cluster.members[0].endpoint();
    let watch = ["grpc_method=\"Watch\""];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = metric(&base, "grpc_server_started_total", &watch).await;
        let handled = metric(&base, "grpc_server_handled_total", &watch).await;
        if started >= 2.0 && started == handled {
            break;
        }
        assert!(Instant::now() < deadline, "{started} watches started, {handled} ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client certificate, as curl's arguments.
struct CurlTls {
    args: Vec<String>,
}

impl CurlTls {
    fn new(dir: &std::path::Path, ca: &firebreak_tls::generate::Ca, ca_file: &std::path::Path, cn: &str) -> CurlTls {
        use firebreak_tls::generate::Usage;
        let issued = ca.issue(cn, &[], Usage::Client).unwrap();
        let (cert, key) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        let args = [("--cacert", ca_file), ("--cert", &cert), ("--key", &key)]
            .into_iter()
            .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
            .collect();
        CurlTls { args }
    }

    async fn post(&self, base: &str, path: &str, body: &str) -> Reply {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend(["-X", "POST", "--data-binary", body]);
        curl(base, path, &args, &[]).await
    }
}

#[tokio::test]
async fn over_tls_the_client_certificate_names_the_caller() {
    use firebreak_tls::generate::{Ca, Usage};
    if !installed("curl", "apt-get install curl") {
        return;
    }
    // Client TLS with client_cert_auth: with auth on, a request without a
    // token acts as its certificate's CN, through the gateway as over
    // gRPC (etcd's gateway refuses such requests instead).
    let mut cluster = Cluster::prepare(Options::default());
    let pki = cluster.dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    let ca = Ca::new("gateway-test-ca").unwrap();
    let ca_file = pki.join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    for m in &cluster.members {
        let issued = ca.issue(&m.name, &["127.0.0.1"], Usage::ServerAndClient).unwrap();
        let (cert, key) = (pki.join(format!("{}.crt", m.name)), pki.join(format!("{}.key", m.name)));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        let text = std::fs::read_to_string(&m.config)
            .unwrap()
            .replace("client_url = \"http://", "client_url = \"https://");
        let tls = format!(
            "\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\ntrusted_ca_file = {ca_file:?}\nclient_cert_auth = true\n"
        );
        std::fs::write(&m.config, text + &tls).unwrap();
    }
    for i in 0..cluster.members.len() {
        cluster.start_member(i);
    }
    let root = CurlTls::new(&pki, &ca, &ca_file, "root");
    let alice = CurlTls::new(&pki, &ca, &ca_file, "alice");
    let base = format!("https://127.0.0.1:{}", cluster.members[0].client_port);
    let (key, value) = (b64("tls/k"), b64("v"));
    let put = format!(r#"{{"key":"{key}","value":"{value}"}}"#);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut args: Vec<&str> = root.args.iter().map(String::as_str).collect();
        args.extend(["-X", "POST", "--data-binary", &put]);
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(&args)
            .arg(format!("{base}/v3/kv/put"));
        let out = cmd.kill_on_drop(true).output().await.expect("run curl");
        if String::from_utf8_lossy(&out.stdout) == "200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not writable over TLS; log:\n{}",
            cluster.log(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (path, body) in [
        ("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#),
        ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
        ("/v3/auth/user/add", r#"{"name":"alice","password":"pw"}"#),
        ("/v3/auth/enable", "{}"),
    ] {
        let r = root.post(&base, path, body).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
    let range = format!(r#"{{"key":"{key}"}}"#);
    let as_root = root.post(&base, "/v3/kv/range", &range).await;
    assert_eq!(as_root.status, 200, "{as_root:?}");
    assert_eq!(as_root.json()["kvs"][0]["value"], json!(value));
    let as_alice = alice.post(&base, "/v3/kv/range", &range).await;
    assert_eq!(as_alice.status, 403, "{as_alice:?}");
    assert_eq!(as_alice.json()["error"], json!("etcdserver: permission denied"));
    // A token still wins over the certificate.
    let token = alice
        .post(&base, "/v3/auth/authenticate", r#"{"name":"root","password":"pw"}"#)
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut args: Vec<&str> = alice.args.iter().map(String::as_str).collect();
    args.extend(["-X", "POST", "--data-binary", &range]);
    let with_token = curl(&base, "/v3/kv/range", &args, &[format!("Authorization: {token}")]).await;
    assert_eq!(with_token.status, 200, "{with_token:?}");
}
