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
    #[command(flatten)]
    pub tls: crate::tls_args::TlsArgs,
    /// Auth tokens: `simple` (default) or
    /// `jwt,sign-method=RS256,pub-key=FILE,priv-key=FILE[,ttl=5m]`, as etcd.
    #[arg(long, env = "FIREBREAK_AUTH_TOKEN")]
    pub auth_token: Option<String>,
    /// Seconds a simple token lives without being used (default 300).
    #[arg(long, env = "FIREBREAK_AUTH_TOKEN_TTL")]
    pub auth_token_ttl: Option<u64>,
    /// bcrypt cost of password hashes, 4 to 31 (default 10).
    #[arg(long, env = "FIREBREAK_BCRYPT_COST")]
    pub bcrypt_cost: Option<u32>,
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
        self.tls.apply(&mut raw.tls);
        set(&mut raw.auth.token, &self.auth_token);
        raw.auth.token_ttl = self.auth_token_ttl.or(raw.auth.token_ttl);
        raw.auth.bcrypt_cost = self.bcrypt_cost.or(raw.auth.bcrypt_cost);
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
        // The client port and certificates first: a member that cannot
        // serve clients stops before it touches its data directory.
        let listener = tokio::net::TcpListener::bind(config.listen_client)
            .await
            .with_context(|| format!("cannot listen for clients on {}", config.listen_client))?;
        let listener = firebreak_grpc::ClientListener::new(listener, config.tls.client.as_ref())
            .context("cannot set up TLS for clients")?;
        let node = firebreak_raft::Node::start(&config).await?;
        tracing::info!(
            name = %config.name,
            id = format_args!("{:x}", config.id),
            datacenter = %config.domains.datacenter,
            client = %config.listen_client,
            peer = %config.listen_peer,
            client_tls = config.tls.client.is_some(),
            peer_tls = config.tls.peer.is_some(),
            data_dir = %config.data_dir.display(),
            "serving"
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(firebreak_grpc::serve(
            node.clone(),
            listener,
            firebreak_ops::router(node.clone()),
            async {
                let _ = stopped.await;
            },
        ));
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
