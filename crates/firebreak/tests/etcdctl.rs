//! etcdctl (Debian's `etcd-client` package) against `firebreak up`, the
//! local three-datacenter cluster a newcomer starts first.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `firebreak up` in the background, stopped with SIGTERM when dropped.
struct Up {
    child: Option<Child>,
    endpoints: Vec<String>,
    /// The flags etcdctl needs: `--endpoints`, and with `--tls` those that
    /// `up` printed (`--cacert`, `--cert`, `--key`, https endpoints).
    flags: Vec<String>,
    /// `up`'s standard output, kept open while it runs.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Up {
    fn start(data_dir: &Path, port_offset: u16) -> Up {
        Up::start_with(data_dir, port_offset, &[])
    }

    /// `firebreak up` with `extra` arguments; with `--tls`, etcdctl is run
    /// with the flags `up` prints on its `etcdctl flags:` line.
    fn start_with(data_dir: &Path, port_offset: u16, extra: &[&str]) -> Up {
        let mut child = Command::new(common::BIN)
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--port-offset", &port_offset.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start firebreak up");
        let endpoints: Vec<String> = [2379u16, 22379, 32379]
            .iter()
            .map(|p| format!("127.0.0.1:{}", p + port_offset))
            .collect();
        let mut flags = vec![format!("--endpoints={}", endpoints.join(","))];
        let mut stdout = None;
        if extra.contains(&"--tls") {
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                assert!(
                    out.read_line(&mut line).unwrap() > 0,
                    "firebreak up printed no etcdctl flags"
                );
                if let Some(printed) = line.trim().strip_prefix("etcdctl flags: ") {
                    flags = printed.split_whitespace().map(str::to_string).collect();
                    break;
                }
            }
            stdout = Some(out);
        }
        Up {
            child: Some(child),
            endpoints,
            flags,
            _stdout: stdout,
        }
    }

    fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .args(&self.flags)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run etcdctl");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs etcdctl and returns its stdout, failing the test on an error.
    /// `etcdctl member promote ID`, again until the learner has caught up
    /// (20 s at most).
    fn promote_when_caught_up(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let promoted = self.etcdctl(&["member", "promote", id], None);
            if promoted.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "promote failed: {}",
                String::from_utf8_lossy(&promoted.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args, None);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.etcdctl(&["put", "__ready", "1"], None).status.success() {
            assert!(Instant::now() < deadline, "firebreak up did not become writable");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, as Ctrl-C would; returns whether it exited cleanly.
    fn stop(&mut self) -> bool {
        let mut child = self.child.take().unwrap();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

fn etcdctl_installed() -> bool {
    let found = Command::new("etcdctl").arg("version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcdctl is required in CI (apt-get install etcd-client)"
        );
        eprintln!("skipping: etcdctl is not installed (apt-get install etcd-client)");
    }
    found
}

/// A port offset whose six ports are free now and that no other test of
/// this process has taken.
fn free_offset() -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap();
    for offset in (1000..20000).step_by(97) {
        let free = [2379u16, 2380, 22379, 22380, 32379, 32380]
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p + offset)).is_ok());
        if free && !taken.contains(&offset) {
            taken.push(offset);
            return offset;
        }
    }
    panic!("no free port offset");
}

#[test]
fn etcdctl_against_firebreak_up() {
    if !etcdctl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let offset = free_offset();
    let mut up = Up::start(dir.path(), offset);
    up.wait_ready();

    assert_eq!(up.ok(&["put", "app/config", "blue"]).trim(), "OK");
    up.ok(&["put", "app/flags", "on"]);
    up.ok(&["put", "other", "x"]);
    assert_eq!(up.ok(&["get", "app/", "--prefix"]), "app/config\nblue\napp/flags\non\n");
    let txn = up.etcdctl(
        &["txn"],
        Some("value(\"app/config\") = \"blue\"\n\nput app/config green\n\nput app/config red\n\n"),
    );
    assert!(txn.status.success(), "{}", String::from_utf8_lossy(&txn.stderr));
    assert_eq!(String::from_utf8_lossy(&txn.stdout), "SUCCESS\n\nOK\n");
    assert_eq!(up.ok(&["get", "app/config", "--print-value-only"]), "green\n");
    assert_eq!(up.ok(&["del", "app/", "--prefix"]).trim(), "2");

    let members = up.ok(&["member", "list"]);
    for dc in ["dc1-1", "dc2-1", "dc3-1"] {
        assert!(members.contains(dc), "member list lacks {dc}: {members}");
    }
    let status = up.ok(&["endpoint", "status", "-w", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let leaders: Vec<u64> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert_eq!(leaders.len(), 3);
    assert!(
        leaders.iter().all(|l| *l != 0 && *l == leaders[0]),
        "members disagree on the leader: {leaders:?}"
    );
    let health = up.etcdctl(&["endpoint", "health"], None);
    assert!(health.status.success(), "{}", String::from_utf8_lossy(&health.stderr));
    assert_eq!(String::from_utf8_lossy(&health.stderr).matches("is healthy").count(), 3);

    // Ctrl-C stops every member; a second run on the same data resumes.
    assert!(up.stop(), "firebreak up did not exit cleanly on SIGTERM");
    let mut up = Up::start(dir.path(), offset);
    up.wait_ready();
    assert_eq!(up.ok(&["get", "other", "--print-value-only"]), "x\n");
    assert!(up.stop());
}

#[test]
fn etcdctl_against_firebreak_up_with_tls() {
    if !etcdctl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let offset = free_offset();
    let mut up = Up::start_with(dir.path(), offset, &["--tls"]);
    let tls = dir.path().canonicalize().unwrap().join("tls");
    let expected: Vec<String> = vec![
        format!("--cacert={}", tls.join("ca.crt").display()),
        format!("--cert={}", tls.join("client.crt").display()),
        format!("--key={}", tls.join("client.key").display()),
        format!(
            "--endpoints={}",
            up.endpoints
                .iter()
                .map(|e| format!("https://{e}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    ];
    assert_eq!(up.flags, expected, "the printed flags changed");
    up.wait_ready();

    assert_eq!(up.ok(&["put", "secure/key", "v1"]).trim(), "OK");
    assert_eq!(up.ok(&["get", "secure/", "--prefix"]), "secure/key\nv1\n");
    let members = up.ok(&["member", "list"]);
    for dc in ["dc1-1", "dc2-1", "dc3-1"] {
        assert!(
            members
                .lines()
                .any(|l| l.contains(dc) && l.contains("https://127.0.0.1:") && !l.contains("http://")),
            "member list lacks {dc} with https URLs: {members}"
        );
    }
    let health = up.etcdctl(&["endpoint", "health"], None);
    assert!(health.status.success(), "{}", String::from_utf8_lossy(&health.stderr));
    assert_eq!(String::from_utf8_lossy(&health.stderr).matches("is healthy").count(), 3);

    // Without a client certificate, or without TLS, nothing gets in.
    let refused = |args: Vec<String>| {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(&args)
            .args(["--dial-timeout=2s", "--command-timeout=3s", "get", "secure/key"])
            .output()
            .unwrap();
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "etcdctl {args:?} was let in: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    refused(vec![expected[0].clone(), expected[3].clone()]);
    refused(vec![format!("--endpoints={}", up.endpoints.join(","))]);

    // `firebreak status` takes the same flags, over HTTPS with the client
    // certificate; without one it is refused too.
    let status = Command::new(common::BIN)
        .arg("status")
        .args(&up.flags)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(table.contains("dc1-1") && table.contains("leader: dc"), "{table}");
    let no_cert: Vec<&String> = up
        .flags
        .iter()
        .filter(|f| f.starts_with("--cacert") || f.starts_with("--endpoints"))
        .collect();
    let status = Command::new(common::BIN).arg("status").args(no_cert).output().unwrap();
    assert!(
        !status.status.success(),
        "status without a client certificate was let in"
    );

    // The client certificate opens no peer port: the members' peer CA
    // signed it not.
    let as_peer = firebreak_raft::peer_tls::PeerTls::new(&firebreak_config::PeerTls {
        cert_file: tls.join("client.crt"),
        key_file: tls.join("client.key"),
        trusted_ca_file: tls.join("peer-ca.crt"),
    })
    .unwrap();
    let peer_port = format!("127.0.0.1:{}", 2380 + offset);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let joined = runtime.block_on(firebreak_raft::peer_tls::PeerStream::connect(
        &peer_port,
        Some(&as_peer),
    ));
    assert!(joined.is_err(), "the client certificate was admitted to a peer port");

    // An auth session over TLS, as an operator types it.
    up.ok(&["user", "add", "root:rootpw", "--interactive=false"]);
    up.ok(&["role", "add", "app"]);
    up.ok(&["role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"]);
    up.ok(&["user", "add", "alice:alicepw", "--interactive=false"]);
    up.ok(&["user", "grant-role", "alice", "app"]);
    assert!(up.ok(&["auth", "enable"]).contains("Authentication Enabled"));
    assert_eq!(
        up.ok(&["--user", "alice:alicepw", "put", "app/x", "by alice"]).trim(),
        "OK"
    );
    let denied = up.etcdctl(&["--user", "alice:alicepw", "put", "secure/key", "v2"], None);
    assert!(!denied.status.success(), "alice wrote outside her prefix");
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let wrong = up.etcdctl(&["--user", "alice:nope", "get", "app/x"], None);
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // The client certificate's name is root: without a token it acts as root.
    assert_eq!(up.ok(&["get", "app/x", "--print-value-only"]), "by alice\n");
    assert!(up
        .ok(&["--user", "root:rootpw", "auth", "disable"])
        .contains("Authentication Disabled"));
    assert_eq!(up.ok(&["put", "secure/key", "v1"]).trim(), "OK");

    // A second run on the same directory reuses the certificates.
    let ca = std::fs::read(tls.join("ca.crt")).unwrap();
    let client = std::fs::read(tls.join("client.crt")).unwrap();
    assert!(up.stop(), "firebreak up --tls did not exit cleanly on SIGTERM");
    let mut up = Up::start_with(dir.path(), offset, &["--tls"]);
    assert_eq!(up.flags, expected);
    assert_eq!(std::fs::read(tls.join("ca.crt")).unwrap(), ca);
    assert_eq!(std::fs::read(tls.join("client.crt")).unwrap(), client);
    up.wait_ready();
    assert_eq!(up.ok(&["get", "secure/key", "--print-value-only"]), "v1\n");
    assert!(up.stop());
}

/// Writes the config of a member `name` in `dc` that joins a running
/// cluster, listing besides itself `also` (name, peer port, client port,
/// datacenter) of members it may ask who it is.
fn joiner_config(
    dir: &Path,
    (name, dc): (&str, &str),
    (client, peer): (u16, u16),
    also: &[(&str, u16, u16, &str)],
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let mut text = format!(
        "name = \"{name}\"\ndatacenter = \"{dc}\"\ndata_dir = \"{}\"\nlisten_client = \"127.0.0.1:{client}\"\nlisten_peer = \"127.0.0.1:{peer}\"\ninitial_cluster_state = \"existing\"\n",
        dir.join(name).display()
    );
    for (n, p, c, d) in std::iter::once((name, peer, client, dc)).chain(also.iter().copied()) {
        text.push_str(&format!(
            "\n[[initial_cluster]]\nname = \"{n}\"\npeer_url = \"http://127.0.0.1:{p}\"\nclient_url = \"http://127.0.0.1:{c}\"\ndatacenter = \"{d}\"\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn etcdctl_watch_lease_lock_elect_snapshot_members_hashkv_alarms() {
    if !etcdctl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let offset = free_offset();
    let up = Up::start(dir.path(), offset);
    up.wait_ready();
    let endpoints = format!("--endpoints={}", up.endpoints.join(","));

    // watch: a background etcdctl prints the events of two writes.
    let mut watch = Command::new("etcdctl")
        .args([&endpoints, "watch", "cfg/", "--prefix"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    up.ok(&["put", "cfg/a", "1"]);
    up.ok(&["del", "cfg/a"]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PUT\ncfg/a\n1\nDELETE\ncfg/a\n\n");

    // lease grant / put with it / keep-alive / revoke.
    let granted = up.ok(&["lease", "grant", "30"]);
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    up.ok(&["put", "--lease", &id, "session", "x"]);
    assert!(up
        .ok(&["lease", "keep-alive", "--once", &id])
        .contains("keepalived with TTL(30)"));
    assert!(up
        .ok(&["lease", "timetolive", &id, "--keys"])
        .contains("attached keys([session])"));
    assert!(up.ok(&["lease", "list"]).contains(&id));
    assert!(up.ok(&["lease", "revoke", &id]).contains("revoked"));
    assert_eq!(up.ok(&["get", "session"]), "");

    // lock: runs a command while holding the lock.
    let locked = up.ok(&["lock", "job", "echo", "holding"]);
    assert!(locked.contains("holding"), "{locked}");

    // elect: a campaigner leads, an observer sees it.
    let mut campaigner = Command::new("etcdctl")
        .args([&endpoints, "elect", "svc", "node-a"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let mut observer = Command::new("etcdctl")
        .args([&endpoints, "elect", "--listen", "svc"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let _ = observer.kill();
    let _ = campaigner.kill();
    let observed = String::from_utf8_lossy(&observer.wait_with_output().unwrap().stdout).into_owned();
    let _ = campaigner.wait();
    assert!(observed.contains("node-a"), "{observed}");

    // endpoint hashkv: the same on every member.
    let hashes = up.ok(&["endpoint", "hashkv"]);
    let values: Vec<&str> = hashes.lines().map(|l| l.rsplit(", ").next().unwrap()).collect();
    assert_eq!(values.len(), 3);
    assert!(values.iter().all(|v| *v == values[0]), "{hashes}");

    // alarm list (none) and disarm (nothing to disarm).
    assert_eq!(up.ok(&["alarm", "list"]), "");
    up.ok(&["alarm", "disarm"]);

    // snapshot save, then restore into a new member's data directory.
    let snap = dir.path().join("backup.db");
    let out = Command::new("etcdctl")
        .args([&format!("--endpoints={}", up.endpoints[0]), "snapshot", "save"])
        .arg(&snap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restore = Command::new(common::BIN)
        .arg("restore")
        .arg(&snap)
        .arg("--data-dir")
        .arg(dir.path().join("restored"))
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));

    // member add (learner) / promote / remove, with a real joining member.
    let (client, peer) = (common::free_port(), common::free_port());
    let config = joiner_config(dir.path(), ("dc1-2", "dc1"), (client, peer), &[]);
    let peer_url = format!("http://127.0.0.1:{peer}?name=dc1-2&datacenter=dc1");
    let added = up.ok(&[
        "member",
        "add",
        "dc1-2",
        "--learner",
        &format!("--peer-urls={peer_url}"),
    ]);
    assert!(added.contains("added"), "{added}");
    let _joiner = common::serve(&config, &dir.path().join("dc1-2.log"));
    let list = up.ok(&["member", "list"]);
    let id = list
        .lines()
        .find(|l| l.contains("dc1-2"))
        .map(|l| l.split(',').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        list.lines().any(|l| l.contains("dc1-2") && l.ends_with("true")),
        "not a learner: {list}"
    );
    up.promote_when_caught_up(&id);
    let list = up.ok(&["member", "list"]);
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(up.ok(&["member", "remove", &id]).contains("removed"));
    assert_eq!(up.ok(&["member", "list"]).lines().count(), 3);
}

/// A joiner's config listing `up`'s dc2-1 (at `offset`) too.
fn joiner_config_listing_up(dir: &Path, name: &str, dc: &str, client: u16, peer: u16, offset: u16) -> PathBuf {
    joiner_config(
        dir,
        (name, dc),
        (client, peer),
        &[("dc2-1", 22380 + offset, 22379 + offset, "dc2")],
    )
}

#[test]
fn member_add_as_etcd_runbooks_type_it() {
    if !etcdctl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let offset = free_offset();
    let up = Up::start(dir.path(), offset);
    up.wait_ready();

    // A voter whose datacenter nobody knows yet is refused, with the way on.
    let (client, peer) = (common::free_port(), common::free_port());
    let url = format!("http://127.0.0.1:{peer}");
    let refused = up.etcdctl(&["member", "add", "dc3-2", &format!("--peer-urls={url}")], None);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a voter of unknown datacenter was added");
    assert!(why.contains("add it as a learner first"), "{why}");

    // As a learner it is added at once, unstarted: no name yet.
    let added = up.ok(&["member", "add", "dc3-2", "--learner", &format!("--peer-urls={url}")]);
    assert!(added.contains("added"), "{added}");
    let list = up.ok(&["member", "list"]);
    let line = list
        .lines()
        .find(|l| l.contains(&url))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains("unstarted"), "{line}");
    let id = line.split(',').next().unwrap().trim().to_string();

    // A member that nobody added is told so and stops.
    let (stray_client, stray_peer) = (common::free_port(), common::free_port());
    let stray = joiner_config_listing_up(dir.path(), "stray", "dc3", stray_client, stray_peer, offset);
    let out = Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&stray)
        .env("FIREBREAK_LOG", "warn")
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(why.contains("add it first"), "{why}");

    // Started, it announces its name, client URL and datacenter.
    let config = joiner_config_listing_up(dir.path(), "dc3-2", "dc3", client, peer, offset);
    let log = dir.path().join("dc3-2.log");
    let joiner = common::serve(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = up.ok(&["member", "list"]);
        if list
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("dc3-2") && l.contains(&client.to_string()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the joiner never named itself: {list}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Promotion checks the topology with the datacenter it announced.
    up.promote_when_caught_up(&id);
    // It serves, and after a restart it knows who it is without asking.
    drop(joiner);
    let identity = std::fs::read_to_string(dir.path().join("dc3-2").join("identity")).unwrap();
    assert!(identity.contains(&format!("member_id = {id}")), "{identity}");
    let _joiner = common::serve(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("etcdctl")
            .args([&format!("--endpoints=127.0.0.1:{client}"), "endpoint", "status"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.contains(&id) {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted joiner does not serve: {text}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(up.ok(&["member", "remove", &id]).contains("removed"));
}
