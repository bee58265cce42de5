//! The command lines of `firebreak drill`, `firebreak check` and the hidden
//! `firebreak drill-client`. Flag names are a contract (issue 3); see
//! `docs/drill.md`.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, ValueEnum};

/// The scenario to run (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// SIGKILL every member and client of the datacenter at once and cut its network.
    Fire,
    /// Cut the datacenter's network both ways; its processes keep running.
    Isolate,
    /// A fire in whichever datacenter holds the Raft leader at the fault.
    LeaderFire,
    /// SIGSTOP every process of the datacenter; SIGCONT on restore.
    Pause,
    /// SIGKILL a member and start it again at once, again and again, the
    /// leader most often, at moments the seed chooses.
    Restart,
    /// A fire whose members also lose every write they had not fsynced,
    /// files and directory entries alike (a FUSE layer under each member's
    /// data directory); they restart on what survived.
    PowerLoss,
    /// Cut off whichever datacenter holds the leader, while its own
    /// clients keep talking to it.
    LeaderIsolate,
    /// A seeded random sequence of the faults above, several overlapping,
    /// over the whole load.
    Chaos,
    /// Each of the above in turn: one report each, and a summary.
    All,
}

/// `--restore-after`: seconds after the fault, or `never`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestoreAfter {
    /// Restore this many seconds after the fault.
    Seconds(f64),
    /// Leave the datacenter down until the end of the load.
    Never,
}

impl FromStr for RestoreAfter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("never") {
            return Ok(RestoreAfter::Never);
        }
        let secs: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is neither a number of seconds nor `never`"))?;
        if !secs.is_finite() || secs <= 0.0 {
            return Err(format!("{s} must be a positive number of seconds (or `never`)"));
        }
        Ok(RestoreAfter::Seconds(secs))
    }
}

/// Arguments of `firebreak drill`.
#[derive(Args, Debug, Clone)]
pub struct DrillArgs {
    /// What happens to the datacenter at the fault.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Fire)]
    pub scenario: ScenarioArg,
    /// The datacenter to fault (dc1, dc2, dc3). Default: the one holding the
    /// Raft leader at the fault.
    #[arg(long, value_name = "NAME")]
    pub dc: Option<String>,
    /// Seconds of client load (the fault happens during it).
    #[arg(long, value_name = "SECONDS", default_value_t = 45.0)]
    pub duration: f64,
    /// Seconds after the load starts when the fault strikes.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    pub fault_at: f64,
    /// Seconds after the fault when the datacenter comes back (same data
    /// directories), or `never`.
    #[arg(long, value_name = "SECONDS", default_value = "15")]
    pub restore_after: RestoreAfter,
    /// Workload clients in each datacenter (one OS process each).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub clients: u32,
    /// Firebreak members in each of the three datacenters.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nodes_per_dc: u32,
    /// Round trip added between datacenters by the WAN relay, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 4.0)]
    pub rtt_ms: f64,
    /// Seed of the workload (each client's operation sequence). Default: random.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Report directory. Default: a new directory under ./drills/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keys in the workload's keyspace.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub keys: u32,
    /// Per-operation client timeout; a timed-out operation has an unknown outcome.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub op_timeout_ms: u64,
    /// Operations per second per client (0: as fast as one request in flight allows).
    #[arg(long, value_name = "N", default_value_t = 25.0)]
    pub rate: f64,
    /// Process-only mode on loopback, without network namespaces or root
    /// (weaker: processes share addresses and could bypass the relay).
    #[arg(long)]
    pub no_netns: bool,
    /// Keep the members' data directories in the report directory.
    #[arg(long)]
    pub keep_data: bool,
    /// Wall-clock budget of the linearizability check, in seconds; a search
    /// that runs out yields UNKNOWN, never PASS.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub check_budget: u64,
    /// Recovery bound: the drill FAILs if a client in a surviving datacenter
    /// needs longer than this to complete a write and a linearizable read
    /// after the fault.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub max_rto_ms: u64,
    /// Raft entries between snapshots on each member.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub snapshot_entries: u64,
    /// The members' election timeout (heartbeats stay at Firebreak's
    /// default). Default: Firebreak's default.
    #[arg(long, value_name = "MS", default_value_t = firebreak_config::DEFAULT_ELECTION_TIMEOUT_MS)]
    pub election_timeout_ms: u64,
    /// What the clients run besides the register workload (which every
    /// client runs): `mixed` spreads bank, ranges, locks and watches over
    /// the clients so that every datacenter runs locks and two others;
    /// a name runs that one on every client; `registers` runs nothing else.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Mixed)]
    pub workload: WorkloadArg,
    /// Run the drill (each scenario asked for) N times, with seeds `--seed`,
    /// `--seed`+1, ..., and write one summary table of all the runs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub runs: u32,
}

/// Arguments of `firebreak check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// A saved `history.jsonl` (from a drill's report directory).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Wall-clock budget of the linearizability search, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub budget: u64,
    /// Print the checker's full report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of the hidden `firebreak drill-client`.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Client number, unique in the drill (1-based).
    #[arg(long)]
    pub id: u64,
    /// The datacenter the client runs in.
    #[arg(long)]
    pub dc: String,
    /// Client URLs to use, comma-separated, in order of preference (its own
    /// datacenter first).
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// Workload seed (the client mixes in its id).
    #[arg(long)]
    pub seed: u64,
    /// Keys in the keyspace.
    #[arg(long)]
    pub keys: u32,
    /// Prefix of every workload key.
    #[arg(long, default_value = "drill/")]
    pub key_prefix: String,
    /// CLOCK_MONOTONIC nanoseconds at which to start.
    #[arg(long)]
    pub start_ns: u64,
    /// CLOCK_MONOTONIC nanoseconds after which no operation is invoked.
    #[arg(long)]
    pub stop_ns: u64,
    /// Where to append the client's history (JSON lines).
    #[arg(long)]
    pub history: PathBuf,
    /// Per-operation timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub op_timeout_ms: u64,
    /// Operations per second (0: unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// What the client runs besides the register loop, which it always
    /// runs: nothing (`registers`), the workload named, or one chosen by
    /// `--id` (`mixed`). Other workloads record next to `--history`
    /// (`c7.jsonl` → `c7.bank.jsonl`, …).
    #[arg(long, value_enum, default_value_t = WorkloadArg::Registers)]
    pub workload: WorkloadArg,
}

/// The workload of a drill client (`--workload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// Single-key registers: put, linearizable get, compare-and-set, delete
    /// on `<prefix>kNN` (the history checked for linearizability and lost
    /// writes).
    Registers,
    /// Transfers between accounts in multi-key Txns, and reads of every
    /// account at one revision; the total must never change.
    Bank,
    /// Writes, and Ranges of a prefix at the current or a past revision,
    /// checked against the store's revision history.
    Ranges,
    /// Leases kept alive and v3lock locks held with them; holders must
    /// exclude each other.
    Locks,
    /// A watch on the prefix across reconnects; every change exactly once,
    /// in order.
    Watches,
    /// The register loop plus, concurrently, one of bank, ranges, locks,
    /// watches chosen by `--id` modulo 4.
    Mixed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_after_parses_seconds_and_never() {
        assert_eq!("12".parse::<RestoreAfter>(), Ok(RestoreAfter::Seconds(12.0)));
        assert_eq!("2.5".parse::<RestoreAfter>(), Ok(RestoreAfter::Seconds(2.5)));
        assert_eq!("never".parse::<RestoreAfter>(), Ok(RestoreAfter::Never));
        assert!("0".parse::<RestoreAfter>().is_err());
        assert!("soon".parse::<RestoreAfter>().is_err());
    }
}
