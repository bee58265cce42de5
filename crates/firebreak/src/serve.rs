//! `firebreak serve`: one member, from a TOML file with flag and
//! environment overrides.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use firebreak_config::RawConfig;

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "FIREBREAK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Member name; must appear in the initial cluster.
    #[arg(long, env = "FIREBREAK_NAME")]
    pub name: Option<String>,
    /// Datacenter of this member.
    #[arg(long, env = "FIREBREAK_DATACENTER")]
    pub datacenter: Option<String>,
    /// Room or power compartment within the datacenter.
    #[arg(long, env = "FIREBREAK_ROOM")]
    pub room: Option<String>,
    #[arg(long, env = "FIREBREAK_RACK")]
    pub rack: Option<String>,
    #[arg(long, env = "FIREBREAK_HOST")]
    pub host: Option<String>,
    /// Directory for the Raft log and snapshots.
    #[arg(long, env = "FIREBREAK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for etcd-API clients, e.g. 127.0.0.1:2379.
    #[arg(long, env = "FIREBREAK_LISTEN_CLIENT")]
    pub listen_client: Option<String>,
    /// Address for replication traffic, apart from clients, e.g. 127.0.0.1:2380.
    #[arg(long, env = "FIREBREAK_LISTEN_PEER")]
    pub listen_peer: Option<String>,
    /// Start even if one failure domain could hold a quorum (warns).
    #[arg(long, env = "FIREBREAK_ALLOW_UNSAFE_TOPOLOGY")]
    pub allow_unsafe_topology: bool,
    #[arg(long, env = "FIREBREAK_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    #[arg(long, env = "FIREBREAK_ELECTION_TIMEOUT_MS")]
    pub election_timeout_ms: Option<u64>,
    #[arg(long, env = "FIREBREAK_SNAPSHOT_ENTRIES")]
    pub snapshot_entries: Option<u64>,
}

impl ServeArgs {
    /// The file's configuration with every given flag applied over it.
    fn raw_config(&self) -> anyhow::Result<RawConfig> {
        let mut raw = match &self.config {
            Some(path) => RawConfig::from_file(path)?,
            None => RawConfig::default(),
        };
        let set = |field: &mut Option<String>, flag: &Option<String>| {
            if flag.is_some() {
                field.clone_from(flag);
            }
        };
        set(&mut raw.name, &self.name);
        set(&mut raw.datacenter, &self.datacenter);
        set(&mut raw.room, &self.room);
        set(&mut raw.rack, &self.rack);
        set(&mut raw.host, &self.host);
        set(&mut raw.listen_client, &self.listen_client);
        set(&mut raw.listen_peer, &self.listen_peer);
        if self.data_dir.is_some() {
            raw.data_dir.clone_from(&self.data_dir);
        }
        if self.allow_unsafe_topology {
            raw.allow_unsafe_topology = Some(true);
        }
        raw.raft.heartbeat_interval_ms = self.heartbeat_interval_ms.or(raw.raft.heartbeat_interval_ms);
        raw.raft.election_timeout_ms = self.election_timeout_ms.or(raw.raft.election_timeout_ms);
        raw.raft.snapshot_entries = self.snapshot_entries.or(raw.raft.snapshot_entries);
        Ok(raw)
    }
}

/// How long open client streams may delay a clean stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.raw_config()?.validate()?;
    if let Some(warning) = &config.topology_warning {
        tracing::warn!(%warning, "starting with an unsafe topology because it was explicitly allowed");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = firebreak_raft::Node::start(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.listen_client)
            .await
            .with_context(|| format!("cannot listen for clients on {}", config.listen_client))?;
        tracing::info!(
            name = %config.name,
            id = format_args!("{:x}", config.id),
            datacenter = %config.domains.datacenter,
            client = %config.listen_client,
            peer = %config.listen_peer,
            data_dir = %config.data_dir.display(),
            "serving"
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(firebreak_grpc::serve(node.clone(), listener, async {
            let _ = stopped.await;
        }));
        tokio::select! {
            _ = shutdown_signal() => {}
            ended = &mut server => {
                node.shutdown().await;
                ended??;
                anyhow::bail!("the client listener stopped unexpectedly");
            }
        }
        tracing::info!("shutting down");
        let _ = stop.send(());
        // Streams that clients keep open (watches, keep-alives, campaigns)
        // get a moment to end; then the member stops regardless.
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => tracing::warn!(error = %e, "the client listener task failed"),
            Err(_) => tracing::warn!("client streams still open after {SHUTDOWN_GRACE:?}; closing them"),
        }
        node.shutdown().await;
        anyhow::Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
