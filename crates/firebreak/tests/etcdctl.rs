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

/// A port offset whose six ports are free now.
fn free_offset() -> u16 {
    for offset in (1000..20000).step_by(97) {
        let free = [2379u16, 2380, 22379, 22380, 32379, 32380]
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p + offset)).is_ok());
        if free {
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
