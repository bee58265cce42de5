//! `firebreak`: one binary for every role.
//!
//! - `firebreak serve --config FILE` runs one member.
//! - `firebreak up` runs a local three-datacenter cluster, one process per
//!   member, in the foreground.
//! - `firebreak drill` burns a datacenter under load and reports;
//!   `firebreak check` re-checks a saved history.
//! - `firebreak status` shows the cluster as a member sees it: roles,
//!   lag, health and whether losing a datacenter now would lose data.
//! - `firebreak bench` loads any etcd-API endpoint.

mod log_limit;
mod restore;
mod serve;
mod status;
mod tls_args;
mod up;
mod up_tls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "firebreak",
    version,
    about = "An etcd-compatible store replicated by Raft across three datacenters"
)]
struct Cli {
    /// Log format: `text` for people, `json` for one JSON object a line.
    #[arg(long, global = true, value_enum, env = "FIREBREAK_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one member of a cluster.
    Serve(Box<serve::ServeArgs>),
    /// Run a local cluster of three datacenters (dc1, dc2, dc3), one process per member.
    Up(up::UpArgs),
    /// Prepare a new member's data directory from a snapshot (etcdctl snapshot save).
    Restore(restore::RestoreArgs),
    /// Burn a datacenter under load and prove, from the clients' history, that nothing was lost.
    Drill(Box<firebreak_drill::DrillArgs>),
    /// Re-check a saved client history (history.jsonl) and print the verdict.
    Check(firebreak_drill::CheckArgs),
    /// Show the cluster as a member sees it: roles, lag, health, and what losing a datacenter now would cost.
    Status(status::StatusArgs),
    /// Load an etcd-API endpoint (Firebreak or etcd) and report throughput and latency.
    Bench(Box<firebreak_bench::BenchArgs>),
    /// One workload client of a drill (started by `firebreak drill`).
    #[command(hide = true)]
    DrillClient(Box<firebreak_drill::ClientArgs>),
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::filter::FilterExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIREBREAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        // One object a line: time, level, message and fields at the top
        // level (as etcd's zap logger writes them), and the span context.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // openraft repeats a warning per failed heartbeat while a peer is down.
    // The level filter and the repeat limit are one per-layer filter: a
    // per-layer filter that enables a callsite would enable it for the
    // whole subscriber, past a global level filter (every debug span of
    // openraft, in a debug build).
    let repeats = log_limit::RepeatLimit::new("openraft", std::time::Duration::from_secs(10));
    tracing_subscriber::registry()
        .with(lines.with_filter(filter.and(repeats)))
        .init();
}

/// The exit code of a command that chooses its own, or a failure.
fn exit<E: std::error::Error>(result: Result<std::process::ExitCode, E>) -> std::process::ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("firebreak: {e}");
        std::process::ExitCode::FAILURE
    })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    if cli.log_format == LogFormat::Json {
        // The members that `up` and `drill` start inherit the format.
        // Set before any other thread starts.
        std::env::set_var("FIREBREAK_LOG_FORMAT", "json");
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Up(args) => up::run(args),
        Command::Restore(args) => restore::run(args),
        Command::Status(args) => status::run(args),
        Command::Drill(args) => return exit(firebreak_drill::run_drill(*args)),
        Command::Check(args) => return exit(firebreak_drill::run_check(args)),
        Command::Bench(args) => return exit(firebreak_bench::run_bench(*args)),
        Command::DrillClient(args) => return exit(firebreak_drill::run_client(*args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firebreak: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
