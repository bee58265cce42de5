//! The drill's report: [`Report`] is `report.json` (its schema is
//! documented field by field here and in `docs/drill.md`), [`html`] renders
//! `report.html` from it.
//!
//! # Correctness
//!
//! - `verdict` is `FAIL` if any check failed, else `UNKNOWN` if any check
//!   could not decide (a checker budget ran out, evidence was missing), else
//!   `PASS`. A PASS therefore means every check ran to completion and held.
//! - `history_verdict` is the part of the verdict that `firebreak check`
//!   recomputes from `history.jsonl` alone (linearizability, revision order,
//!   writes missing from the final read).

pub mod html;
mod svg;

use std::path::Path;

use firebreak_check::{CheckReport, Verdict};
use serde::Serialize;

use crate::error::DrillError;
use crate::lab::Member;
use crate::measure::Measurements;
use crate::verify::lost::{LostWrite, MisplacedWrite};
use crate::verify::replicas::Agreement;
use firebreak_netlab::relay::RelayStats;

/// Version of the `report.json` schema.
pub const SCHEMA: u32 = 1;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The property held.
    Pass,
    /// It was violated (see the detail).
    Fail,
    /// It could not be decided.
    Unknown,
}

impl Status {
    /// `pass`, `fail` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// One check of the drill.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable name: `linearizable`, `revisions`, `no_lost_writes`,
    /// `replicas_agree`, `recovered`, `isolated_dc_served_nothing`,
    /// `restored_dc_caught_up`.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// Whether `firebreak check` recomputes it from `history.jsonl`.
    pub from_history: bool,
    /// One or two sentences.
    pub detail: String,
}

/// The verdict of a set of checks.
pub fn verdict_of<'a>(checks: impl IntoIterator<Item = &'a CheckResult>) -> Verdict {
    let statuses: Vec<Status> = checks.into_iter().map(|c| c.status).collect();
    if statuses.contains(&Status::Fail) {
        Verdict::Fail
    } else if statuses.contains(&Status::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Pass
    }
}

/// One datacenter of the lab.
#[derive(Debug, Clone, Serialize)]
pub struct DcTopology {
    /// `dc1`, …
    pub name: String,
    /// Its network namespace (`null` on loopback).
    pub namespace: Option<String>,
    /// Its /24.
    pub subnet: String,
    /// Its gateway in the root namespace, where the relay listens for its members.
    pub gateway: String,
    /// Its members.
    pub members: Vec<Member>,
    /// Its clients (ids in the history).
    pub clients: Vec<u64>,
}

/// The lab.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// `netns` or `loopback`.
    pub mode: String,
    /// Datacenters.
    pub datacenters: Vec<DcTopology>,
    /// The nftables table that guards the relay (`null` on loopback).
    pub nftables_table: Option<String>,
}

/// The settings of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Seconds of load.
    pub duration_s: f64,
    /// Fault, seconds after the load started.
    pub fault_at_s: f64,
    /// Restore, seconds after the fault (`null`: never).
    pub restore_after_s: Option<f64>,
    /// Clients per datacenter.
    pub clients_per_dc: u32,
    /// Members per datacenter.
    pub nodes_per_dc: u32,
    /// Round trip added between datacenters, ms.
    pub rtt_ms: f64,
    /// Keys in the workload.
    pub keys: u32,
    /// Prefix of the workload's keys.
    pub key_prefix: String,
    /// Operation mix, percent.
    pub mix: String,
    /// Per-operation client timeout, ms.
    pub op_timeout_ms: u64,
    /// Operations per second per client (0: unlimited).
    pub rate_per_client: f64,
    /// Raft heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Raft election timeout, ms.
    pub election_timeout_ms: u64,
    /// Raft entries between snapshots.
    pub snapshot_entries: u64,
    /// Linearizability search budget, s.
    pub check_budget_s: u64,
    /// Recovery bound of the `recovered` check, ms.
    pub max_rto_ms: u64,
    /// `FAILPOINTS` given to the members, if any.
    pub failpoints: Option<String>,
}

/// A moment of the drill.
#[derive(Debug, Clone, Serialize)]
pub struct Moment {
    /// Seconds since the load started (negative: before).
    pub t_s: f64,
    /// What happened.
    pub what: String,
}

/// When things happened, in seconds since the load started.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    /// `CLOCK_MONOTONIC` nanoseconds of time zero (the load's start); every
    /// time in `history.jsonl` is relative to it.
    pub clock_zero_ns: u64,
    /// The fault began.
    pub fault_s: f64,
    /// Every action of the fault was applied.
    pub fault_done_s: f64,
    /// The datacenter came back (`null`: never during the load).
    pub restore_s: Option<f64>,
    /// The load ended.
    pub end_s: f64,
    /// The leader just before the fault.
    pub leader_before: Option<String>,
    /// The leader after recovery.
    pub leader_after: Option<String>,
    /// Everything noteworthy, in order.
    pub events: Vec<Moment>,
}

/// One fault as the drill carried it out (`faults` in `report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// `fire`, `power-loss`, `isolate`, `pause` or `restart`.
    pub kind: String,
    /// The datacenter struck (for `restart`, the restarted member's).
    pub dc: String,
    /// The member killed and restarted (`restart` only).
    pub member: Option<String>,
    /// Why that datacenter or member.
    pub reason: String,
    /// When it struck, seconds.
    pub t_s: f64,
    /// When every action of it was applied, seconds.
    pub done_s: f64,
    /// When it was undone, seconds (`null`: never during the load, or
    /// nothing to undo).
    pub restored_s: Option<f64>,
    /// Processes killed or stopped.
    pub processes: Vec<String>,
    /// The leader just before it.
    pub leader_before: Option<String>,
    /// Recovery of the clients of the other datacenters after it, ms
    /// (`null`: one never recovered).
    pub rto_ms: Option<f64>,
    /// `power-loss` only: what each member had applied just before its
    /// power went, and what its disk held after.
    pub power_loss: Vec<PowerLossMember>,
}

/// A member whose power was cut.
#[derive(Debug, Clone, Serialize)]
pub struct PowerLossMember {
    /// Member name.
    pub member: String,
    /// The last Raft log index it had applied, just before the cut (`null`:
    /// it did not answer).
    pub applied_index_before: Option<u64>,
    /// The last log index its snapshot and log on disk held after the cut.
    pub durable_index_after: Option<u64>,
    /// Why its disk could not be read, if it could not.
    pub error: Option<String>,
}

/// How long the restored datacenter took to catch up.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    /// When it came back, seconds.
    pub restored_s: f64,
    /// The highest revision the surviving members had applied at that
    /// moment (serializable reads: a quorum may not answer yet).
    pub target_revision: Option<u64>,
    /// Per restored member: ms from the restore until its replica had
    /// applied the target revision (`null`: not within the limit).
    pub members: Vec<(String, Option<f64>)>,
    /// The slowest, ms.
    pub max_ms: Option<f64>,
}

/// The relay's cost.
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    /// One-way delay asked for, ms.
    pub one_way_ms: f64,
    /// Counters over the whole run.
    #[serde(flatten)]
    pub stats: RelayStats,
    /// Relay thread CPU during the load, ms.
    pub load_cpu_ms: Option<f64>,
    /// The same as a share of one core over the load, percent.
    pub load_cpu_percent_of_one_core: Option<f64>,
    /// Relay CPU per MiB relayed, ms.
    pub cpu_ms_per_mib: Option<f64>,
}

/// The history.
#[derive(Debug, Clone, Serialize)]
pub struct HistorySummary {
    /// `history.jsonl`.
    pub file: String,
    /// Events (including the final read).
    pub events: usize,
    /// Of which `ok`.
    pub ok: usize,
    /// `fail`.
    pub fail: usize,
    /// `unknown`.
    pub unknown: usize,
    /// The member that served the final read, and at which revision.
    pub final_read: Option<(String, u64)>,
    /// Problems with the raw client files.
    pub warnings: Vec<String>,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `fire`, `leader-fire`, `isolate` or `pause`.
    pub scenario: String,
    /// Workload seed.
    pub seed: u64,
    /// The faulted datacenter.
    pub fault_dc: String,
    /// Why that one.
    pub fault_dc_reason: String,
    /// PASS, FAIL or UNKNOWN (see the module docs).
    pub verdict: Verdict,
    /// What `firebreak check history.jsonl` says.
    pub history_verdict: Verdict,
    /// The checker's linearizability result (`null`: undecided).
    pub linearizable: Option<bool>,
    /// Acknowledged writes lost (see `lost_writes`).
    pub acknowledged_writes_lost: usize,
    /// Worst recovery time of a surviving client, ms (`null`: one never recovered).
    pub rto_ms: Option<f64>,
    /// The longest wait of a client of a datacenter not faulted, across or
    /// after the restore, ms (`null`: no restore during the load). With no
    /// disruption on heal it is no longer than `measurements.heal.before_fault_max_gap_ms`
    /// shows for an undisturbed cluster.
    pub heal_max_gap_ms: Option<f64>,
    /// The hypothesis tested.
    pub hypothesis: String,
    /// One-line summary.
    pub summary: String,
    /// Every check.
    pub checks: Vec<CheckResult>,
    /// The lost writes, with evidence.
    pub lost_writes: Vec<LostWrite>,
    /// Writes applied at another revision than acknowledged.
    pub misplaced_writes: Vec<MisplacedWrite>,
    /// `netns` or `loopback`.
    pub mode: String,
    /// Set when the run is weaker than a namespace lab.
    pub mode_note: Option<String>,
    /// The lab.
    pub topology: Topology,
    /// The settings.
    pub settings: Settings,
    /// When things happened.
    pub timeline: TimelineReport,
    /// RTO, availability, throughput, latency.
    pub measurements: Measurements,
    /// Catch-up of the restored datacenter.
    pub catch_up: Option<CatchUp>,
    /// Replica agreement.
    pub replicas: Option<Agreement>,
    /// The WAN relay.
    pub relay: RelayReport,
    /// The history.
    pub history: HistorySummary,
    /// The linearizability checker's report.
    pub check: CheckReport,
    /// Wall-clock start (UTC).
    pub started_at: String,
    /// Wall-clock length of the whole drill, s.
    pub duration_s: f64,
    /// Firebreak version.
    pub firebreak_version: String,
    /// Anything odd.
    pub warnings: Vec<String>,
    /// The workloads beyond registers, each checked with its anomalies and
    /// the operations that show them (the `bank`, `ranges`, `locks` and
    /// `watches` checks).
    pub workloads: Vec<crate::verify::workloads::WorkloadCheck>,
    /// Every fault, in order (the first is the one `fault_dc` and
    /// `timeline` describe).
    pub faults: Vec<FaultReport>,
}

impl Report {
    /// Writes `report.json` into `dir`.
    pub fn write_json(&self, dir: &Path) -> Result<(), DrillError> {
        let path = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).expect("a report always serializes");
        std::fs::write(&path, text + "\n").map_err(DrillError::io("cannot write the report", &path))
    }
}

/// `2026-05-01T12:34:56Z` for a time since the Unix epoch.
pub fn utc(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `20260501-123456` for directory names.
pub fn stamp(time: std::time::SystemTime) -> String {
    utc(time)
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_owned()
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_665_814_740)),
            "2022-10-15T06:19:00Z"
        );
        assert_eq!(
            stamp(UNIX_EPOCH + Duration::from_secs(1_665_814_740)),
            "20221015-061900"
        );
    }

    #[test]
    fn the_verdict_is_the_worst_check() {
        let check = |status| CheckResult {
            name: "x".into(),
            status,
            from_history: true,
            detail: String::new(),
        };
        assert_eq!(verdict_of(&[check(Status::Pass), check(Status::Pass)]), Verdict::Pass);
        assert_eq!(
            verdict_of(&[check(Status::Pass), check(Status::Unknown)]),
            Verdict::Unknown
        );
        assert_eq!(
            verdict_of(&[check(Status::Unknown), check(Status::Fail)]),
            Verdict::Fail
        );
    }
}
