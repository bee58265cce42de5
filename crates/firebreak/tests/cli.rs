//! The command line's refusals: bad configuration and unsafe topologies are
//! named before anything starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn write_config(dir: &Path, config: &str) -> PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn serve_with(config: &str, extra: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), config);
    let out = Command::new(common::BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(extra)
        .env("FIREBREAK_LOG", "warn")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `firebreak serve --allow-unsafe-topology` in `dir`, on a config of two
/// datacenters, with `extra` flags, logging at level info to the file
/// returned; it is killed when the handle is dropped.
fn serve_unsafe(dir: &Path, extra: &[&str]) -> (common::KillOnDrop, PathBuf) {
    let path = write_config(dir, &config(["dc1", "dc1", "dc2"]));
    let log_path = dir.join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(common::BIN)
        .args(["serve", "--allow-unsafe-topology"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&path)
        .env("FIREBREAK_LOG", "info")
        .stderr(log)
        .spawn()
        .unwrap();
    (common::KillOnDrop(child), log_path)
}

/// The log at `path` once it says `needle`, or as it is after 10 s.
fn log_once(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        if text.contains(needle) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(dcs: [&str; 3]) -> String {
    let (c, p) = (common::free_port(), common::free_port());
    let mut text = format!(
        "name = \"a\"\ndatacenter = \"{}\"\nlisten_client = \"127.0.0.1:{c}\"\nlisten_peer = \"127.0.0.1:{p}\"\n",
        dcs[0]
    );
    for (i, (name, dc)) in ["a", "b", "c"].iter().zip(dcs).enumerate() {
        let (client, peer) = if i == 0 {
            (c, p)
        } else {
            (common::free_port(), common::free_port())
        };
        text.push_str(&format!(
            "[[initial_cluster]]\nname = \"{name}\"\npeer_url = \"http://127.0.0.1:{peer}\"\nclient_url = \"http://127.0.0.1:{client}\"\ndatacenter = \"{dc}\"\n"
        ));
    }
    text
}

#[test]
fn a_voter_set_in_two_datacenters_is_refused_with_the_reason() {
    let (ok, stderr) = serve_with(&config(["dc1", "dc1", "dc2"]), &[]);
    assert!(!ok);
    assert!(stderr.contains("unsafe topology"), "{stderr}");
    assert!(stderr.contains("span only 2 datacenter"), "{stderr}");
}

#[test]
fn an_unknown_field_and_a_missing_datacenter_are_named() {
    let (ok, stderr) = serve_with("nmae = \"a\"\n", &[]);
    assert!(!ok);
    assert!(stderr.contains("nmae"), "{stderr}");
    let text = config(["dc1", "dc2", "dc3"]).replace("datacenter = \"dc1\"\nlisten", "listen");
    let (ok, stderr) = serve_with(&text, &[]);
    assert!(!ok);
    assert!(stderr.contains("datacenter is required"), "{stderr}");
}

#[test]
fn flags_override_the_file() {
    // The file is fine; a flag moves the peer listener onto the client one.
    let text = config(["dc1", "dc2", "dc3"]);
    let client = text
        .lines()
        .find_map(|l| l.strip_prefix("listen_client = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let (ok, stderr) = serve_with(&text, &["--listen-peer", &client]);
    assert!(!ok);
    assert!(stderr.contains("must differ from listen_client"), "{stderr}");
}

#[test]
fn allow_unsafe_topology_starts_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (member, log) = serve_unsafe(dir.path(), &[]);
    let text = log_once(&log, "serving");
    drop(member);
    assert!(text.contains("unsafe topology"), "{text}");
    assert!(text.contains("serving"), "{text}");
}

#[test]
fn tls_flags_are_checked_before_anything_starts() {
    let plain = config(["dc1", "dc2", "dc3"]);
    let secure = plain.replace("_url = \"http://", "_url = \"https://");
    // A half-given set is named, not run without TLS.
    let (ok, stderr) = serve_with(&secure, &["--peer-cert-file", "m.crt", "--peer-key-file", "m.key"]);
    assert!(!ok);
    assert!(stderr.contains("tls.peer_trusted_ca_file"), "{stderr}");
    let (ok, stderr) = serve_with(&secure, &["--cert-file", "m.crt", "--client-cert-auth"]);
    assert!(!ok);
    assert!(stderr.contains("tls.key_file"), "{stderr}");
    // Peer TLS with http:// peer URLs.
    let peer = [
        "--peer-cert-file",
        "m.crt",
        "--peer-key-file",
        "m.key",
        "--peer-trusted-ca-file",
        "ca.crt",
    ];
    let (ok, stderr) = serve_with(&plain, &peer);
    assert!(!ok);
    assert!(stderr.contains("must be an https:// URL"), "{stderr}");
    // Files that cannot be read stop the member at start.
    let only_peer = plain.replace("peer_url = \"http://", "peer_url = \"https://");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(common::BIN)
        .arg("serve")
        .arg("--config")
        .arg(write_config(dir.path(), &only_peer))
        .arg("--data-dir")
        .arg(&data)
        .args(peer)
        .env("FIREBREAK_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot read m.crt"), "{stderr}");
    // ... and before the data directory is made.
    assert!(
        !data.exists(),
        "a member that could not start created {}",
        data.display()
    );
}

#[test]
fn log_format_json_writes_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let (member, log) = serve_unsafe(dir.path(), &["--log-format", "json"]);
    let text = log_once(&log, "\"serving\"");
    drop(member);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let serving = lines
        .iter()
        .find(|l| l["message"] == "serving")
        .unwrap_or_else(|| panic!("no serving line in {text}"));
    assert_eq!(serving["level"], "INFO");
    assert_eq!(serving["name"], "a", "fields are at the top level: {serving}");
    assert!(serving["timestamp"].is_string(), "{serving}");
    assert!(
        lines.iter().any(|l| l["level"] == "WARN" && l["warning"].is_string()),
        "{text}"
    );
}
