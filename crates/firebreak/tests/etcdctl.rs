//! etcdctl (Debian's `etcd-client` package) against `firebreak up`, the
//! local three-datacenter cluster a newcomer starts first.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `firebreak up` in the background, stopped with SIGTERM when dropped.
struct Up {
    child: Option<Child>,
    endpoints: Vec<String>,
}

impl Up {
    fn start(data_dir: &Path, port_offset: u16) -> Up {
        let child = Command::new(common::BIN)
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--port-offset", &port_offset.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start firebreak up");
        let endpoints = [2379u16, 22379, 32379]
            .iter()
            .map(|p| format!("127.0.0.1:{}", p + port_offset))
            .collect();
        Up {
            child: Some(child),
            endpoints,
        }
    }

    fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints.join(",")))
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

/// Writes the config of a member that joins `up`'s cluster in dc1.
fn joiner_config(dir: &Path, name: &str, client: u16, peer: u16) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ndatacenter = \"dc1\"\ndata_dir = \"{}\"\nlisten_client = \"127.0.0.1:{client}\"\nlisten_peer = \"127.0.0.1:{peer}\"\ninitial_cluster_state = \"existing\"\n\n[[initial_cluster]]\nname = \"{name}\"\npeer_url = \"http://127.0.0.1:{peer}\"\nclient_url = \"http://127.0.0.1:{client}\"\ndatacenter = \"dc1\"\n",
            dir.join(name).display()
        ),
    )
    .unwrap();
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
    let config = joiner_config(dir.path(), "dc1-2", client, peer);
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
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let promoted = up.etcdctl(&["member", "promote", &id], None);
        if promoted.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "promote failed: {}",
            String::from_utf8_lossy(&promoted.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let list = up.ok(&["member", "list"]);
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(up.ok(&["member", "remove", &id]).contains("removed"));
    assert_eq!(up.ok(&["member", "list"]).lines().count(), 3);
}
