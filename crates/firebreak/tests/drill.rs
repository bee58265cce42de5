//! The fire drill end to end (issue 3), on real network namespaces:
//!
//! - short drills of `fire`, `isolate` and `pause` PASS with no
//!   acknowledged write lost;
//! - a build with the `ack-before-replication` failpoint, burning the
//!   leader's datacenter, FAILs with the lost writes listed;
//! - `firebreak check` on each saved history prints the report's verdict.
//!
//! They need root (namespaces, veths, nftables). Without it they skip with a
//! message, except in CI (`CI` set), where they must run. The drills run one
//! at a time (a lock), since each loads the whole machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;

use common::{failpoints_binary, BIN};

/// Drills run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Why namespaces cannot be used here, if they cannot (probed once).
fn netns_unavailable() -> Option<String> {
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROBE.get_or_init(probe_netns).clone()
}

fn probe_netns() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let name = format!("fbdrilltest{}", std::process::id());
    let added = Command::new("ip")
        .args(["netns", "add", &name])
        .stderr(Stdio::null())
        .status();
    let _ = Command::new("ip")
        .args(["netns", "del", &name])
        .stderr(Stdio::null())
        .status();
    match added {
        Ok(s) if s.success() => None,
        _ => Some("cannot create a network namespace".into()),
    }
}

/// Whether the drill tests can run; in CI they must.
fn runnable(test: &str) -> bool {
    match netns_unavailable() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("{test}: in CI the drill must run, but {why}"),
        Some(why) => {
            eprintln!("skipping {test}: {why} (the drill needs root for network namespaces)");
            false
        }
    }
}

/// Whether the power-cut layer (FUSE) can run here; in CI it must.
fn fuse_runnable(test: &str) -> bool {
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("/dev/fuse is missing")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: in CI the power-loss drill must run, but {why}")
        }
        Some(why) => {
            eprintln!("skipping {test}: {why} (power cuts need FUSE)");
            false
        }
    }
}

/// A drill process, stopped (SIGTERM, so it removes what it created) if the
/// test ends before it does.
struct DrillProcess {
    child: Option<Child>,
}

impl Drop for DrillProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The outcome of one drill.
struct Outcome {
    code: Option<i32>,
    report: serde_json::Value,
    out: PathBuf,
    log: String,
    /// The report directory's parent, removed when the test ends.
    _dir: Option<tempfile::TempDir>,
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `bin drill` with `args`, waits (at most `limit`), and reads the report.
fn run_drill(bin: &Path, out: &Path, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Outcome {
    let log_path = out.with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("drill")
        .args(args)
        .arg("--out")
        .arg(out)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // The drill dies (and cleans up, on SIGTERM) with this test process.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut guard = DrillProcess {
        child: Some(cmd.spawn().expect("start firebreak drill")),
    };
    let pid = guard.child.as_ref().unwrap().id();
    let code = loop {
        if let Some(status) = guard.child.as_mut().unwrap().try_wait().unwrap() {
            guard.child = None;
            break status.code();
        }
        if started.elapsed() > limit {
            drop(guard);
            panic!(
                "the drill took longer than {limit:?}; its output:\n{}",
                tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 60)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!(
        "drill {args:?} took {:.1} s, exit code {code:?}",
        started.elapsed().as_secs_f64()
    );
    assert_no_leftovers(pid, out, &log);
    let report = std::fs::read_to_string(out.join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}); the drill said:\n{}", tail(&log, 60)));
    let report: serde_json::Value = serde_json::from_str(&report).expect("report.json is JSON");
    eprintln!(
        "  {} {} in {}: RTO {} ms, {} acknowledged writes lost, {} operations, relay CPU {:.1} % of one core",
        report["verdict"],
        report["scenario"],
        report["fault_dc"],
        report["rto_ms"].as_f64().map_or("n/a".into(), |v| format!("{v:.0}")),
        report["acknowledged_writes_lost"],
        report["history"]["events"],
        report["relay"]["load_cpu_percent_of_one_core"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    Outcome {
        code,
        report,
        out: out.to_owned(),
        log,
        _dir: None,
    }
}

/// Nothing the drill with `pid`, reporting to `out`, created is left.
fn assert_no_leftovers(pid: u32, out: &Path, log: &str) {
    let listing = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let mine = format!("fbdrill{pid}");
    for (what, text) in [
        ("namespace", listing("ip", &["netns", "list"])),
        ("nftables table", listing("nft", &["list", "tables"])),
    ] {
        assert!(
            !text.contains(&mine),
            "a {what} of the drill is left: {text}\n{}",
            tail(log, 30)
        );
    }
    let links = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    assert!(
        !links.contains(&format!("fbd{pid}h")),
        "a link of the drill is left: {links}"
    );
    let temp = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(&format!("{mine}-")));
    assert!(
        !temp,
        "the drill's temporary data is left in {}",
        std::env::temp_dir().display()
    );
    // Members and clients carry the report directory on their command line.
    let processes = listing("pgrep", &["-f", &out.to_string_lossy()]);
    assert!(
        processes.trim().is_empty(),
        "processes of the drill are left: {processes}"
    );
}

/// `firebreak check` on the drill's history prints the report's verdict.
fn assert_check_agrees(outcome: &Outcome) {
    let history = outcome.out.join("history.jsonl");
    let out = Command::new(BIN).arg("check").arg(&history).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict = outcome.report["verdict"].as_str().unwrap();
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with("verdict: "))
        .unwrap_or_else(|| panic!("no verdict line in:\n{stdout}"));
    assert_eq!(line, format!("verdict: {verdict}"), "firebreak check said:\n{stdout}");
    let history_verdict = outcome.report["history_verdict"].as_str().unwrap();
    assert!(
        stdout.contains(&format!("{:<28}", "linearizable")),
        "the history checks are listed:\n{stdout}"
    );
    let expected_code = match verdict {
        "PASS" => 0,
        "FAIL" => 1,
        _ => 2,
    };
    assert_eq!(out.status.code(), Some(expected_code), "{stdout}");
    eprintln!("firebreak check: {line} (history alone: {history_verdict})");
}

fn check_names(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A short drill that must pass: `extra` flags replace the defaults of the
/// same name.
fn passing_drill(scenario: &str, seed: &str, extra: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(scenario);
    let mut args = vec!["--scenario", scenario, "--seed", seed];
    for (flag, default) in [("--duration", "25"), ("--fault-at", "8"), ("--restore-after", "8")] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    let mut outcome = run_drill(Path::new(BIN), &out, &args, &[], Duration::from_secs(240));
    outcome._dir = Some(dir);
    let r = &outcome.report;
    let diagnosis = format!(
        "checks: {:#}\nwarnings: {:#}\ndrill output:\n{}",
        r["checks"],
        r["warnings"],
        tail(&outcome.log, 40)
    );
    assert_eq!(r["verdict"], "PASS", "{scenario} did not pass; {diagnosis}");
    assert_eq!(outcome.code, Some(0), "{diagnosis}");
    assert_eq!(r["scenario"], scenario);
    assert_eq!(r["acknowledged_writes_lost"], 0, "{diagnosis}");
    assert_eq!(r["linearizable"], true, "{diagnosis}");
    assert_eq!(r["mode"], "netns");
    assert!(r["rto_ms"].as_f64().is_some(), "{diagnosis}");
    assert!(
        r["history"]["ok"].as_u64().unwrap() > 100,
        "too little load: {:#}",
        r["history"]
    );
    assert!(r["relay"]["cpu_ms"].as_f64().is_some());
    for file in ["history.jsonl", "report.html", "report.json"] {
        assert!(outcome.out.join(file).exists(), "{file} is missing");
    }
    for dc in r["topology"]["datacenters"].as_array().unwrap() {
        for m in dc["members"].as_array().unwrap() {
            let log = outcome
                .out
                .join("logs")
                .join(format!("{}.log", m["name"].as_str().unwrap()));
            assert!(log.exists(), "{} is missing", log.display());
        }
    }
    let html = std::fs::read_to_string(outcome.out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("PASS"),
        "report.html has no plot or verdict"
    );
    assert_check_agrees(&outcome);
    outcome
}

#[test]
fn fire_drill_passes_with_nothing_lost() {
    if !runnable("fire_drill_passes_with_nothing_lost") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = passing_drill("fire", "101", &[]);
    let checks = check_names(&outcome.report);
    assert!(
        checks.contains(&("restored_dc_caught_up".into(), "pass".into())),
        "{checks:?}"
    );
    assert!(checks.contains(&("replicas_agree".into(), "pass".into())), "{checks:?}");
}

#[test]
fn isolate_drill_passes_and_the_cut_datacenter_serves_nothing() {
    if !runnable("isolate_drill_passes_and_the_cut_datacenter_serves_nothing") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = passing_drill("isolate", "102", &[]);
    let checks = check_names(&outcome.report);
    assert!(
        checks.contains(&("isolated_dc_served_nothing".into(), "pass".into())),
        "{checks:?}"
    );
}

#[test]
fn pause_drill_passes_with_nothing_lost() {
    if !runnable("pause_drill_passes_with_nothing_lost") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // While a datacenter is frozen its members' connections stay open and
    // unanswered; the survivors currently serve again only a few seconds
    // after electing a leader, often just after the frozen one resumes
    // (RTO 7 to 9.5 s here, against 3.5 to 4 s for a fire). The bound is
    // relaxed for this scenario so that the test judges safety; the RTO is
    // in the report.
    passing_drill("pause", "103", &["--max-rto-ms", "15000"]);
}

#[test]
fn a_leader_that_acks_before_replicating_fails_the_drill() {
    if !runnable("a_leader_that_acks_before_replicating_fails_the_drill") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = failpoints_binary();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("failpoint");
    let outcome = run_drill(
        &bin,
        &out,
        &[
            "--scenario",
            "leader-fire",
            "--duration",
            "25",
            "--fault-at",
            "8",
            "--restore-after",
            "8",
            "--seed",
            "104",
        ],
        &[("FAILPOINTS", "ack-before-replication=return")],
        Duration::from_secs(240),
    );
    let r = &outcome.report;
    let diagnosis = format!("checks: {:#}\ndrill output:\n{}", r["checks"], tail(&outcome.log, 40));
    assert_eq!(r["verdict"], "FAIL", "{diagnosis}");
    assert_eq!(outcome.code, Some(1), "{diagnosis}");
    assert_eq!(r["settings"]["failpoints"], "ack-before-replication=return");
    assert_eq!(r["scenario"], "leader-fire");
    assert_eq!(
        r["timeline"]["leader_before"].as_str().map(|l| &l[..3]),
        r["fault_dc"].as_str(),
        "the fire must strike the leader's datacenter"
    );
    let lost = r["acknowledged_writes_lost"].as_u64().unwrap();
    let listed = r["lost_writes"].as_array().unwrap();
    assert!(lost > 0, "no lost write found; {diagnosis}");
    assert_eq!(listed.len() as u64, lost, "every lost write is listed");
    for w in listed {
        assert_eq!(w["kind"], "put", "the failpoint only loses puts: {w:#}");
        assert!(w["acknowledged_revision"].as_u64().is_some(), "{w:#}");
        assert!(!w["evidence"].as_array().unwrap().is_empty(), "{w:#}");
    }
    // The lost writes are in the history, acknowledged.
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    let first = listed[0]["op"].as_u64().unwrap();
    let line = history
        .lines()
        .find(|l| l.starts_with(&format!("{{\"id\":{first},")))
        .expect("the lost write is in history.jsonl");
    assert!(line.contains("\"outcome\":\"ok\""), "{line}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Lost writes"), "report.html lists the lost writes");
    assert_check_agrees(&outcome);
}

/// The workload checks of a drill run with the default (mixed) workload:
/// each of bank, ranges, locks and watches ran and passed.
fn assert_workloads_passed(report: &serde_json::Value) {
    let checks = check_names(report);
    for name in ["bank", "ranges", "locks", "watches"] {
        assert!(
            checks.contains(&(name.into(), "pass".into())),
            "the {name} workload did not run or did not pass: {checks:?}"
        );
    }
}

/// A drill with a failpoint that must FAIL, with `check` among the failed
/// checks.
fn failing_drill(scenario: &str, seed: &str, failpoints: &str, check: &str, extra: &[&str]) -> Outcome {
    let bin = failpoints_binary();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(scenario);
    let mut args = vec![
        "--scenario",
        scenario,
        "--duration",
        "25",
        "--fault-at",
        "8",
        "--restore-after",
        "10",
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    let mut outcome = run_drill(
        &bin,
        &out,
        &args,
        &[("FAILPOINTS", failpoints)],
        Duration::from_secs(300),
    );
    outcome._dir = Some(dir);
    let r = &outcome.report;
    let diagnosis = format!("checks: {:#}\ndrill output:\n{}", r["checks"], tail(&outcome.log, 40));
    assert_eq!(
        r["verdict"], "FAIL",
        "{failpoints} did not fail the {scenario} drill; {diagnosis}"
    );
    assert_eq!(outcome.code, Some(1), "{diagnosis}");
    assert_eq!(r["settings"]["failpoints"], failpoints);
    assert!(
        check_names(r).contains(&(check.into(), "fail".into())),
        "{failpoints}: the {check} check did not fail; {diagnosis}"
    );
    outcome
}

#[test]
fn restart_drill_passes_with_the_leader_restarted_again_and_again() {
    if !runnable("restart_drill_passes_with_the_leader_restarted_again_and_again") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = passing_drill("restart", "106", &[]);
    let faults = outcome.report["faults"].as_array().unwrap();
    assert!(faults.len() >= 3, "too few restarts: {faults:#?}");
    assert!(faults.iter().all(|f| f["kind"] == "restart" && f["member"].is_string()));
    assert!(
        faults.iter().any(|f| f["reason"].as_str().unwrap().contains("leader")),
        "the leader was never restarted: {faults:#?}"
    );
    assert_workloads_passed(&outcome.report);
}

#[test]
fn power_loss_drill_passes_and_keeps_what_members_applied() {
    if !runnable("power_loss_drill_passes_and_keeps_what_members_applied")
        || !fuse_runnable("power_loss_drill_passes_and_keeps_what_members_applied")
    {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = passing_drill("power-loss", "107", &[]);
    let checks = check_names(&outcome.report);
    assert!(
        checks.contains(&("power_loss_kept_applied".into(), "pass".into())),
        "{checks:?}"
    );
    let cut = &outcome.report["faults"][0]["power_loss"];
    assert!(
        cut.as_array()
            .unwrap()
            .iter()
            .all(|m| m["applied_index_before"].as_u64().is_some()
                && m["durable_index_after"].as_u64() >= m["applied_index_before"].as_u64()),
        "{cut:#}"
    );
}

#[test]
fn leader_isolate_drill_passes_and_no_lock_is_held_twice() {
    if !runnable("leader_isolate_drill_passes_and_no_lock_is_held_twice") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = passing_drill("leader-isolate", "108", &[]);
    let r = &outcome.report;
    assert_eq!(
        r["timeline"]["leader_before"].as_str().map(|l| &l[..3]),
        r["fault_dc"].as_str(),
        "the cut must strike the leader's datacenter"
    );
    assert!(check_names(r).contains(&("isolated_dc_served_nothing".into(), "pass".into())));
    assert_workloads_passed(r);
}

#[test]
fn chaos_drill_passes_under_overlapping_faults() {
    if !runnable("chaos_drill_passes_under_overlapping_faults") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = passing_drill("chaos", "109", &["--duration", "40", "--fault-at", "5"]);
    let faults = outcome.report["faults"].as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> = faults.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert!(faults.len() >= 5 && kinds.len() >= 2, "too few faults: {kinds:?}");
}

#[test]
fn a_leader_that_resumes_its_term_after_a_restart_fails_the_drill() {
    if !runnable("a_leader_that_resumes_its_term_after_a_restart_fails_the_drill") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The hole opens only if the leader is back before the followers elect
    // another: with the default 500 ms election timeout a debug build often
    // restarts too slowly to fall into it. A 2 s timeout (a setting users
    // run) keeps the window open, as the slow disk does for the entries.
    failing_drill(
        "restart",
        "110",
        "restart-resumes-leadership=return;leader-log-write=sleep(30)",
        "replicas_agree",
        &["--election-timeout-ms", "2000"],
    );
}

#[test]
fn a_log_that_acknowledges_before_fsync_fails_the_power_loss_drill() {
    if !runnable("a_log_that_acknowledges_before_fsync_fails_the_power_loss_drill")
        || !fuse_runnable("a_log_that_acknowledges_before_fsync_fails_the_power_loss_drill")
    {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = failing_drill(
        "power-loss",
        "111",
        "ack-before-fsync=return",
        "power_loss_kept_applied",
        &[],
    );
    let cut = &outcome.report["faults"][0]["power_loss"][0];
    assert!(
        cut["durable_index_after"].as_u64() < cut["applied_index_before"].as_u64(),
        "{cut:#}"
    );
}

#[test]
fn a_leader_that_renews_leases_without_a_quorum_fails_the_drill() {
    if !runnable("a_leader_that_renews_leases_without_a_quorum_fails_the_drill") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = failing_drill(
        "leader-isolate",
        "112",
        "lease-renew-without-quorum=return",
        "locks",
        &[],
    );
    let locks = outcome.report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "locks")
        .unwrap();
    let first = &locks["anomalies"][0];
    assert_eq!(first["kind"], "overlapping_holds", "{first:#}");
    assert!(
        first["ops"].as_array().unwrap().len() >= 2,
        "the evidence lists both holders: {first:#}"
    );
}

#[test]
fn a_watch_that_skips_events_fails_the_drill() {
    if !runnable("a_watch_that_skips_events_fails_the_drill") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = failing_drill("fire", "113", "watch-skip-event=return(50)", "watches", &[]);
    let watches = outcome.report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "watches")
        .unwrap();
    assert_eq!(watches["anomalies"][0]["kind"], "gap", "{watches:#}");
}

#[test]
fn a_sweep_writes_one_summary_of_its_runs() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let output = Command::new(BIN)
        .args([
            "drill",
            "--no-netns",
            "--scenario",
            "restart",
            "--runs",
            "2",
            "--duration",
            "12",
            "--fault-at",
            "4",
            "--restore-after",
            "5",
            "--seed",
            "114",
            "--out",
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let status = output.status;
    let Ok(table) = std::fs::read_to_string(out.join("sweep.md")) else {
        panic!(
            "no sweep.md; the drill exited with {status}, saying:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json[0]["scenario"], "restart", "{table}");
    assert_eq!(json[0]["runs"], 2, "{table}");
    let verdicts =
        json[0]["pass"].as_u64().unwrap() + json[0]["fail"].as_u64().unwrap() + json[0]["unknown"].as_u64().unwrap();
    assert_eq!(verdicts, 2, "{table}");
    let errors = json[0]["errors"].as_array().expect("errors[]");
    let mut reported = 0;
    for run in ["run-001", "run-002"] {
        if !out.join(run).join("report.json").exists() {
            continue; // a run that ended in an error (listed in errors[])
        }
        reported += 1;
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(run).join("report.json")).unwrap()).unwrap();
        assert_eq!(report["seed"], if run == "run-001" { 114 } else { 115 });
    }
    assert!(table.contains("| restart | 2 |"), "{table}");
    assert_eq!(status.success(), json[0]["pass"] == 2, "{table}");
    // A run that ended in an error is counted, listed, and explained.
    assert_eq!(reported + errors.len(), 2, "{table}");
    for e in errors {
        assert!(table.contains(e["error"].as_str().unwrap()), "{table}");
    }
    if !errors.is_empty() {
        eprintln!(
            "runs ended in an error: {errors:?}; the drill said:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn loopback_drill_runs_without_namespaces() {
    // Loopback mode needs no root; it still starts processes and binds
    // 127.B.d.* addresses, so it takes the lock too.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loopback");
    let outcome = run_drill(
        Path::new(BIN),
        &out,
        &[
            "--no-netns",
            "--duration",
            "15",
            "--fault-at",
            "5",
            "--restore-after",
            "5",
            "--seed",
            "105",
        ],
        &[],
        Duration::from_secs(180),
    );
    let r = &outcome.report;
    let diagnosis = format!("checks: {:#}\ndrill output:\n{}", r["checks"], tail(&outcome.log, 40));
    assert_eq!(r["mode"], "loopback");
    assert!(
        r["mode_note"].as_str().unwrap().contains("Weaker"),
        "{}",
        r["mode_note"]
    );
    assert!(r["topology"]["nftables_table"].is_null());
    assert_eq!(r["verdict"], "PASS", "{diagnosis}");
    assert_eq!(r["acknowledged_writes_lost"], 0, "{diagnosis}");
    assert!(
        r["relay"]["refused"].as_u64().unwrap() > 0,
        "the fire's cut refused connections"
    );
}

#[test]
fn inconsistent_flags_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["drill", "--no-netns", "--duration", "10", "--fault-at", "12", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--fault-at 12 must fall inside the load"), "{stderr}");
    assert!(!dir.path().join("x").exists(), "nothing is created");
    let out = Command::new(BIN)
        .args(["drill", "--no-netns", "--scenario", "leader-fire", "--dc", "dc2"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scenario fire --dc"));
}

#[test]
fn check_rechecks_a_saved_history() {
    let dir = tempfile::tempdir().unwrap();
    let put = r#"{"id":1,"client":1,"dc":"dc1","op":{"type":"put","key":"drill/k00","value":"c1-1"},"invoke_ns":0,"complete_ns":1000,"outcome":"ok","result":{"revision":2}}"#;
    let read = |value: &str, rev: &str| {
        format!(
            r#"{{"id":2,"client":0,"dc":"dc2","op":{{"type":"get","key":"drill/k00"}},"invoke_ns":2000,"complete_ns":3000,"outcome":"ok","result":{{"revision":2,"value":{value}{rev}}}}}"#
        )
    };
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, format!("{put}\n{}\n", read("\"c1-1\"", ",\"mod_revision\":2"))).unwrap();
    let out = Command::new(BIN).arg("check").arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.trim_end().ends_with("verdict: PASS"), "{stdout}");

    // The acknowledged put is missing from the final read.
    let lost = dir.path().join("lost.jsonl");
    std::fs::write(&lost, format!("{put}\n{}\n", read("null", ""))).unwrap();
    let out = Command::new(BIN).arg("check").arg(&lost).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("missing from the final read (ops #1)"), "{stdout}");
    assert!(stdout.trim_end().ends_with("verdict: FAIL"), "{stdout}");
}
