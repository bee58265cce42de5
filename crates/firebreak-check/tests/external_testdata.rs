//! Checks every history in the shared outside test data against its known
//! verdict: Jepsen etcd register logs (`jepsen-etcd/expected.tsv`) and
//! porcupine key-value histories (`-ok` / `-bad`). Skips, saying why, when
//! the data is not present next to the workspace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use firebreak_check::import::jepsen::read_jepsen_log;
use firebreak_check::import::porcupine_kv::read_porcupine_kv;
use firebreak_check::{check_history, Budget, CheckReport, HistoryEvent, Verdict};

/// Per-history search budget.
const PER_HISTORY: Duration = Duration::from_secs(10);

fn testdata() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIP: outside test data not found at {} (it lives in shared/ beside the \
             workspace); nothing checked",
            dir.display()
        );
        None
    }
}

/// Checks one history; returns whether it agreed with `expected`, printing
/// undecided ones loudly.
fn judge(name: &str, events: &[HistoryEvent], expected: bool, undecided: &mut Vec<String>) -> bool {
    let started = Instant::now();
    let budget = Budget::with_duration(PER_HISTORY).minimize(Some(Duration::from_millis(500)));
    let report: CheckReport = check_history(events, budget);
    let took = started.elapsed();
    let want = if expected { Verdict::Pass } else { Verdict::Fail };
    println!(
        "{name}: {} events, expected {want}, got {} in {took:.2?} ({} steps)",
        events.len(),
        report.verdict,
        report.stats.steps
    );
    match report.verdict {
        Verdict::Unknown => {
            println!("!!!!! {name}: UNDECIDED within {PER_HISTORY:?} (expected {want}) !!!!!");
            undecided.push(name.to_owned());
            true
        }
        got if got == want => {
            if got == Verdict::Fail {
                // Non-linearizable: the failure must come from the search
                // (imported histories have no revisions) and carry a
                // counterexample.
                assert_eq!(report.linearizable, Some(false), "{name}");
                assert!(
                    report.keys.iter().any(|k| k.counterexample.is_some()),
                    "{name}: FAIL without a counterexample"
                );
            } else {
                assert_eq!(report.linearizable, Some(true), "{name}");
            }
            true
        }
        got => {
            println!("MISMATCH {name}: expected {want}, got {got}\n{}", report.render_text());
            false
        }
    }
}

#[test]
fn jepsen_etcd_histories_match_known_verdicts() {
    let Some(root) = testdata() else {
        return;
    };
    let dir = root.join("jepsen-etcd");
    let table = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    let started = Instant::now();
    let (mut checked, mut wrong, mut undecided) = (0, Vec::new(), Vec::new());
    for row in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (log, verdict) = row.split_once('\t').expect("log<TAB>verdict");
        let expected: bool = verdict.trim().parse().expect("true or false");
        let events = read_jepsen_log(dir.join(log)).unwrap_or_else(|e| panic!("{log}: {e}"));
        if !judge(log, &events, expected, &mut undecided) {
            wrong.push(log.to_owned());
        }
        checked += 1;
    }
    println!(
        "jepsen-etcd: {checked} histories in {:.2?}; {} wrong, {} undecided",
        started.elapsed(),
        wrong.len(),
        undecided.len()
    );
    assert_eq!(checked, 60, "expected.tsv should list 60 logs");
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:?}");
    assert!(
        undecided.len() * 20 <= checked,
        "too many undecided histories: {undecided:?}"
    );
}

#[test]
fn porcupine_kv_histories_match_known_verdicts() {
    let Some(root) = testdata() else {
        return;
    };
    let dir = root.join("porcupine-kv");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("porcupine-kv dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let started = Instant::now();
    let (mut wrong, mut undecided) = (Vec::new(), Vec::new());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = if name.contains("-ok") {
            true
        } else if name.contains("-bad") {
            false
        } else {
            panic!("{name}: neither -ok nor -bad");
        };
        let events = read_porcupine_kv(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        if !judge(&name, &events, expected, &mut undecided) {
            wrong.push(name);
        }
    }
    println!(
        "porcupine-kv: {} histories in {:.2?}; {} wrong, {} undecided",
        files.len(),
        started.elapsed(),
        wrong.len(),
        undecided.len()
    );
    assert!(files.len() >= 4, "expected at least 4 histories");
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:?}");
    assert!(undecided.is_empty(), "undecided: {undecided:?}");
}
