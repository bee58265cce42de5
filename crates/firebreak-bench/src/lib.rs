//! `firebreak bench`: a load generator for any etcd-v3 endpoint, Firebreak or
//! etcd itself, so that both are measured by the same client.
//!
//! A run opens `--conns` gRPC connections, spreads `--clients` concurrent
//! request loops over them, runs one workload (`--op`) for `--duration` (or
//! `--total` requests) and reports throughput, latency percentiles from an
//! HDR histogram, and every error by kind.
//!
//! - [`args`]: the command line ([`BenchArgs`]).
//! - [`conn`]: one connection, either a thin tonic client (the default) or
//!   the `etcd-client` crate, for comparison.
//! - [`workload`]: what one request of each `--op` does.
//! - [`runner`]: closed loop (each client sends its next request when the
//!   last one is answered) or open loop (`--rate`: requests are due at fixed
//!   times and latency counts from the time a request was *due*, so a slow
//!   server cannot hide its queueing: no coordinated omission).
//! - [`report`]: the figures, as text for people or JSON for scripts.
//! - [`fsync`]: `--fsync-probe`, the disk's fsync latency, which bounds
//!   every durable write.
//! - [`wan`]: `--wan-relay`, the drill's WAN link emulator run on its own,
//!   so that `bench/compare-etcd.sh` can put the same round trip between the
//!   members of either store.
//!
//! Speed goals are not asserted anywhere: this crate only measures.

pub mod args;
pub mod conn;
pub mod error;
pub mod fsync;
pub mod report;
pub mod runner;
pub mod wan;
pub mod workload;

use std::io::Write;
use std::process::ExitCode;

pub use args::{BenchArgs, ClientKind, KeyOrder, Op, Target};
pub use error::BenchError;
pub use report::Report;

/// Runs `firebreak bench` and prints its report on stdout.
///
/// Exits with failure when no request succeeded; errors of single requests
/// are part of the report, not a failure of the run.
pub fn run_bench(args: BenchArgs) -> Result<ExitCode, BenchError> {
    args.check()?;
    if args.fsync_probe {
        let report = fsync::probe(&args.fsync_dir, args.fsync_count, args.fsync_bytes)?;
        print_out(&if args.json {
            serde_json::to_string(&report)? + "\n"
        } else {
            report.to_text()
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.wan_relay {
        let stats = wan::run_relay(&args)?;
        print_out(&(serde_json::to_string(&stats)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let threads = args.threads.unwrap_or(2).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let report = runtime.block_on(runner::run(&args))?;
    print_out(&if args.json {
        serde_json::to_string(&report)? + "\n"
    } else {
        report.to_text()
    })?;
    Ok(if report.ops > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_out(text: &str) -> Result<(), BenchError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(BenchError::Output)?;
    out.flush().map_err(BenchError::Output)
}
