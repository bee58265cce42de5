//! The lab: three datacenters on one machine, their Firebreak members, the
//! WAN relay between them, and the workload clients.
//!
//! [`Lab::build`] lays out the addresses ([`addr`]), creates the network
//! namespaces ([`netns`], or nothing on loopback), starts the [`Relay`], and
//! writes each member's configuration; [`Lab::start_member`] and
//! [`Lab::start_client`] start processes ([`process`]); the fault methods
//! ([`Lab::burn`], [`Lab::isolate`], [`Lab::freeze`] and their undoing) are
//! what scenarios do. [`observe`] is the drill's own view of the members,
//! straight to their listeners, not through the relay.
//!
//! # Correctness
//!
//! Teardown order is the field order of [`Lab`]: processes first (a
//! namespace cannot go while processes live in it), then the relay, then
//! the namespaces and nftables table, then temporary data. Each is a drop
//! guard, so teardown also happens on error, panic and interruption.

pub use firebreak_netlab::addr;
pub mod cmd;
pub mod netns;
pub mod observe;
pub mod process;
pub mod sweep;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use firebreak_config::{RawConfig, RawMember, RawRaft};
use serde::Serialize;

use crate::clock::monotonic_ns;
use crate::error::DrillError;
use addr::{AddressPlan, Mode};
use firebreak_netlab::relay::{Relay, Route, SourceMap};
use netns::Namespaces;
use process::{Processes, Role};

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabSettings {
    /// Namespaces or loopback.
    pub mode: Mode,
    /// Members per datacenter.
    pub nodes_per_dc: usize,
    /// Round trip between datacenters.
    pub rtt: Duration,
    /// Raft heartbeat interval of every member, ms.
    pub heartbeat_ms: u64,
    /// Raft election timeout of every member, ms.
    pub election_ms: u64,
    /// Raft entries between snapshots.
    pub snapshot_entries: u64,
    /// Keep data directories under the report directory.
    pub keep_data: bool,
    /// Put every member's data directory on the power-cut layer
    /// (`firebreak-faultfs`), for power cuts.
    pub power_switch: bool,
}

/// Number of datacenters.
pub const DCS: usize = 3;

/// One member of the lab.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// `dc1-1`, …
    pub name: String,
    /// Datacenter index (0-based).
    #[serde(skip)]
    pub dc: usize,
    /// Datacenter name.
    pub datacenter: String,
    /// Etcd member id.
    pub id: u64,
    /// Its client listener, inside its namespace.
    pub listen_client: SocketAddr,
    /// Its peer listener, inside its namespace.
    pub listen_peer: SocketAddr,
    /// The advertised client URL (the relay).
    pub client_url: String,
    /// The advertised peer URL (the relay).
    pub peer_url: String,
    /// Configuration file.
    #[serde(skip)]
    pub config: PathBuf,
    /// Log file (stdout and stderr).
    #[serde(skip)]
    pub log: PathBuf,
    /// Data directory.
    #[serde(skip)]
    pub data_dir: PathBuf,
}

/// A client to start.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Unique client number.
    pub id: u64,
    /// Datacenter index.
    pub dc: usize,
    /// Workload seed.
    pub seed: u64,
    /// Keys in the keyspace.
    pub keys: u32,
    /// Start instant (monotonic ns).
    pub start_ns: u64,
    /// Stop instant (monotonic ns).
    pub stop_ns: u64,
    /// Per-operation timeout, ms.
    pub op_timeout_ms: u64,
    /// Operations per second.
    pub rate: f64,
    /// What it runs besides the registers.
    pub workload: crate::args::WorkloadArg,
}

/// What a fault did, for the timeline.
#[derive(Debug, Clone, Default)]
pub struct FaultRecord {
    /// When the fault began (monotonic ns).
    pub start_ns: u64,
    /// When every action of the fault had been applied.
    pub done_ns: u64,
    /// Processes killed or stopped.
    pub processes: Vec<String>,
}

/// The lab; see the module docs.
pub struct Lab {
    procs: Processes,
    /// Each member's power-cut layer, if the lab has one (unmounted after
    /// the processes that use it are gone).
    mounts: Vec<firebreak_faultfs::Mounted>,
    _mountpoints: Option<tempfile::TempDir>,
    relay: Relay,
    net: Option<Namespaces>,
    _data: Option<tempfile::TempDir>,
    /// The address plan.
    pub plan: AddressPlan,
    /// Every member, datacenter by datacenter.
    pub members: Vec<Member>,
    /// The `firebreak` executable used for members and clients.
    pub exe: PathBuf,
    /// Environment variables given to every member started from now on
    /// (tests set `FAILPOINTS` here), besides the drill's own.
    pub member_env: Vec<(String, String)>,
    /// Where member and client logs go.
    pub logs_dir: PathBuf,
    /// Where the clients' raw histories go.
    pub clients_dir: PathBuf,
    /// How the lab was built.
    pub settings: LabSettings,
}

fn used_ipv4_prefixes() -> String {
    let mut text = cmd::run("ip", &["-o", "-4", "addr", "show"]).unwrap_or_default();
    text.push_str(&cmd::run("ip", &["-4", "route", "show", "table", "all"]).unwrap_or_default());
    text
}

/// Why the power-cut layer (FUSE) cannot be mounted here, if it cannot:
/// tried once, on temporary directories.
pub fn power_switch_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("mounting the FUSE power-cut layer needs root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse does not exist (no FUSE in this kernel or container)".into());
    }
    let probe = |dir: &Path| -> Result<(), String> {
        let (backing, point) = (dir.join("backing"), dir.join("point"));
        for d in [&backing, &point] {
            std::fs::create_dir(d).map_err(|e| e.to_string())?;
        }
        let mounted = firebreak_faultfs::FaultFs::mount(&backing, &point).map_err(|e| e.to_string())?;
        mounted.unmount().map_err(|e| e.to_string())
    };
    let dir = match tempfile::Builder::new()
        .prefix(&format!("fbdrill{}-probe-", std::process::id()))
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return Some(format!("cannot create a temporary directory: {e}")),
    };
    probe(dir.path())
        .err()
        .map(|e| format!("cannot mount the FUSE power-cut layer: {e}"))
}

/// Picks the second octet of the lab's addresses: in namespace mode a
/// `10.B/16` nobody on this machine uses; on loopback a `127.B/16` whose
/// ports are free.
fn choose_prefix(mode: Mode, nodes_per_dc: usize) -> Result<[u8; 2], DrillError> {
    let pid = std::process::id();
    match mode {
        Mode::Netns => {
            let used = used_ipv4_prefixes();
            for i in 0..50u32 {
                let b = 200 + ((pid + i) % 50) as u8;
                if !used.contains(&format!("10.{b}.")) {
                    return Ok([10, b]);
                }
            }
            Err(DrillError::Environment(
                "every 10.200.0.0/16 to 10.249.0.0/16 is in use on this machine".into(),
            ))
        }
        Mode::Loopback => {
            'candidates: for i in 0..100u32 {
                let b = 100 + ((pid + i) % 100) as u8;
                let plan = AddressPlan {
                    mode,
                    prefix: [127, b],
                    dcs: DCS,
                    nodes_per_dc,
                };
                for dc in 0..DCS {
                    for j in 0..nodes_per_dc {
                        for addr in [
                            plan.relay_client(dc, j),
                            plan.relay_peer(dc, j),
                            plan.member_client(dc, j),
                            plan.member_peer(dc, j),
                        ] {
                            if std::net::TcpListener::bind(addr).is_err() {
                                continue 'candidates;
                            }
                        }
                    }
                }
                return Ok([127, b]);
            }
            Err(DrillError::Environment(
                "no free 127.B.0.0/16 for the loopback lab".into(),
            ))
        }
    }
}

impl Lab {
    /// Builds the network, the relay and the member configurations under
    /// `out` (configs in `out/configs`, logs in `out/logs`).
    pub fn build(settings: LabSettings, out: &Path) -> Result<Lab, DrillError> {
        let procs = Processes::default();
        let pid = std::process::id();
        let plan = AddressPlan {
            mode: settings.mode,
            prefix: choose_prefix(settings.mode, settings.nodes_per_dc)?,
            dcs: DCS,
            nodes_per_dc: settings.nodes_per_dc,
        };
        let exe = std::env::current_exe()
            .map_err(DrillError::io("cannot find the firebreak executable", "/proc/self/exe"))?;
        let configs_dir = out.join("configs");
        let logs_dir = out.join("logs");
        let clients_dir = out.join("clients");
        for dir in [&configs_dir, &logs_dir, &clients_dir] {
            std::fs::create_dir_all(dir).map_err(DrillError::io("cannot create a report directory", dir))?;
        }
        let (data, data_root) = if settings.keep_data {
            let root = out.join("data");
            std::fs::create_dir_all(&root).map_err(DrillError::io("cannot create the data directory", &root))?;
            (None, root)
        } else {
            let dir = tempfile::Builder::new()
                .prefix(&format!("fbdrill{pid}-"))
                .tempdir()
                .map_err(DrillError::io("cannot create the data directory", std::env::temp_dir()))?;
            let root = dir.path().to_owned();
            (Some(dir), root)
        };

        // With the power-cut layer, a member's data directory is a mount
        // (in a temporary directory the sweep can attribute to this pid)
        // of its real directory under the data root, which then holds
        // exactly what would survive a power cut.
        let mountpoints = if settings.power_switch {
            Some(
                tempfile::Builder::new()
                    .prefix(&format!("fbdrill{pid}-mnt-"))
                    .tempdir()
                    .map_err(DrillError::io("cannot create the mount points", std::env::temp_dir()))?,
            )
        } else {
            None
        };
        let mut mounts = Vec::new();
        let mut members = Vec::new();
        for dc in 0..DCS {
            for j in 0..settings.nodes_per_dc {
                let name = format!("dc{}-{}", dc + 1, j + 1);
                let data_dir = match &mountpoints {
                    Some(points) => {
                        let backing = data_root.join(&name);
                        let point = points.path().join(&name);
                        for dir in [&backing, &point] {
                            std::fs::create_dir_all(dir)
                                .map_err(DrillError::io("cannot create a data directory", dir))?;
                        }
                        let mounted = firebreak_faultfs::FaultFs::mount(&backing, &point).map_err(|e| {
                            DrillError::Environment(format!(
                                "cannot mount the power-cut layer (FUSE) on {}: {e}",
                                point.display()
                            ))
                        })?;
                        mounts.push(mounted);
                        point
                    }
                    None => data_root.join(&name),
                };
                members.push(Member {
                    id: firebreak_config::member_id(&name),
                    datacenter: AddressPlan::dc_name(dc),
                    dc,
                    listen_client: plan.member_client(dc, j),
                    listen_peer: plan.member_peer(dc, j),
                    client_url: format!("http://{}", plan.relay_client(dc, j)),
                    peer_url: format!("http://{}", plan.relay_peer(dc, j)),
                    config: configs_dir.join(format!("{name}.toml")),
                    log: logs_dir.join(format!("{name}.log")),
                    data_dir,
                    name,
                });
            }
        }
        for member in &members {
            write_config(member, &members, &settings)?;
        }

        let net = match settings.mode {
            Mode::Netns => Some(Namespaces::create(pid, plan)?),
            Mode::Loopback => None,
        };
        let mut routes = Vec::new();
        for dc in 0..DCS {
            for j in 0..settings.nodes_per_dc {
                routes.push(Route {
                    listen: plan.relay_client(dc, j),
                    upstream: plan.member_client(dc, j),
                    dc,
                });
                routes.push(Route {
                    listen: plan.relay_peer(dc, j),
                    upstream: plan.member_peer(dc, j),
                    dc,
                });
            }
        }
        let sources = match settings.mode {
            Mode::Netns => SourceMap::Addresses(plan),
            Mode::Loopback => SourceMap::Processes(procs.registry()),
        };
        let relay = Relay::start(routes, settings.rtt, sources)?;
        Ok(Lab {
            procs,
            mounts,
            _mountpoints: mountpoints,
            relay,
            net,
            _data: data,
            plan,
            members,
            exe,
            member_env: Vec::new(),
            logs_dir,
            clients_dir,
            settings,
        })
    }

    /// The namespace of `dc`, if any.
    pub fn namespace(&self, dc: usize) -> Option<String> {
        self.net.as_ref().map(|n| n.name(dc))
    }

    /// The nftables table, if any.
    pub fn nft_table(&self) -> Option<String> {
        self.net.as_ref().and_then(|n| n.table().map(str::to_owned))
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    fn log_file(path: &Path) -> Result<std::fs::File, DrillError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(DrillError::io("cannot open a log", path))
    }

    /// Starts member `i` (again, after a fire: same configuration and data).
    pub fn start_member(&mut self, i: usize) -> Result<(), DrillError> {
        let m = &self.members[i];
        let mut log = Self::log_file(&m.log)?;
        let _ = std::io::Write::write_all(
            &mut log,
            format!(
                "==== firebreak drill: starting {} (monotonic {} ns)\n",
                m.name,
                monotonic_ns()
            )
            .as_bytes(),
        );
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .arg("--config")
            .arg(&m.config)
            .env(
                "FIREBREAK_LOG",
                std::env::var("FIREBREAK_MEMBER_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .envs(self.member_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(DrillError::io("cannot open a log", &m.log))?)
            .stderr(log);
        let netns = self.net.as_ref().and_then(|n| n.handle(m.dc));
        self.procs.spawn(&m.name, m.dc, Role::Member, cmd, netns)?;
        Ok(())
    }

    /// Client URLs for a client in `dc`: its own datacenter's members first,
    /// then the next datacenters'.
    pub fn client_endpoints(&self, dc: usize) -> Vec<String> {
        (0..DCS)
            .flat_map(|k| {
                let d = (dc + k) % DCS;
                self.members
                    .iter()
                    .filter(move |m| m.dc == d)
                    .map(|m| m.client_url.clone())
            })
            .collect()
    }

    /// The raw history file of client `id`.
    pub fn client_history(&self, id: u64) -> PathBuf {
        self.clients_dir.join(format!("c{id}.jsonl"))
    }

    /// Starts a workload client.
    pub fn start_client(&mut self, spec: &ClientSpec) -> Result<(), DrillError> {
        let name = format!("client-{}", spec.id);
        let log_path = self.logs_dir.join(format!("{name}.log"));
        let log = Self::log_file(&log_path)?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("drill-client")
            .arg("--id")
            .arg(spec.id.to_string())
            .arg("--dc")
            .arg(AddressPlan::dc_name(spec.dc))
            .arg("--endpoints")
            .arg(self.client_endpoints(spec.dc).join(","))
            .arg("--seed")
            .arg(spec.seed.to_string())
            .arg("--keys")
            .arg(spec.keys.to_string())
            .arg("--start-ns")
            .arg(spec.start_ns.to_string())
            .arg("--stop-ns")
            .arg(spec.stop_ns.to_string())
            .arg("--history")
            .arg(self.client_history(spec.id))
            .arg("--op-timeout-ms")
            .arg(spec.op_timeout_ms.to_string())
            .arg("--rate")
            .arg(spec.rate.to_string())
            .arg("--workload")
            .arg(
                clap::ValueEnum::to_possible_value(&spec.workload)
                    .expect("every workload has a name")
                    .get_name(),
            )
            .env("FIREBREAK_LOG", "info,h2=warn,hyper=warn,tower=warn,tonic=warn")
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(DrillError::io("cannot open a log", &log_path))?,
            )
            .stderr(log);
        let netns = self.net.as_ref().and_then(|n| n.handle(spec.dc));
        self.procs.spawn(&name, spec.dc, Role::Client, cmd, netns)?;
        Ok(())
    }

    /// Whether member `i` runs (or is stopped).
    pub fn member_alive(&mut self, i: usize) -> bool {
        let name = self.members[i].name.clone();
        self.procs.is_alive(&name)
    }

    /// Processes that exited on their own since the last look.
    pub fn reap(&mut self) -> Vec<(String, Role, std::process::ExitStatus)> {
        self.procs.reap()
    }

    /// Whether clients still run.
    pub fn clients_running(&mut self) -> bool {
        self.procs.clients_running()
    }

    /// Kills the clients that still run.
    pub fn kill_clients(&mut self) -> Vec<String> {
        self.procs.kill_clients()
    }

    fn cut_network(&self, dc: usize) -> Result<(), DrillError> {
        self.relay.cut(dc);
        if let Some(net) = &self.net {
            net.cut(dc)?;
        }
        Ok(())
    }

    /// A fire: SIGKILL every process of `dc` at once and cut its network.
    pub fn burn(&mut self, dc: usize) -> Result<FaultRecord, DrillError> {
        let start_ns = monotonic_ns();
        self.relay.cut(dc);
        let processes = self.procs.kill_dc(dc);
        if let Some(net) = &self.net {
            net.cut(dc)?;
        }
        Ok(FaultRecord {
            start_ns,
            done_ns: monotonic_ns(),
            processes,
        })
    }

    /// Whether the members' data directories sit on the power-cut layer.
    pub fn has_power_switch(&self) -> bool {
        !self.mounts.is_empty()
    }

    /// A fire in `dc` whose members also lose every write they had not
    /// fsynced: SIGKILL every process of `dc` and cut its network, then
    /// drop what its members' data directories had not made durable.
    pub fn power_cut(&mut self, dc: usize) -> Result<FaultRecord, DrillError> {
        if self.mounts.is_empty() {
            return Err(DrillError::Internal(
                "a power cut in a lab without the power-cut layer".into(),
            ));
        }
        let mut record = self.burn(dc)?;
        for i in self.members_of(dc) {
            self.mounts[i]
                .power_cut()
                .map_err(|e| DrillError::Internal(format!("the power cut of {} failed: {e}", self.members[i].name)))?;
        }
        record.done_ns = monotonic_ns();
        Ok(record)
    }

    /// Cut `dc`'s network both ways; processes keep running.
    pub fn isolate(&mut self, dc: usize) -> Result<FaultRecord, DrillError> {
        let start_ns = monotonic_ns();
        self.cut_network(dc)?;
        Ok(FaultRecord {
            start_ns,
            done_ns: monotonic_ns(),
            processes: Vec::new(),
        })
    }

    /// SIGKILL member `i` and start it again at once, on the same data.
    pub fn restart_member(&mut self, i: usize) -> Result<FaultRecord, DrillError> {
        let start_ns = monotonic_ns();
        let name = self.members[i].name.clone();
        let killed = self.procs.kill(&name);
        self.start_member(i)?;
        Ok(FaultRecord {
            start_ns,
            done_ns: monotonic_ns(),
            processes: if killed { vec![name] } else { Vec::new() },
        })
    }

    /// SIGSTOP every process of `dc`.
    pub fn freeze(&mut self, dc: usize) -> FaultRecord {
        let start_ns = monotonic_ns();
        let processes = self.procs.stop_dc(dc);
        FaultRecord {
            start_ns,
            done_ns: monotonic_ns(),
            processes,
        }
    }

    /// Undoes a cut of `dc`.
    pub fn heal(&mut self, dc: usize) -> Result<(), DrillError> {
        if let Some(net) = &self.net {
            net.heal(dc)?;
        }
        self.relay.heal(dc);
        Ok(())
    }

    /// SIGCONT every process of `dc`.
    pub fn thaw(&mut self, dc: usize) {
        self.procs.cont_dc(dc);
    }

    /// Stops every process (SIGTERM, then SIGKILL after `grace`).
    pub fn stop_all(&mut self, grace: Duration) {
        self.procs.terminate_all(grace);
    }

    /// Indices of the members of `dc`.
    pub fn members_of(&self, dc: usize) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| self.members[i].dc == dc).collect()
    }
}

/// Writes member `me`'s configuration file.
fn write_config(me: &Member, all: &[Member], settings: &LabSettings) -> Result<(), DrillError> {
    let config = RawConfig {
        name: Some(me.name.clone()),
        datacenter: Some(me.datacenter.clone()),
        data_dir: Some(me.data_dir.clone()),
        listen_client: Some(me.listen_client.to_string()),
        listen_peer: Some(me.listen_peer.to_string()),
        initial_cluster: all
            .iter()
            .map(|m| RawMember {
                name: m.name.clone(),
                peer_url: m.peer_url.clone(),
                client_url: m.client_url.clone(),
                datacenter: m.datacenter.clone(),
                ..Default::default()
            })
            .collect(),
        raft: RawRaft {
            heartbeat_interval_ms: Some(settings.heartbeat_ms),
            election_timeout_ms: Some(settings.election_ms),
            snapshot_entries: Some(settings.snapshot_entries),
        },
        ..Default::default()
    };
    let text = toml::to_string(&config).map_err(|e| DrillError::Internal(format!("cannot encode a config: {e}")))?;
    std::fs::write(&me.config, text).map_err(DrillError::io("cannot write a member config", &me.config))
}
