//! A test cluster: real `firebreak serve` processes on loopback, each with
//! its own config file and data directory, stopped when dropped (also when
//! the test fails).

#![allow(dead_code)]

pub mod etcd;
pub mod grpc;
pub mod http;
pub mod kv_model;
pub mod lab;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_firebreak");

/// Settings of a test cluster.
#[derive(Clone, Debug)]
pub struct Options {
    pub members: usize,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_entries: u64,
    /// Space quota of each member, in bytes (None: the default).
    pub quota_bytes: Option<u64>,
    /// The `firebreak` binary to run (None: the one under test).
    pub bin: Option<PathBuf>,
    /// Extra environment of every member, such as `FAILPOINTS`.
    pub env: Vec<(String, String)>,
    /// Top-level TOML lines added to every member's config, such as
    /// `leader_priority = ["dc2"]`.
    pub extra_config: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            members: 3,
            heartbeat_ms: 50,
            election_ms: 500,
            snapshot_entries: 10_000,
            quota_bytes: None,
            bin: None,
            env: Vec::new(),
            extra_config: String::new(),
        }
    }
}

pub struct Member {
    pub name: String,
    pub datacenter: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    pub data_dir: PathBuf,
    process: Option<Child>,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.id())
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    opts: Options,
}

/// A port nobody listens on right now, and not handed out before by this
/// process (the kernel may offer a just-released port again).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn write_config(member: &Member, all: &[(String, String, u16, u16)], opts: &Options) {
    let mut text = format!(
        "name = \"{}\"\ndatacenter = \"{}\"\ndata_dir = \"{}\"\nlisten_client = \"127.0.0.1:{}\"\nlisten_peer = \"127.0.0.1:{}\"\n\n[raft]\nheartbeat_interval_ms = {}\nelection_timeout_ms = {}\nsnapshot_entries = {}\n",
        member.name,
        member.datacenter,
        member.data_dir.display(),
        member.client_port,
        member.peer_port,
        opts.heartbeat_ms,
        opts.election_ms,
        opts.snapshot_entries,
    );
    if let Some(q) = opts.quota_bytes {
        text = format!("quota_backend_bytes = {q}\n{text}");
    }
    if !opts.extra_config.is_empty() {
        text = format!("{}\n{text}", opts.extra_config);
    }
    for (name, dc, client, peer) in all {
        text.push_str(&format!(
            "\n[[initial_cluster]]\nname = \"{name}\"\npeer_url = \"http://127.0.0.1:{peer}\"\nclient_url = \"http://127.0.0.1:{client}\"\ndatacenter = \"{dc}\"\n"
        ));
    }
    std::fs::write(&member.config, text).unwrap();
}

fn spawn(config: &Path, log: &Path, opts: &Options) -> Child {
    spawn_with(config, log, opts, &[])
}

fn spawn_with(config: &Path, log: &Path, opts: &Options, env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(opts.bin.as_deref().unwrap_or(Path::new(BIN)))
        // The default log filter, unless the test sets its own.
        .env("FIREBREAK_LOG", "info,openraft=warn")
        .envs(opts.env.iter().chain(env).map(|(k, v)| (k, v)))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start firebreak serve")
}

impl Cluster {
    /// Starts `opts.members` members, spread round-robin over dc1..dc3,
    /// and waits until a write succeeds.
    pub async fn start(opts: Options) -> Cluster {
        Cluster::prepare(opts).launch().await
    }

    /// Starts every member of a prepared cluster and waits until it takes
    /// writes.
    pub async fn launch(mut self) -> Cluster {
        for i in 0..self.members.len() {
            self.start_member(i);
        }
        self.wait_writable(Duration::from_secs(30)).await;
        self
    }

    /// Writes the configs of a cluster without starting it.
    pub fn prepare(opts: Options) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let specs: Vec<(String, String, u16, u16)> = (0..opts.members)
            .map(|i| {
                (
                    format!("m{}", i + 1),
                    format!("dc{}", i % 3 + 1),
                    free_port(),
                    free_port(),
                )
            })
            .collect();
        let mut members = Vec::new();
        for (name, dc, client, peer) in &specs {
            let member = Member {
                name: name.clone(),
                datacenter: dc.clone(),
                client_port: *client,
                peer_port: *peer,
                config: dir.path().join(format!("{name}.toml")),
                log: dir.path().join(format!("{name}.log")),
                data_dir: dir.path().join(name),
                process: None,
            };
            write_config(&member, &specs, &opts);
            members.push(member);
        }
        Cluster { dir, members, opts }
    }

    /// Runs `firebreak restore FILE` into every member's data directory,
    /// as an operator prepares a new cluster from one backup.
    pub fn restore_each(&self, file: &Path) {
        for m in &self.members {
            let out = Command::new(BIN)
                .arg("restore")
                .arg(file)
                .arg("--data-dir")
                .arg(&m.data_dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }

    pub fn start_member(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(m.process.is_none(), "{} is already running", m.name);
        m.process = Some(spawn(&m.config, &m.log, &self.opts));
    }

    /// Starts member `i` with `env` added to (or overriding) the cluster's.
    pub fn start_member_with_env(&mut self, i: usize, env: &[(String, String)]) {
        let m = &mut self.members[i];
        assert!(m.process.is_none(), "{} is already running", m.name);
        m.process = Some(spawn_with(&m.config, &m.log, &self.opts, env));
    }

    /// SIGKILL, as a crash or a fire would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a member that hangs, as under
    /// a long GC pause, a stalled disk or an overloaded host.
    pub fn pause(&mut self, i: usize, paused: bool) {
        if let Some(p) = &self.members[i].process {
            let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(p.id() as i32, signal);
            }
        }
    }

    /// SIGTERM and wait, as an operator would stop it.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].process.take() {
            unsafe {
                libc::kill(p.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = p.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint()).collect()
    }

    /// A client of every member.
    pub async fn client(&self) -> Client {
        connect(&self.endpoints()).await
    }

    /// A client of one member only.
    pub async fn client_of(&self, i: usize) -> Client {
        connect(&[self.members[i].endpoint()]).await
    }

    /// Waits until a linearizable write through every running member succeeds.
    pub async fn wait_writable(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for (i, m) in self.members.iter().enumerate() {
            if m.process.is_none() {
                continue;
            }
            loop {
                let attempt = async {
                    let mut c = self.client_of(i).await;
                    c.put("__ready", m.name.as_str(), None).await
                };
                match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                    Ok(Ok(_)) => break,
                    _ if Instant::now() > deadline => {
                        panic!("{} is not writable after {limit:?}; log:\n{}", m.name, self.log(i))
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }

    /// The index of the member that reports itself leader.
    pub async fn leader(&self) -> usize {
        for _ in 0..100 {
            for (i, m) in self.members.iter().enumerate() {
                if m.process.is_none() {
                    continue;
                }
                let mut c = self.client_of(i).await;
                if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), c.status()).await {
                    if s.leader() != 0 && s.leader() == s.header().map_or(0, |h| h.member_id()) {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader found");
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn connect_options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10))
}

pub async fn connect(endpoints: &[String]) -> Client {
    Client::connect(endpoints, Some(connect_options()))
        .await
        .expect("connect")
}

/// A client of `endpoints` logged in as `user`.
pub async fn login(endpoints: &[String], user: &str, password: &str) -> Result<Client, etcd_client::Error> {
    Client::connect(endpoints, Some(connect_options().with_user(user, password))).await
}

/// Whether `name` is an executable file in a directory of `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Whether `program`, which a test needs, is installed; if not, the test
/// says it is skipped (`install` says how to install it), or panics under
/// `CI`, which must run every test.
pub fn installed(program: &str, install: &str) -> bool {
    if on_path(program) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{program} is not installed, and CI must run this test ({install})");
    }
    println!("skipping: {program} not installed ({install})");
    false
}

/// The environment variable `name` as a `T`, or `default` if it is unset
/// or is not one.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The seeds a randomised test runs: the comma-separated numbers in the
/// environment variable `name`, or `default` if it is unset.
pub fn seeds_from_env(name: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(name) {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("{name}: numbers")))
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// A process the test started outside a [`Cluster`], killed when dropped
/// (also when the test fails).
pub struct KillOnDrop(pub Child);

/// Starts `firebreak serve --config config` outside any cluster, logging
/// to `log`; it is killed when the handle is dropped.
pub fn serve(config: &Path, log: &Path) -> KillOnDrop {
    KillOnDrop(spawn(config, log, &Options::default()))
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A member that joins a running cluster, named in its peer URL (the
/// `?name=&datacenter=` shortcut of MemberAdd).
pub struct Joiner {
    pub config: PathBuf,
    pub log: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    /// The peer URL to give MemberAdd.
    pub add_url: String,
}

/// Writes the config of `name` in `dc` joining `cluster` (with `extra`
/// top-level lines) and picks its ports; the caller adds and starts it.
pub fn joiner(cluster: &Cluster, name: &str, dc: &str, extra: &str) -> Joiner {
    let (client, peer) = (free_port(), free_port());
    let dir = cluster.dir.path();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "name = \"{name}\"\ndatacenter = \"{dc}\"\ndata_dir = \"{}\"\nlisten_client = \"127.0.0.1:{client}\"\nlisten_peer = \"127.0.0.1:{peer}\"\ninitial_cluster_state = \"existing\"\n{extra}\n[raft]\nheartbeat_interval_ms = {}\nelection_timeout_ms = {}\n[[initial_cluster]]\nname = \"{name}\"\npeer_url = \"http://127.0.0.1:{peer}\"\nclient_url = \"http://127.0.0.1:{client}\"\ndatacenter = \"{dc}\"\n",
            dir.join(name).display(),
            cluster.opts.heartbeat_ms,
            cluster.opts.election_ms,
        ),
    )
    .unwrap();
    Joiner {
        config,
        log: dir.join(format!("{name}.log")),
        client_port: client,
        peer_port: peer,
        add_url: format!("http://127.0.0.1:{peer}?name={name}&datacenter={dc}"),
    }
}

/// Builds `firebreak` with the `failpoints` feature next to the test build:
/// intermediate artifacts are shared with it (`build.build-dir`), so only
/// the crates the feature changes are compiled, and the binary lands in
/// `<target>/failpoints/<profile>/` without replacing the one under test.
pub fn failpoints_binary() -> PathBuf {
    let bin = Path::new(BIN);
    let profile_dir = bin.parent().unwrap();
    let target = profile_dir.parent().unwrap();
    let profile = profile_dir.file_name().unwrap().to_string_lossy().into_owned();
    let out = target.join("failpoints");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let nice = Command::new("nice").arg("true").status().is_ok_and(|s| s.success());
    let mut cmd = if nice {
        let mut c = Command::new("nice");
        c.arg(env!("CARGO"));
        c
    } else {
        Command::new(env!("CARGO"))
    };
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "firebreak",
        "--features",
        "failpoints",
        "--manifest-path",
    ])
    .arg(&manifest)
    .arg("--target-dir")
    .arg(&out)
    .arg("--config")
    .arg(format!("build.build-dir={:?}", target.to_string_lossy()));
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let started = Instant::now();
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building firebreak with failpoints failed");
    eprintln!(
        "built firebreak with failpoints in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let built = out.join(&profile).join("firebreak");
    assert!(built.exists(), "{} is missing", built.display());
    built
}

/// One keep-alive: the TTL it answered (0: the lease was not found), or
/// `None` if it failed or took longer than `wait`.
pub async fn keep_alive_once(client: &mut Client, lease: i64, wait: Duration) -> Option<i64> {
    let attempt = async {
        // etcd-client turns a TTL of 0 into this error.
        let not_found = |e: &etcd_client::Error| e.to_string().contains("lease not found");
        let (mut keeper, mut stream) = match client.lease_keep_alive(lease).await {
            Ok(opened) => opened,
            Err(e) if not_found(&e) => return Some(0),
            Err(_) => return None,
        };
        keeper.keep_alive().await.ok()?;
        match stream.message().await {
            Ok(answer) => answer.map(|r| r.ttl()),
            Err(e) if not_found(&e) => Some(0),
            Err(_) => None,
        }
    };
    tokio::time::timeout(wait, attempt).await.ok().flatten()
}
