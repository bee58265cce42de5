//! `firebreak drill`: runs the scenarios the command line asks for, one
//! [`Lab`] each, and writes their reports.
//!
//! One drill, phase by phase:
//! 1. **setup**: the lab (namespaces, relay, configs), the members, and a
//!    wait until every member serves a linearizable read;
//! 2. **load**: the clients start at time zero and run for `--duration`;
//! 3. **fault** at `--fault-at`, in the datacenter holding the leader unless
//!    `--dc` names one; **restore** `--restore-after` later;
//! 4. **verify**: the final linearizable read, replica agreement, the
//!    store's history; then the lab is torn down and the history is
//!    checked, measured and reported.
//!
//! # Correctness
//!
//! - Ctrl-C and SIGTERM cancel the drill future; dropping it drops the
//!   [`Lab`], whose guards remove everything the drill created.
//! - A report directory that already holds a drill is refused: the clients
//!   append to their raw files, so old lines would corrupt the history.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use firebreak_check::{check_history, write_history_jsonl, Budget, Outcome, Verdict};

use crate::args::{DrillArgs, RestoreAfter, WorkloadArg};
use crate::clock::{monotonic_ns, secs_to_ns, sleep_until_ns};
use crate::error::DrillError;
use crate::lab::addr::{AddressPlan, Mode};
use crate::lab::observe;
use crate::lab::process::Role;
use crate::lab::{cmd, sweep, ClientSpec, FaultRecord, Lab, LabSettings, DCS};
use crate::measure::{measure, rto_after, Timeline};
use crate::progress::Progress;
use crate::report::{
    self, html, verdict_of, CatchUp, CheckResult, DcTopology, FaultReport, HistorySummary, Moment, PowerLossMember,
    RelayReport, Report, Settings, Status, TimelineReport, Topology,
};
use crate::scenario::{DcFault, Fault, Scenario, Target};
use crate::schedule::{self, Action, MemberPick, Window};
use crate::summary;
use crate::verdict::history_checks;
use crate::verify::final_read::{final_read, FinalRead};
use crate::verify::isolation::served_while_cut;
use crate::verify::lost::{audit, combine, lost_by_final_read};
use crate::verify::replicas::{check_agreement, Agreement};
use crate::verify::store_history::{read_store_history, StoreHistory};
use crate::verify::workloads::check_workloads;
use crate::workload::merge::{merge, read_client_file};
use crate::workload::mix::workload_keys;
use crate::workload::tail::Tail;

/// Prefix of the workload's keys.
pub const KEY_PREFIX: &str = "drill/";
/// The heartbeat interval given to every member (Firebreak's default).
const HEARTBEAT_MS: u64 = firebreak_config::DEFAULT_HEARTBEAT_INTERVAL_MS;

/// A validated command line.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: DrillArgs,
    pub mode: Mode,
    pub seed: u64,
    pub scenarios: Vec<Scenario>,
    pub out: PathBuf,
    /// Why power cuts are impossible here, if they are (probed only when a
    /// scenario may use them).
    pub power_switch_unavailable: Option<String>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn usage(text: impl Into<String>) -> DrillError {
    DrillError::Usage(text.into())
}

impl Plan {
    /// Validates the command line and picks the mode.
    pub fn from_args(args: &DrillArgs) -> Result<Plan, DrillError> {
        if !(args.duration.is_finite() && args.duration > 0.0) {
            return Err(usage("--duration must be a positive number of seconds"));
        }
        if !(args.fault_at.is_finite() && args.fault_at > 0.0 && args.fault_at < args.duration) {
            return Err(usage(format!(
                "--fault-at {} must fall inside the load (0 < fault-at < duration {})",
                args.fault_at, args.duration
            )));
        }
        if let RestoreAfter::Seconds(s) = args.restore_after {
            if args.fault_at + s >= args.duration {
                return Err(usage(format!(
                    "the restore ({} + {s} s) must come before the load ends at {} s (or pass --restore-after never)",
                    args.fault_at, args.duration
                )));
            }
        }
        if !(1..=32).contains(&args.clients) {
            return Err(usage("--clients must be between 1 and 32"));
        }
        if !(1..=9).contains(&args.nodes_per_dc) {
            return Err(usage("--nodes-per-dc must be between 1 and 9"));
        }
        if !(args.rtt_ms.is_finite() && (0.0..=10_000.0).contains(&args.rtt_ms)) {
            return Err(usage("--rtt-ms must be between 0 and 10000"));
        }
        if !(1..=1000).contains(&args.keys) {
            return Err(usage("--keys must be between 1 and 1000"));
        }
        if !(args.rate.is_finite() && args.rate >= 0.0) {
            return Err(usage("--rate must be 0 (unlimited) or a positive number"));
        }
        if args.op_timeout_ms == 0 {
            return Err(usage("--op-timeout-ms must be positive"));
        }
        if args.election_timeout_ms < 3 * HEARTBEAT_MS {
            return Err(usage(format!(
                "--election-timeout-ms must be at least three heartbeats ({} ms)",
                3 * HEARTBEAT_MS
            )));
        }
        let dc = match &args.dc {
            None => None,
            Some(name) => {
                let n = name
                    .strip_prefix("dc")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| (1..=DCS).contains(n))
                    .ok_or_else(|| usage(format!("--dc {name:?}: the datacenters are dc1, dc2 and dc3")))?;
                Some(n - 1)
            }
        };
        if dc.is_some() && args.scenario == crate::args::ScenarioArg::LeaderFire {
            return Err(usage(
                "leader-fire burns the leader's datacenter; to choose one, use --scenario fire --dc NAME",
            ));
        }
        let mode = if args.no_netns {
            Mode::Loopback
        } else {
            if !is_root() {
                return Err(DrillError::Environment(
                    "firebreak drill needs root to build its datacenters as network namespaces (ip netns, veth, \
                     nftables). Run it as root, or add --no-netns for the process-only mode on loopback, which is \
                     weaker: the datacenters then share one network namespace and only the relay separates them."
                        .into(),
                ));
            }
            for tool in ["ip", "nft"] {
                if !cmd::available(tool) {
                    return Err(DrillError::Environment(format!(
                        "`{tool}` is not installed (Debian: iproute2, nftables); install it or add --no-netns for \
                         the weaker process-only mode on loopback"
                    )));
                }
            }
            Mode::Netns
        };
        let scenarios = Scenario::expand(args.scenario, dc);
        let scenario_name = if scenarios.len() > 1 { "all" } else { scenarios[0].name };
        let out = match &args.out {
            Some(out) => out.clone(),
            None => {
                let base =
                    PathBuf::from("drills").join(format!("{}-{scenario_name}", report::stamp(SystemTime::now())));
                let mut candidate = base.clone();
                let mut n = 2;
                while candidate.exists() {
                    candidate = PathBuf::from(format!("{}-{n}", base.display()));
                    n += 1;
                }
                candidate
            }
        };
        let seed = args.seed.unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            (nanos ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000_000
        });
        let power_switch_unavailable = if scenarios
            .iter()
            .any(|s| s.needs_power_loss() || s.fault == Fault::Chaos)
        {
            crate::lab::power_switch_unavailable()
        } else {
            None
        };
        if args.runs == 0 {
            return Err(usage("--runs must be at least 1"));
        }
        Ok(Plan {
            args: args.clone(),
            mode,
            seed,
            scenarios,
            out,
            power_switch_unavailable,
        })
    }

    fn lab_settings(&self, power_switch: bool) -> LabSettings {
        LabSettings {
            mode: self.mode,
            nodes_per_dc: self.args.nodes_per_dc as usize,
            rtt: Duration::from_secs_f64(self.args.rtt_ms / 1000.0),
            heartbeat_ms: HEARTBEAT_MS,
            election_ms: self.args.election_timeout_ms,
            snapshot_entries: self.args.snapshot_entries,
            keep_data: self.args.keep_data,
            power_switch,
        }
    }

    fn restore_after(&self) -> Option<f64> {
        match self.args.restore_after {
            RestoreAfter::Seconds(s) => Some(s),
            RestoreAfter::Never => None,
        }
    }
}

/// Runs the drill(s) of `args`.
pub fn run(args: DrillArgs) -> Result<ExitCode, DrillError> {
    let plan = Plan::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("drill")
        .enable_all()
        .build()
        .map_err(DrillError::io("cannot start the runtime", "tokio"))?;
    let verdict = runtime.block_on(async {
        tokio::select! {
            result = run_plan(&plan) => result,
            signal = interrupted() => Err(DrillError::Interrupted(signal)),
        }
    })?;
    Ok(match verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::from(1),
        Verdict::Unknown => ExitCode::from(2),
    })
}

/// Resolves on the first SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn prepare_out(dir: &Path) -> Result<(), DrillError> {
    if dir.join("report.json").exists() || dir.join("clients").exists() {
        return Err(usage(format!(
            "{} already holds a drill; choose another --out",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(DrillError::io("cannot create the report directory", dir))
}

async fn run_plan(plan: &Plan) -> Result<Verdict, DrillError> {
    for removed in sweep::sweep(plan.mode == Mode::Netns) {
        eprintln!("removed a leftover of a drill that died: {removed}");
    }
    if plan.mode == Mode::Loopback {
        eprintln!(
            "process-only mode on loopback: the datacenters share one network namespace; only the relay \
             separates them (no nftables). Weaker than the namespace lab; the report says so."
        );
    }
    let runs = plan.args.runs.max(1);
    let mut reports = Vec::new();
    // Runs of a sweep that ended in an error: the sweep goes on, and its
    // summary lists them.
    let mut errors: Vec<summary::RunError> = Vec::new();
    let mut skipped = 0;
    for run in 0..runs {
        let seed = plan.seed.wrapping_add(u64::from(run));
        let base = if runs > 1 {
            plan.out.join(format!("run-{:03}", run + 1))
        } else {
            plan.out.clone()
        };
        let mut these = Vec::new();
        for scenario in &plan.scenarios {
            let dir = if plan.scenarios.len() > 1 {
                base.join(scenario.name)
            } else {
                base.clone()
            };
            if runs > 1 {
                eprintln!("==== run {} of {runs}: {} (seed {seed})", run + 1, scenario.name);
            }
            if let (true, Some(why)) = (scenario.needs_power_loss(), &plan.power_switch_unavailable) {
                // Never faked: without the layer a power cut is only a fire.
                eprintln!("==== {}: SKIPPED ({why}) ====", scenario.name);
                println!("SKIPPED {} - -", scenario.name);
                skipped += 1;
                continue;
            }
            prepare_out(&dir)?;
            let report = match run_one(plan, seed, scenario, &dir).await {
                Ok(report) => report,
                Err(e) if runs > 1 => {
                    eprintln!("==== {}: ended in an error, no verdict: {e}", scenario.name);
                    println!("ERROR {} - {}", scenario.name, dir.display());
                    errors.push(summary::RunError {
                        scenario: scenario.name.to_string(),
                        dir: dir.strip_prefix(&plan.out).unwrap_or(&dir).display().to_string(),
                        error: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            print_verdict(&report, &dir);
            these.push((report, dir));
        }
        if plan.scenarios.len() > 1 {
            summary::write(&base, &these)?;
        }
        reports.extend(these);
    }
    if runs > 1 {
        summary::write_sweep(&plan.out, &reports, &errors)?;
    }
    if reports.is_empty() && skipped > 0 {
        // Nothing ran: undecided, never a pass.
        return Ok(Verdict::Unknown);
    }
    // A run that ended in an error decided nothing: at best UNKNOWN.
    let errored = errors.iter().map(|_| Verdict::Unknown);
    Ok(reports
        .iter()
        .map(|(r, _)| r.verdict)
        .chain(errored)
        .fold(Verdict::Pass, |worst, v| match (worst, v) {
            (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
            (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
            _ => Verdict::Pass,
        }))
}

fn print_verdict(report: &Report, dir: &Path) {
    eprintln!();
    eprintln!(
        "==== {} in {}: {} ====",
        report.scenario, report.fault_dc, report.verdict
    );
    for check in &report.checks {
        eprintln!(
            "  {:<28} {:<7} {}",
            check.name,
            check.status.as_str().to_uppercase(),
            check.detail
        );
    }
    eprintln!(
        "  RTO {}; acknowledged writes lost: {}; relay CPU {} of one core",
        report.rto_ms.map_or_else(
            || "n/a (a surviving client never recovered)".to_owned(),
            |v| format!("{v:.0} ms")
        ),
        report.acknowledged_writes_lost,
        report
            .relay
            .load_cpu_percent_of_one_core
            .map_or_else(|| "?".to_owned(), |v| format!("{v:.1} %"))
    );
    if let Some(heal) = &report.measurements.heal {
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} ms"));
        eprintln!(
            "  after the restore at {:.1} s: longest wait of a surviving client {} (before the fault: {}); {} of {} operations failed",
            heal.heal_s,
            ms(heal.max_gap_ms),
            ms(heal.before_fault_max_gap_ms),
            heal.errors,
            heal.ok + heal.errors
        );
    }
    eprintln!("  report: {}", dir.join("report.html").display());
    println!(
        "{} {} {} {}",
        report.verdict,
        report.scenario,
        report.fault_dc,
        dir.join("report.json").display()
    );
}

/// What happened during one drill, as the orchestration goes.
struct Run {
    zero_ns: u64,
    moments: Vec<Moment>,
    warnings: Vec<String>,
    progress: Progress,
}

impl Run {
    fn t(&self, mono_ns: u64) -> f64 {
        (mono_ns as f64 - self.zero_ns as f64) / 1e9
    }

    fn note(&mut self, mono_ns: u64, what: impl Into<String>) {
        let what = what.into();
        let t = self.t(mono_ns);
        self.progress.event(Some(t), &what);
        self.moments.push(Moment { t_s: t, what });
    }

    fn warn(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.progress.event(None, &format!("warning: {what}"));
        self.warnings.push(what);
    }
}

/// Waits until `until_ns`, showing progress and reporting processes that
/// exit on their own.
async fn load_phase(lab: &mut Lab, run: &mut Run, tail: &mut Tail, phase: &str, until_ns: u64, end_ns: u64) {
    loop {
        let now = monotonic_ns();
        for (name, role, status) in lab.reap() {
            if role == Role::Member {
                run.warn(format!(
                    "member {name} exited on its own ({status}) at t={:.2}s",
                    run.t(now)
                ));
            } else if !status.success() {
                run.warn(format!("{name} exited with {status}"));
            }
        }
        let counts = tail.poll();
        run.progress
            .status(phase, run.t(now).max(0.0), run.t(end_ns) - run.t(now), counts);
        if now >= until_ns {
            return;
        }
        let step = Duration::from_millis(250).min(Duration::from_nanos(until_ns - now));
        tokio::time::sleep(step).await;
    }
}

/// What the `k`-th client of datacenter `dc` runs besides the registers:
/// for `mixed`, the first client of every datacenter runs locks (whichever
/// datacenter ends up cut off, a holder lives there), the others bank,
/// ranges and watches in turn, from a different one in each datacenter (so
/// with three clients per datacenter each runs twice).
fn client_workload(workload: WorkloadArg, dc: usize, k: u64) -> WorkloadArg {
    const OTHERS: [WorkloadArg; 3] = [WorkloadArg::Bank, WorkloadArg::Ranges, WorkloadArg::Watches];
    match (workload, k) {
        (WorkloadArg::Mixed, 0) => WorkloadArg::Locks,
        (WorkloadArg::Mixed, k) => OTHERS[(dc + k as usize - 1) % OTHERS.len()],
        (other, _) => other,
    }
}

/// One fault as it was carried out.
struct Struck {
    /// The schedule's id of a datacenter fault, for its undo.
    id: Option<usize>,
    /// The datacenter fault (`None`: a member restart).
    fault: Option<DcFault>,
    dc: usize,
    /// The member restarted.
    member: Option<String>,
    reason: String,
    leader_before: Option<String>,
    record: FaultRecord,
    /// When it was undone.
    restored_ns: Option<u64>,
    /// The revision the restored members must reach, and the task that
    /// waits for them.
    catch_up: Option<(Option<u64>, CatchUpTask)>,
    power_loss: Vec<PowerLossMember>,
}

/// Restored members and the instant each caught up.
type CatchUpTask = tokio::task::JoinHandle<Vec<(String, Option<u64>)>>;

fn dc_fault_name(fault: DcFault) -> &'static str {
    match fault {
        DcFault::Fire => "fire",
        DcFault::PowerLoss => "power-loss",
        DcFault::Isolate => "isolate",
        DcFault::Pause => "pause",
    }
}

/// The members the drill can talk to: all but those of datacenters that
/// burned or froze (a cut-off datacenter's members still answer the
/// drill's management path).
fn reachable_members(lab: &Lab, down: &[(usize, DcFault)]) -> Vec<usize> {
    (0..lab.members.len())
        .filter(|&i| {
            !down
                .iter()
                .any(|&(dc, f)| dc == lab.members[i].dc && f != DcFault::Isolate)
        })
        .collect()
}

/// Polls `members` until each has applied `target`; the instant each did.
async fn catch_up(
    members: Vec<crate::lab::Member>,
    target: Option<u64>,
    limit: Duration,
) -> Vec<(String, Option<u64>)> {
    let mut set = tokio::task::JoinSet::new();
    for m in members {
        set.spawn(async move {
            let at = match target {
                Some(t) => observe::wait_caught_up(&m, t, limit).await,
                None => None,
            };
            (m.name.clone(), at)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        out.extend(done.ok());
    }
    out.sort();
    out
}

/// Like [`load_phase`] until `until_ns`, and while `awaiting` holds the
/// leader before the last fault, notes the first leader the drill sees
/// after it.
#[allow(clippy::too_many_arguments)]
async fn wait_noting_leader(
    lab: &mut Lab,
    run: &mut Run,
    tail: &mut Tail,
    down: &[(usize, DcFault)],
    awaiting: &mut Option<Option<String>>,
    until_ns: u64,
    end_ns: u64,
) {
    while monotonic_ns() < until_ns {
        if let Some(before) = awaiting.clone() {
            let reachable = reachable_members(lab, down);
            if let Some(i) = observe::find_leader(&lab.members, &reachable, Duration::from_millis(300)).await {
                let name = lab.members[i].name.clone();
                run.note(
                    monotonic_ns(),
                    if before.as_deref() == Some(name.as_str()) {
                        format!("{name} leads (as seen by the drill)")
                    } else {
                        format!("{name} is the new leader (as seen by the drill)")
                    },
                );
                *awaiting = None;
            }
        }
        let step = (monotonic_ns() + 500_000_000).min(until_ns);
        load_phase(lab, run, tail, "load", step, end_ns).await;
    }
}

/// `power_loss_kept_applied`: a member never loses to a power cut what it
/// had already applied (it applies only what its own log holds on disk).
fn power_loss_check(members: &[&PowerLossMember]) -> CheckResult {
    let lost: Vec<String> = members
        .iter()
        .filter_map(|m| match (m.applied_index_before, m.durable_index_after, &m.error) {
            (_, _, Some(e)) => Some(format!("{}: its disk cannot be read after the cut ({e})", m.member)),
            (Some(applied), durable, None) if durable.unwrap_or(0) < applied => Some(format!(
                "{} had applied log index {applied} before the cut, its disk holds {} after it",
                m.member,
                durable.map_or("nothing".to_owned(), |d| format!("up to {d}"))
            )),
            _ => None,
        })
        .collect();
    let unasked = members.iter().filter(|m| m.applied_index_before.is_none()).count();
    CheckResult {
        name: "power_loss_kept_applied".into(),
        status: if !lost.is_empty() {
            Status::Fail
        } else if unasked == members.len() {
            Status::Unknown
        } else {
            Status::Pass
        },
        from_history: false,
        detail: if !lost.is_empty() {
            format!("a power cut took what a member had applied: {}", lost.join("; "))
        } else if unasked == members.len() {
            "no member answered just before the power cut".into()
        } else {
            format!(
                "every member whose power was cut ({}) kept on disk all it had applied before the cut",
                members.iter().map(|m| m.member.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
    }
}

async fn run_one(plan: &Plan, seed: u64, scenario: &Scenario, dir: &Path) -> Result<Report, DrillError> {
    let args = &plan.args;
    let started_wall = SystemTime::now();
    let started = monotonic_ns();
    let mut run = Run {
        zero_ns: started,
        moments: Vec::new(),
        warnings: Vec::new(),
        progress: Progress::new(scenario.name),
    };
    run.progress.event(
        None,
        &format!(
            "building the lab: 3 datacenters × {} member(s), {} client(s) each, {} mode, RTT {} ms; report in {}",
            args.nodes_per_dc,
            args.clients,
            plan.mode.as_str(),
            args.rtt_ms,
            dir.display()
        ),
    );
    // Power cuts need the FUSE layer under every member (the scenario that
    // strikes can be any datacenter); `chaos` uses it where it works.
    let power_switch = match scenario.fault {
        Fault::Dc(DcFault::PowerLoss) => true,
        Fault::Chaos => match &plan.power_switch_unavailable {
            None => true,
            Some(why) => {
                run.warn(format!("chaos strikes with fires instead of power cuts: {why}"));
                false
            }
        },
        _ => false,
    };
    let mut lab = Lab::build(plan.lab_settings(power_switch), dir)?;
    let all: Vec<usize> = (0..lab.members.len()).collect();
    for i in all.clone() {
        lab.start_member(i)?;
    }
    observe::wait_ready(&lab.members, &all, Duration::from_secs(30))
        .await
        .map_err(|e| DrillError::Cluster(format!("{e}; see the logs in {}", lab.logs_dir.display())))?;
    let ready_ns = monotonic_ns();
    let leader_at_start = observe::find_leader(&lab.members, &all, Duration::from_secs(1)).await;

    // Load.
    let per_dc = u64::from(args.clients);
    let zero = monotonic_ns() + 1_500_000_000;
    run.zero_ns = zero;
    let end = zero + secs_to_ns(args.duration);
    let mut tail = Tail::default();
    let mut client_ids = vec![Vec::new(); DCS];
    // The k-th client of a datacenter: what it runs besides the registers.
    let spec = |id: u64, dc: usize, k: u64, start_ns: u64| ClientSpec {
        id,
        dc,
        seed,
        keys: args.keys,
        start_ns,
        stop_ns: end,
        op_timeout_ms: args.op_timeout_ms,
        rate: args.rate,
        workload: client_workload(args.workload, dc, k),
    };
    for (dc, ids) in client_ids.iter_mut().enumerate() {
        for k in 0..per_dc {
            let id = dc as u64 * per_dc + k + 1;
            lab.start_client(&spec(id, dc, k, zero))?;
            tail.follow(lab.client_history(id));
            ids.push(id);
        }
    }
    run.note(
        ready_ns,
        format!(
            "lab up: members started, a leader ({}) serves linearizable reads",
            leader_at_start.map_or("?".into(), |i| lab.members[i].name.clone())
        ),
    );
    run.note(zero, format!("load starts: {} clients", per_dc * DCS as u64));
    let relay_cpu_at_zero = {
        sleep_until_ns(zero).await;
        lab.relay().cpu_ns()
    };

    // The faults, as the schedule planned them.
    let window = Window {
        fault_at: args.fault_at,
        restore_after: plan.restore_after(),
        duration: args.duration,
        members: lab.members.len(),
        dcs: DCS,
        power_loss: lab.has_power_switch(),
    };
    let steps = schedule::plan(scenario, seed, window);
    let mut struck: Vec<Struck> = Vec::new();
    let mut next_client = DCS as u64 * per_dc + 1;
    // Datacenters under a fault now, and which.
    let mut down: Vec<(usize, DcFault)> = Vec::new();
    // The leader before the last fault, until the drill sees a new one.
    let mut awaiting_leader: Option<Option<String>> = None;
    for step in &steps {
        let at = zero + secs_to_ns(step.at_s);
        wait_noting_leader(
            &mut lab,
            &mut run,
            &mut tail,
            &down,
            &mut awaiting_leader,
            at.saturating_sub(300_000_000),
            end,
        )
        .await;
        let reachable = reachable_members(&lab, &down);
        let leader = observe::find_leader(&lab.members, &reachable, Duration::from_millis(300)).await;
        let leader_name = leader.map(|i| lab.members[i].name.clone());
        load_phase(&mut lab, &mut run, &mut tail, "load", at, end).await;
        match step.action {
            Action::Down { id, fault, target } => {
                let (dc, reason) = match (target, leader) {
                    (Target::Dc(dc), _) => (dc, "chosen with --dc or by the schedule".to_owned()),
                    (Target::Leader, Some(i)) => (
                        lab.members[i].dc,
                        format!("held the Raft leader ({}) at the fault", lab.members[i].name),
                    ),
                    (Target::Leader, None) => {
                        run.warn("no member claimed leadership just before the fault; faulting dc1");
                        (0, "no leader found at the fault; dc1 by default".to_owned())
                    }
                };
                let dc_name = AddressPlan::dc_name(dc);
                // What each member had applied, just before its power goes.
                let mut applied_before = Vec::new();
                if fault == DcFault::PowerLoss {
                    for i in lab.members_of(dc) {
                        let applied = observe::applied_index(&lab.members[i], Duration::from_millis(300)).await;
                        applied_before.push((i, applied));
                    }
                }
                let record = match fault {
                    DcFault::Fire => lab.burn(dc)?,
                    DcFault::PowerLoss => lab.power_cut(dc)?,
                    DcFault::Isolate => lab.isolate(dc)?,
                    DcFault::Pause => lab.freeze(dc),
                };
                run.note(record.start_ns, format!("FAULT: {}", fault.action(&dc_name)));
                if !record.processes.is_empty() {
                    run.note(
                        record.done_ns,
                        format!(
                            "fault applied in {:.1} ms to {}",
                            (record.done_ns - record.start_ns) as f64 / 1e6,
                            record.processes.join(", ")
                        ),
                    );
                }
                let power_loss = applied_before
                    .into_iter()
                    .map(|(i, applied)| {
                        let durable = firebreak_raft::inspect::durable_end(&lab.members[i].data_dir);
                        PowerLossMember {
                            member: lab.members[i].name.clone(),
                            applied_index_before: applied,
                            durable_index_after: durable.as_ref().ok().and_then(|d| d.index()),
                            error: durable.err(),
                        }
                    })
                    .collect();
                down.push((dc, fault));
                awaiting_leader = Some(leader_name.clone());
                struck.push(Struck {
                    id: Some(id),
                    fault: Some(fault),
                    dc,
                    member: None,
                    reason,
                    leader_before: leader_name,
                    record,
                    restored_ns: None,
                    catch_up: None,
                    power_loss,
                });
            }
            Action::Up { id } => {
                let Some(s) = struck.iter_mut().find(|s| s.id == Some(id)) else {
                    continue;
                };
                let (dc, fault) = (s.dc, s.fault.expect("a datacenter fault"));
                let dc_name = AddressPlan::dc_name(dc);
                down.retain(|&(d, _)| d != dc);
                // What the others have applied: the least the restored
                // members must reach (read locally, since a quorum may not
                // answer yet).
                let others: Vec<usize> = reachable_members(&lab, &down)
                    .into_iter()
                    .filter(|&i| lab.members[i].dc != dc)
                    .collect();
                let target = observe::max_applied_revision(&lab.members, &others, Duration::from_secs(1)).await;
                let now = monotonic_ns();
                if fault.kills() {
                    lab.heal(dc)?;
                    for i in lab.members_of(dc) {
                        lab.start_member(i)?;
                    }
                    for k in 0..per_dc {
                        let id = next_client;
                        next_client += 1;
                        lab.start_client(&spec(id, dc, k, monotonic_ns() + 200_000_000))?;
                        tail.follow(lab.client_history(id));
                        client_ids[dc].push(id);
                    }
                } else if fault == DcFault::Isolate {
                    lab.heal(dc)?;
                } else {
                    lab.thaw(dc);
                }
                s.restored_ns = Some(now);
                run.note(now, format!("RESTORE: {}", fault.recovery(&dc_name)));
                let restored: Vec<_> = lab.members_of(dc).into_iter().map(|i| lab.members[i].clone()).collect();
                let limit = Duration::from_nanos(end.saturating_sub(now)) + Duration::from_secs(20);
                s.catch_up = Some((target, tokio::spawn(catch_up(restored, target, limit))));
            }
            Action::Restart { member } => {
                let i = match member {
                    MemberPick::Index(i) => i,
                    MemberPick::Leader => match leader {
                        Some(i) => i,
                        None => {
                            run.warn("no member claimed leadership at a restart; restarting the first member");
                            0
                        }
                    },
                };
                let dc = lab.members[i].dc;
                if down.iter().any(|&(d, f)| d == dc && f != DcFault::Isolate) {
                    // Dead or frozen with its datacenter: nothing to restart.
                    continue;
                }
                let record = lab.restart_member(i)?;
                run.note(
                    record.start_ns,
                    format!(
                        "FAULT: {} killed (SIGKILL) and started again at once{}",
                        lab.members[i].name,
                        if Some(i) == leader { " (it led)" } else { "" }
                    ),
                );
                awaiting_leader = Some(leader_name.clone());
                struck.push(Struck {
                    id: None,
                    fault: None,
                    dc,
                    member: Some(lab.members[i].name.clone()),
                    reason: if Some(i) == leader {
                        "it held the Raft leader".into()
                    } else {
                        "chosen by the schedule".into()
                    },
                    leader_before: leader_name,
                    record,
                    restored_ns: None,
                    catch_up: None,
                    power_loss: Vec::new(),
                });
            }
        }
    }
    wait_noting_leader(&mut lab, &mut run, &mut tail, &down, &mut awaiting_leader, end, end).await;
    if struck.is_empty() {
        return Err(DrillError::Internal("the schedule struck no fault".into()));
    }
    let fault_dc_name = AddressPlan::dc_name(struck[0].dc);
    let relay_cpu_at_end = lab.relay().cpu_ns();
    run.note(end, "load ends");

    // Wait for the clients to finish their last operation.
    let grace_until = end + args.op_timeout_ms * 1_000_000 + 3_000_000_000;
    while lab.clients_running() && monotonic_ns() < grace_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stragglers = lab.kill_clients();
    if !stragglers.is_empty() {
        run.warn(format!(
            "clients still running after the load were killed: {}",
            stragglers.join(", ")
        ));
    }
    load_phase(&mut lab, &mut run, &mut tail, "verify", monotonic_ns(), monotonic_ns()).await;
    run.progress.done();

    // Catch-up of every restored datacenter.
    let mut catch_ups: Vec<(usize, CatchUp)> = Vec::new();
    for s in struck.iter_mut() {
        let (Some((target, task)), Some(start)) = (s.catch_up.take(), s.restored_ns) else {
            continue;
        };
        let members = task.await.unwrap_or_default();
        let members: Vec<(String, Option<f64>)> = members
            .into_iter()
            .map(|(name, at)| (name, at.map(|t| t.saturating_sub(start) as f64 / 1e6)))
            .collect();
        let max_ms = if members.iter().all(|(_, v)| v.is_some()) {
            members.iter().filter_map(|(_, v)| *v).reduce(f64::max)
        } else {
            None
        };
        if let Some(ms) = max_ms {
            run.note(
                start + (ms * 1e6) as u64,
                format!(
                    "{} caught up ({ms:.0} ms after the restore)",
                    AddressPlan::dc_name(s.dc)
                ),
            );
        }
        catch_ups.push((
            s.dc,
            CatchUp {
                restored_s: run.t(start),
                target_revision: target,
                members,
                max_ms,
            },
        ));
    }

    // Verify against the store, through the members of every datacenter
    // that is up (all of them, unless one was never restored).
    let survivors = reachable_members(&lab, &down);
    let checkable: Vec<usize> = if down.is_empty() {
        all.clone()
    } else {
        survivors.clone()
    };
    let final_read: Result<FinalRead, String> =
        final_read(&lab.members, &survivors, KEY_PREFIX, Duration::from_secs(30)).await;
    match &final_read {
        Ok(read) => run.note(
            read.complete_ns,
            format!(
                "final linearizable read via {}: {} keys at revision {}",
                read.member,
                read.kvs.len(),
                read.revision
            ),
        ),
        Err(e) => run.warn(e.clone()),
    }
    let agreement: Agreement = check_agreement(&lab.members, &checkable, Duration::from_secs(30)).await;
    run.note(monotonic_ns(), format!("replicas: {}", agreement.detail));
    let (history_members, history_revision): (Vec<usize>, Option<u64>) = match agreement.revision {
        Some(rev) => (checkable.clone(), Some(rev)),
        None => match &final_read {
            Ok(read) => {
                let i = all
                    .iter()
                    .copied()
                    .find(|&i| lab.members[i].name == read.member)
                    .unwrap_or(survivors[0]);
                (
                    vec![i],
                    observe::serializable_revision(&lab.members[i], Duration::from_secs(2)).await,
                )
            }
            Err(_) => (Vec::new(), None),
        },
    };
    let store_history: Option<StoreHistory> = match history_revision {
        Some(rev) => {
            run.progress
                .event(None, &format!("reading the store's history: revisions 1 to {rev}"));
            let h = read_store_history(&lab.members, &history_members, KEY_PREFIX, rev, 16).await;
            if !h.unreadable.is_empty() {
                run.warn(format!(
                    "{} revisions of the store's history could not be read",
                    h.unreadable.len()
                ));
            }
            Some(h)
        }
        None => None,
    };
    let leader_after = observe::find_leader(&lab.members, &checkable, Duration::from_secs(1))
        .await
        .map(|i| lab.members[i].name.clone());
    let relay_stats = lab.relay().stats();
    let topology = topology_of(&lab, &client_ids);

    // Tear the lab down before checking (the checker wants the CPU).
    lab.stop_all(Duration::from_secs(3));
    drop(lab);
    run.progress
        .event(None, "lab removed (processes, namespaces, nftables table)");

    // The history.
    let mut history_warnings = Vec::new();
    let mut per_client = Vec::new();
    for id in client_ids.iter().flatten() {
        let (events, warnings) = read_client_file(&dir.join("clients").join(format!("c{id}.jsonl")));
        per_client.push(events);
        history_warnings.extend(warnings);
    }
    let keys = workload_keys(args.keys, KEY_PREFIX);
    if let Ok(read) = &final_read {
        per_client.push(read.events(&keys));
    }
    let events = merge(per_client, zero);
    let history_path = dir.join("history.jsonl");
    write_history_jsonl(&history_path, &events)?;
    run.progress.event(
        None,
        &format!(
            "checking {} operations for linearizability (budget {} s)",
            events.len(),
            args.check_budget
        ),
    );
    let budget = Budget::with_duration(Duration::from_secs(args.check_budget));
    let check_events = events.clone();
    let check = tokio::task::spawn_blocking(move || check_history(&check_events, budget))
        .await
        .map_err(|e| DrillError::Internal(format!("the checker panicked: {e}")))?;

    // Checks.
    let mut checks = history_checks(&events, &check);
    let final_lost = lost_by_final_read(&events);
    let findings = store_history.as_ref().map(|h| audit(&events, h));
    let audit_lost = findings.as_ref().map(|f| f.lost.clone()).unwrap_or_default();
    let lost_writes = combine(&events, &final_lost, &audit_lost);
    let misplaced = findings.as_ref().map(|f| f.misplaced.clone()).unwrap_or_default();
    let acked = events
        .iter()
        .filter(|e| e.client != 0 && e.is_acknowledged_write())
        .count();
    checks.push(CheckResult {
        name: "no_lost_writes".into(),
        status: if !lost_writes.is_empty() || !misplaced.is_empty() {
            Status::Fail
        } else if final_read.is_err() || findings.as_ref().is_none_or(|f| f.unverifiable > 0) {
            Status::Unknown
        } else {
            Status::Pass
        },
        from_history: false,
        detail: if !lost_writes.is_empty() || !misplaced.is_empty() {
            format!(
                "{} of {acked} acknowledged writes lost ({} missing from the final read, {} missing from the store's \
                 history); {} applied at another revision than acknowledged",
                lost_writes.len(),
                final_lost.len(),
                audit_lost.len(),
                misplaced.len()
            )
        } else if let Some(f) = &findings {
            format!(
                "all {acked} acknowledged writes are in the final read (or overwritten later) and in the store's \
                 history at the revision they were acknowledged with{}",
                if f.unverifiable > 0 {
                    format!("; {} could not be placed (unreadable revisions)", f.unverifiable)
                } else {
                    String::new()
                }
            )
        } else {
            "the store's history could not be read".into()
        },
    });
    // The workloads beyond registers, each against the store's history.
    let workloads = check_workloads(&dir.join("clients"), store_history.as_ref(), zero);
    for w in &workloads {
        checks.push(CheckResult {
            name: w.name.clone(),
            status: match w.status {
                Verdict::Pass => Status::Pass,
                Verdict::Fail => Status::Fail,
                Verdict::Unknown => Status::Unknown,
            },
            from_history: false,
            detail: w.detail.clone(),
        });
    }
    checks.push(CheckResult {
        name: "replicas_agree".into(),
        status: if agreement.agree { Status::Pass } else { Status::Fail },
        from_history: false,
        detail: agreement.detail.clone(),
    });
    let rel = |ns: u64| ns.saturating_sub(zero);
    let first = &struck[0];
    let timeline = Timeline {
        fault_ns: rel(first.record.start_ns),
        fault_done_ns: rel(first.record.done_ns),
        restore_ns: first.restored_ns.map(rel),
        end_ns: end - zero,
    };
    let dc_names: Vec<String> = (0..DCS).map(AddressPlan::dc_name).collect();
    let bin_ns = if args.duration < 20.0 {
        500_000_000
    } else {
        1_000_000_000
    };
    let mut measurements = measure(&events, &dc_names, &fault_dc_name, timeline, bin_ns);
    // Recovery after each fault, of the clients of the datacenters it did
    // not strike (a restart strikes one member's datacenter).
    let fault_rtos: Vec<Option<f64>> = struck
        .iter()
        .map(|s| rto_after(&events, &dc_names, &[dc_names[s.dc].as_str()], rel(s.record.start_ns)).rto_ms)
        .collect();
    let (rto, rto_what) = match scenario.fault {
        Fault::Dc(_) => (measurements.rto.clone(), "after the fault".to_owned()),
        Fault::Restart => {
            // The worst restart; `None` if after one a client never recovered.
            let worst = struck
                .iter()
                .map(|s| rto_after(&events, &dc_names, &[dc_names[s.dc].as_str()], rel(s.record.start_ns)))
                .max_by(|a, b| match (a.rto_ms, b.rto_ms) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, _) => std::cmp::Ordering::Greater,
                    (_, None) => std::cmp::Ordering::Less,
                    (Some(x), Some(y)) => x.total_cmp(&y),
                })
                .unwrap_or_default();
            (worst, format!("after the worst of {} restarts", struck.len()))
        }
        Fault::Chaos => {
            // Service comes back for everyone once the last fault is over.
            let last = struck
                .iter()
                .map(|s| s.restored_ns.unwrap_or(s.record.done_ns))
                .max()
                .unwrap_or(first.record.start_ns);
            (
                rto_after(&events, &dc_names, &[], rel(last)),
                format!(
                    "after the last of {} faults was undone, in every datacenter",
                    struck.len()
                ),
            )
        }
    };
    measurements.rto = rto.clone();
    checks.push(CheckResult {
        name: "recovered".into(),
        status: match rto.rto_ms {
            Some(ms) if ms <= args.max_rto_ms as f64 => Status::Pass,
            _ => Status::Fail,
        },
        from_history: false,
        detail: match rto.rto_ms {
            Some(ms) => format!(
                "every client of the datacenters not struck completed a write and a linearizable read {ms:.0} ms \
                 {rto_what} at worst (write {:.0} ms, read {:.0} ms; bound {} ms)",
                rto.write_ms.unwrap_or(0.0),
                rto.read_ms.unwrap_or(0.0),
                args.max_rto_ms
            ),
            None => format!(
                "clients {:?} of the datacenters not struck never completed both a write and a read {rto_what}",
                rto.unrecovered_clients
            ),
        },
    });
    let cuts: Vec<&Struck> = struck.iter().filter(|s| s.fault == Some(DcFault::Isolate)).collect();
    if !cuts.is_empty() {
        let (mut served, mut tried) = (Vec::new(), 0);
        for s in &cuts {
            let name = &dc_names[s.dc];
            let (from, to) = (rel(s.record.done_ns), s.restored_ns.map_or(u64::MAX, rel));
            served.extend(served_while_cut(&events, name, from, to));
            tried += events
                .iter()
                .filter(|e| {
                    e.dc.as_deref() == Some(name.as_str()) && e.client != 0 && e.invoke_ns >= from && e.invoke_ns < to
                })
                .count();
        }
        let names: Vec<&str> = cuts.iter().map(|s| dc_names[s.dc].as_str()).collect();
        let names = names.join(", ");
        checks.push(CheckResult {
            name: "isolated_dc_served_nothing".into(),
            status: if served.is_empty() { Status::Pass } else { Status::Fail },
            from_history: false,
            detail: if served.is_empty() {
                format!("none of the {tried} operations the clients of {names} tried while cut off succeeded")
            } else {
                format!(
                    "{} operation(s) of the clients of {names} succeeded while cut off: {}",
                    served.len(),
                    served
                        .iter()
                        .take(20)
                        .map(|id| format!("#{id}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        });
    }
    let cut_power: Vec<&PowerLossMember> = struck.iter().flat_map(|s| &s.power_loss).collect();
    if struck.iter().any(|s| s.fault == Some(DcFault::PowerLoss)) {
        checks.push(power_loss_check(&cut_power));
    }
    if !catch_ups.is_empty() {
        let stuck: Vec<String> = catch_ups
            .iter()
            .filter(|(_, c)| c.target_revision.is_some() && c.max_ms.is_none())
            .map(|(dc, c)| format!("{} (revision {})", dc_names[*dc], c.target_revision.unwrap_or(0)))
            .collect();
        let unknown = catch_ups.iter().any(|(_, c)| c.target_revision.is_none());
        let slowest = catch_ups.iter().filter_map(|(_, c)| c.max_ms).reduce(f64::max);
        checks.push(CheckResult {
            name: "restored_dc_caught_up".into(),
            status: if !stuck.is_empty() {
                Status::Fail
            } else if unknown {
                Status::Unknown
            } else {
                Status::Pass
            },
            from_history: false,
            detail: if !stuck.is_empty() {
                format!(
                    "restored members never applied what the others had at the restore: {}",
                    stuck.join(", ")
                )
            } else if unknown {
                "no other member answered at a restore".into()
            } else if let [(dc, c)] = catch_ups.as_slice() {
                format!(
                    "{}'s members applied revision {} (the survivors' at the restore) {:.0} ms after it",
                    dc_names[*dc],
                    c.target_revision.unwrap_or(0),
                    c.max_ms.unwrap_or(0.0)
                )
            } else {
                format!(
                    "each of {} restored datacenters applied what the others had at its restore, {:.0} ms after it \
                     at worst",
                    catch_ups.len(),
                    slowest.unwrap_or(0.0)
                )
            },
        });
    }
    let verdict = verdict_of(&checks);
    let history_verdict = verdict_of(checks.iter().filter(|c| c.from_history));

    let load_s = args.duration;
    let load_cpu_ms = match (relay_cpu_at_zero, relay_cpu_at_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e6),
        _ => None,
    };
    let relay = RelayReport {
        one_way_ms: args.rtt_ms / 2.0,
        load_cpu_percent_of_one_core: load_cpu_ms.map(|ms| ms / (load_s * 1000.0) * 100.0),
        cpu_ms_per_mib: relay_stats
            .cpu_ms
            .filter(|_| relay_stats.bytes > 0)
            .map(|ms| ms / (relay_stats.bytes as f64 / 1_048_576.0)),
        load_cpu_ms,
        stats: relay_stats,
    };
    let outcome_count = |o: Outcome| events.iter().filter(|e| e.outcome == o).count();
    let mut warnings = run.warnings.clone();
    warnings.extend(check.warnings.iter().map(|w| format!("checker: {w}")));
    let summary_line = format!(
        "{}: {} in {}; {} acknowledged write(s) lost; linearizable: {}; RTO {}; {} operations",
        verdict,
        scenario.name,
        fault_dc_name,
        lost_writes.len(),
        match check.linearizable {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "undecided",
        },
        rto.rto_ms.map_or("n/a".into(), |v| format!("{v:.0} ms")),
        events.len()
    );
    let report = Report {
        schema: report::SCHEMA,
        scenario: scenario.name.to_owned(),
        seed,
        fault_dc: fault_dc_name.clone(),
        fault_dc_reason: first.reason.clone(),
        verdict,
        history_verdict,
        linearizable: check.linearizable,
        acknowledged_writes_lost: lost_writes.len(),
        rto_ms: rto.rto_ms,
        heal_max_gap_ms: measurements.heal.as_ref().and_then(|h| h.max_gap_ms),
        hypothesis: scenario.hypothesis(&fault_dc_name),
        summary: summary_line,
        checks,
        lost_writes,
        misplaced_writes: misplaced,
        mode: plan.mode.as_str().to_owned(),
        mode_note: (plan.mode == Mode::Loopback).then(|| {
            "Process-only mode on loopback: the datacenters share one network namespace and the machine's \
             addresses; only the userspace relay separates them (no nftables), so a process could bypass a cut. \
             Weaker than the namespace lab."
                .to_owned()
        }),
        topology,
        settings: Settings {
            duration_s: args.duration,
            fault_at_s: args.fault_at,
            restore_after_s: plan.restore_after(),
            clients_per_dc: args.clients,
            nodes_per_dc: args.nodes_per_dc,
            rtt_ms: args.rtt_ms,
            keys: args.keys,
            key_prefix: KEY_PREFIX.into(),
            mix: "get 40, put 30, cas 20, delete 10".into(),
            op_timeout_ms: args.op_timeout_ms,
            rate_per_client: args.rate,
            heartbeat_ms: HEARTBEAT_MS,
            election_timeout_ms: args.election_timeout_ms,
            snapshot_entries: args.snapshot_entries,
            check_budget_s: args.check_budget,
            max_rto_ms: args.max_rto_ms,
            failpoints: std::env::var("FAILPOINTS").ok(),
        },
        timeline: TimelineReport {
            clock_zero_ns: zero,
            fault_s: run.t(first.record.start_ns),
            fault_done_s: run.t(first.record.done_ns),
            restore_s: first.restored_ns.map(|r| run.t(r)),
            end_s: run.t(end),
            leader_before: first.leader_before.clone(),
            leader_after,
            events: {
                let mut m = run.moments.clone();
                m.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
                m
            },
        },
        measurements,
        catch_up: catch_ups.first().map(|(_, c)| c.clone()),
        replicas: Some(agreement),
        relay,
        history: HistorySummary {
            file: "history.jsonl".into(),
            events: events.len(),
            ok: outcome_count(Outcome::Ok),
            fail: outcome_count(Outcome::Fail),
            unknown: outcome_count(Outcome::Unknown),
            final_read: final_read.as_ref().ok().map(|r| (r.member.clone(), r.revision)),
            warnings: history_warnings,
        },
        check,
        started_at: report::utc(started_wall),
        duration_s: (monotonic_ns() - started) as f64 / 1e9,
        firebreak_version: env!("CARGO_PKG_VERSION").into(),
        warnings,
        workloads,
        faults: struck
            .iter()
            .zip(&fault_rtos)
            .map(|(s, rto)| FaultReport {
                kind: s.fault.map_or("restart", dc_fault_name).to_owned(),
                dc: dc_names[s.dc].clone(),
                member: s.member.clone(),
                reason: s.reason.clone(),
                t_s: run.t(s.record.start_ns),
                done_s: run.t(s.record.done_ns),
                restored_s: s.restored_ns.map(|r| run.t(r)),
                processes: s.record.processes.clone(),
                leader_before: s.leader_before.clone(),
                rto_ms: *rto,
                power_loss: s.power_loss.clone(),
            })
            .collect(),
    };
    report.write_json(dir)?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html::render(&report, &events))
        .map_err(DrillError::io("cannot write the report", &html_path))?;
    Ok(report)
}

fn topology_of(lab: &Lab, client_ids: &[Vec<u64>]) -> Topology {
    Topology {
        mode: lab.plan.mode.as_str().to_owned(),
        datacenters: (0..DCS)
            .map(|dc| DcTopology {
                name: AddressPlan::dc_name(dc),
                namespace: lab.namespace(dc),
                subnet: lab.plan.subnet(dc),
                gateway: lab.plan.gateway(dc).to_string(),
                members: lab.members.iter().filter(|m| m.dc == dc).cloned().collect(),
                clients: client_ids[dc].clone(),
            })
            .collect(),
        nftables_table: lab.nft_table(),
    }
}
