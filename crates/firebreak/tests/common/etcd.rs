//! A real etcd for the differential tests: one member on loopback, in a
//! directory of its own, killed when dropped (also when the test fails).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Client;

/// The command that runs a one-member etcd `name` on `data_dir` (new or
/// prepared by `etcdctl snapshot restore`), on loopback ports `client` and
/// `peer`, logging to `log`.
pub fn command(name: &str, data_dir: &std::path::Path, client: u16, peer: u16, log: &std::path::Path) -> Command {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new("etcd");
    cmd.arg("--name")
        .arg(name)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("{name}={peer_url}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    cmd
}

/// A one-member etcd on loopback, killed when dropped.
pub struct Etcd {
    endpoint: String,
    log: PathBuf,
    process: Option<Child>,
    // Dropped after the process is killed (fields drop after `drop`).
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd with its default settings.
    pub fn start() -> Etcd {
        Etcd::start_with(&[])
    }

    /// Starts etcd with `extra` flags added to those that place it.
    pub fn start_with(extra: &[&str]) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let client = super::free_port();
        let peer = super::free_port();
        let client_url = format!("http://127.0.0.1:{client}");
        let log = dir.path().join("etcd.log");
        let process = command("d", &dir.path().join("data"), client, peer, &log)
            .args(extra)
            .spawn()
            .expect("start etcd");
        Etcd {
            endpoint: client_url,
            log,
            process: Some(process),
            _dir: dir,
        }
    }

    /// The client URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What etcd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until etcd answers a linearizable read, and connects.
    pub async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let mut c = super::connect(std::slice::from_ref(&self.endpoint)).await;
                c.get("__probe", None).await.map(|_| c)
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(c)) => return c,
                _ if Instant::now() > deadline => panic!("etcd does not answer after 30s; log:\n{}", self.log()),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// Runs a differential test: `run(seed, ops)` for each seed (from the
/// environment variable `seeds_var`, else `default_seeds`) with the number
/// of operations from `ops_var` (else `default_ops`), and prints each
/// seed's statistics. Skipped if etcd is not installed, unless under `CI`.
pub async fn each_seed<Fut>(
    seeds_var: &str,
    default_seeds: &[u64],
    ops_var: &str,
    default_ops: usize,
    mut run: impl FnMut(u64, usize) -> Fut,
) where
    Fut: Future<Output = BTreeMap<String, usize>>,
{
    if !super::installed("etcd", "apt-get install etcd-server") {
        return;
    }
    let ops = super::env_or(ops_var, default_ops);
    for seed in super::seeds_from_env(seeds_var, default_seeds) {
        let started = Instant::now();
        let stats = run(seed, ops).await;
        println!("seed {seed}: {ops} ops agree in {:.1?}", started.elapsed());
        for (kind, n) in stats {
            println!("  {n:6}  {kind}");
        }
    }
}
