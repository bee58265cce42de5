//! `firebreak`: one binary for every role.
//!
//! - `firebreak serve --config FILE` runs one member.
//! - `firebreak up` runs a local three-datacenter cluster, one process per
//!   member, in the foreground.

mod serve;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "firebreak",
    version,
    about = "An etcd-compatible store replicated by Raft across three datacenters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one member of a cluster.
    Serve(Box<serve::ServeArgs>),
    /// Run a local cluster of three datacenters (dc1, dc2, dc3), one process per member.
    Up(up::UpArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIREBREAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Up(args) => up::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firebreak: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
