//! Firebreak's fire drill: three datacenters on one machine, one of them
//! destroyed under load, and a report that proves from the clients' own
//! history what was lost (nothing, we hope) and how long service was out.
//!
//! `firebreak drill` ([`run_drill`]) builds a lab ([`lab`]): three Linux
//! network namespaces, one per datacenter, each with its own /24 and a veth
//! into the root namespace; Firebreak members run inside them. Every path
//! between datacenters crosses a userspace WAN relay ([`relay`]) that adds
//! the round trip and can cut a datacenter off; nftables rules make sure
//! nothing bypasses it. Workload clients ([`workload`]), one OS process each,
//! run a seeded mix of put, linearizable get, compare-and-set and delete in
//! every datacenter and record a history. At the fault instant a scenario
//! ([`scenario`]) burns, isolates or freezes one datacenter; later it may come
//! back. Afterwards the drill verifies ([`verify`]): a final linearizable
//! read, a durability audit of every acknowledged write, replica agreement,
//! and the history through `firebreak-check`'s linearizability checker. It
//! measures RTO, unavailability, throughput and latency ([`measure`]) and
//! writes `report.json`, `report.html` and `history.jsonl` ([`report`]).
//!
//! `firebreak check FILE` ([`run_check`]) re-checks a saved history;
//! `firebreak drill-client` ([`run_client`]) is one workload client process.
//!
//! Without root (or with `--no-netns`) the lab runs on loopback addresses in
//! one network namespace: the same relays give latency and cuts, but nothing
//! stops a process from bypassing them, so the report labels the run weaker.
//!
//! # Correctness
//!
//! - A client records an operation's invocation (one `write(2)` of a JSON
//!   line) before it sends the request, so an operation whose client is
//!   killed is still in the history, with an unknown outcome.
//! - An outcome is `fail` only when etcd's semantics guarantee the request
//!   was not applied; anything else that is not a response is `unknown`.
//! - Everything the drill creates (namespaces, links, nftables tables,
//!   processes, temporary data) is owned by guards that remove it on drop,
//!   so also on error, panic, Ctrl-C and SIGTERM; members and clients also
//!   die with the drill (`PR_SET_PDEATHSIG`), and leftovers of drills that
//!   were killed outright are swept at the next start.

mod args;
mod check_cmd;
pub mod clock;
mod drill;
mod error;
pub mod lab;
pub mod measure;
mod progress;
pub mod report;
pub mod scenario;
pub mod schedule;
mod summary;
mod verdict;
pub mod verify;
pub mod workload;

use std::process::ExitCode;

pub use args::{CheckArgs, ClientArgs, DrillArgs, RestoreAfter, ScenarioArg};
pub use error::DrillError;

/// `firebreak drill`: runs one scenario (or all of them) and writes the
/// report(s). Exit code 0 for PASS, 1 for FAIL, 2 for UNKNOWN.
pub fn run_drill(args: DrillArgs) -> Result<ExitCode, DrillError> {
    drill::run(args)
}

/// `firebreak check FILE`: re-checks a saved `history.jsonl` and prints the
/// verdict. Exit code 0 for PASS, 1 for FAIL, 2 for UNKNOWN.
pub fn run_check(args: CheckArgs) -> Result<ExitCode, DrillError> {
    check_cmd::run(args)
}

/// `firebreak drill-client`: one workload client (started by the drill).
pub fn run_client(args: ClientArgs) -> Result<ExitCode, DrillError> {
    workload::client::run(args)
}
