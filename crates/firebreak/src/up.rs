//! `firebreak up`: a local cluster of three datacenters on this machine,
//! one `firebreak serve` process per member, so that any one can be killed.
//!
//! Ports follow etcd's local-cluster convention: clients on 2379, 22379 and
//! 32379, peers on 2380, 22380 and 32380 (plus `--port-offset`); the j-th
//! extra member of a datacenter adds 10·j.
//!
//! With `--tls`, both listeners of every member use TLS with certificates
//! of a local CA ([`crate::up_tls`]): clients need a client certificate,
//! members authenticate each other, and the URLs are `https://`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use firebreak_config::{RawConfig, RawMember, RawTls};
use tokio::process::{Child, Command};

use crate::up_tls::TlsLayout;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where each member keeps its data, config and log.
    #[arg(long, default_value = "./firebreak-data")]
    pub data_dir: PathBuf,
    /// Added to every port.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Members in each of the three datacenters.
    #[arg(long, default_value_t = 1)]
    pub nodes_per_dc: u16,
    /// TLS on every listener, with a local CA and certificates made (or
    /// reused) under <data-dir>/tls; clients need tls/ca.crt, client.crt
    /// and client.key.
    #[arg(long)]
    pub tls: bool,
}

/// One member of the local cluster.
struct LocalMember {
    name: String,
    datacenter: String,
    client_port: u16,
    peer_port: u16,
}

const DC_BASE_PORTS: [u16; 3] = [2379, 22379, 32379];

fn layout(args: &UpArgs) -> anyhow::Result<Vec<LocalMember>> {
    if !(1..=9).contains(&args.nodes_per_dc) {
        bail!("--nodes-per-dc must be between 1 and 9, not {}", args.nodes_per_dc);
    }
    let mut members = Vec::new();
    for (dc, base) in DC_BASE_PORTS.iter().enumerate() {
        for j in 0..args.nodes_per_dc {
            let client = u32::from(*base) + u32::from(args.port_offset) + 10 * u32::from(j);
            if client + 1 > u32::from(u16::MAX) {
                bail!("--port-offset {} puts ports above 65535", args.port_offset);
            }
            members.push(LocalMember {
                name: format!("dc{}-{}", dc + 1, j + 1),
                datacenter: format!("dc{}", dc + 1),
                client_port: client as u16,
                peer_port: client as u16 + 1,
            });
        }
    }
    Ok(members)
}

fn member_config(me: &LocalMember, all: &[LocalMember], data_dir: &Path, tls: Option<&TlsLayout>) -> RawConfig {
    let scheme = if tls.is_some() { "https" } else { "http" };
    RawConfig {
        name: Some(me.name.clone()),
        datacenter: Some(me.datacenter.clone()),
        data_dir: Some(data_dir.join(&me.name)),
        listen_client: Some(format!("127.0.0.1:{}", me.client_port)),
        listen_peer: Some(format!("127.0.0.1:{}", me.peer_port)),
        initial_cluster: all
            .iter()
            .map(|m| RawMember {
                name: m.name.clone(),
                peer_url: format!("{scheme}://127.0.0.1:{}", m.peer_port),
                client_url: format!("{scheme}://127.0.0.1:{}", m.client_port),
                datacenter: m.datacenter.clone(),
                ..Default::default()
            })
            .collect(),
        tls: tls.map_or_else(RawTls::default, |layout| RawTls {
            cert_file: Some(layout.member_cert(&me.name)),
            key_file: Some(layout.member_key(&me.name)),
            trusted_ca_file: Some(layout.ca()),
            client_cert_auth: Some(true),
            peer_cert_file: Some(layout.peer_cert(&me.name)),
            peer_key_file: Some(layout.peer_key(&me.name)),
            peer_trusted_ca_file: Some(layout.peer_ca()),
        }),
        ..Default::default()
    }
}

fn spawn_member(exe: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to send
    // SIGTERM to the child if this process dies, so no member outlives it.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.spawn().with_context(|| format!("cannot start {}", exe.display()))
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let members = layout(&args)?;
    firebreak_raft::durable_dir::create_dir_durably(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let exe = std::env::current_exe().context("cannot find the firebreak executable")?;
    let tls = if args.tls {
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        Some(crate::up_tls::prepare(&data_dir, &names)?)
    } else {
        None
    };

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut children = Vec::new();
        for m in &members {
            let config = member_config(m, &members, &data_dir, tls.as_ref());
            let config_path = data_dir.join(format!("{}.toml", m.name));
            std::fs::write(&config_path, toml::to_string(&config)?)
                .with_context(|| format!("cannot write {}", config_path.display()))?;
            let log = data_dir.join(format!("{}.log", m.name));
            children.push((m.name.clone(), spawn_member(&exe, &config_path, &log)?));
        }

        let endpoints: Vec<String> = members
            .iter()
            .map(|m| match tls {
                Some(_) => format!("https://127.0.0.1:{}", m.client_port),
                None => format!("127.0.0.1:{}", m.client_port),
            })
            .collect();
        // What etcdctl needs, on one line that scripts can take as it is.
        let mut flags = String::new();
        if let Some(layout) = &tls {
            write!(
                flags,
                "--cacert={} --cert={} --key={} ",
                layout.ca().display(),
                layout.client_cert().display(),
                layout.client_key().display()
            )?;
        }
        write!(flags, "--endpoints={}", endpoints.join(","))?;
        let mut banner = String::new();
        writeln!(
            banner,
            "Firebreak local cluster: {} members in dc1, dc2, dc3",
            members.len()
        )?;
        for m in &members {
            writeln!(
                banner,
                "  {:<8} {}  client 127.0.0.1:{}  peer 127.0.0.1:{}  log {}",
                m.name,
                m.datacenter,
                m.client_port,
                m.peer_port,
                data_dir.join(format!("{}.log", m.name)).display()
            )?;
        }
        if let Some(layout) = &tls {
            writeln!(
                banner,
                "TLS on every listener; certificates in {} (client certificate CN {:?})",
                layout.dir.display(),
                crate::up_tls::CLIENT_COMMON_NAME
            )?;
        }
        writeln!(banner, "etcdctl flags: {flags}")?;
        writeln!(banner, "Try:")?;
        writeln!(banner, "  etcdctl {flags} put greeting hello")?;
        writeln!(banner, "  etcdctl {flags} endpoint status -w table")?;
        writeln!(banner, "  firebreak status {flags}")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let pages: Vec<String> = members
            .iter()
            .map(|m| format!("{scheme}://127.0.0.1:{}/dashboard", m.client_port))
            .collect();
        writeln!(
            banner,
            "Dashboard on every member (also /metrics, /health): {}",
            pages.join("  ")
        )?;
        if tls.is_some() {
            writeln!(
                banner,
                "  (the members ask for a client certificate: the browser needs client.crt/client.key)"
            )?;
        }
        writeln!(banner, "Ctrl-C stops every member.")?;
        print!("{banner}");

        wait_and_stop(children).await;
        anyhow::Ok(())
    })
}

/// Waits for Ctrl-C or SIGTERM, reporting members that exit on their own,
/// then stops every member: SIGTERM, and SIGKILL after ten seconds.
async fn wait_and_stop(mut children: Vec<(String, Child)>) {
    let signal = crate::serve::shutdown_signal();
    tokio::pin!(signal);
    let mut reported = vec![false; children.len()];
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for (i, (name, child)) in children.iter_mut().enumerate() {
            if reported[i] {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("member {name} exited ({status}); the others keep serving");
                reported[i] = true;
            }
        }
        if reported.iter().all(|r| *r) {
            eprintln!("every member has exited");
            return;
        }
    }
    eprintln!("stopping every member");
    for (_, child) in &children {
        if let Some(pid) = child.id() {
            // SAFETY: sending a signal to our own child process.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
    for (name, child) in &mut children {
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("member {name} did not stop in 10 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}
