//! The command line's refusals: bad configuration and unsafe topologies are
//! named before anything starts.

mod common;

use std::process::Command;

fn serve_with(config: &str, extra: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(common::BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .args(extra)
        .env("FIREBREAK_LOG", "warn")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
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
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config(["dc1", "dc1", "dc2"])).unwrap();
    let log_path = dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(common::BIN)
        .args(["serve", "--allow-unsafe-topology", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&path)
        .env("FIREBREAK_LOG", "info")
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("serving") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("unsafe topology"), "{text}");
    assert!(text.contains("serving"), "{text}");
}
