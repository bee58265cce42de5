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

/// How a checked history compares with its known verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judgement {
    /// The checker reached the known verdict.
    Agree,
    /// The checker reached the other verdict.
    Disagree,
    /// The checker decided nothing within its budget: neither agreement
    /// nor disagreement, and never counted as either.
    Undecided,
}

/// The histories of one data set, by judgement.
#[derive(Default)]
struct Tally {
    agreed: usize,
    disagreed: Vec<String>,
    undecided: Vec<String>,
}

impl Tally {
    fn add(&mut self, name: &str, judgement: Judgement) {
        match judgement {
            Judgement::Agree => self.agreed += 1,
            Judgement::Disagree => self.disagreed.push(name.to_owned()),
            Judgement::Undecided => self.undecided.push(name.to_owned()),
        }
    }

    fn total(&self) -> usize {
        self.agreed + self.disagreed.len() + self.undecided.len()
    }

    fn summary(&self, set: &str, took: Duration) -> String {
        format!(
            "{set}: {} histories in {took:.2?}; {} agree, {} disagree, {} undecided",
            self.total(),
            self.agreed,
            self.disagreed.len(),
            self.undecided.len()
        )
    }
}

/// Checks one history against `expected`, printing undecided ones loudly.
fn judge(name: &str, events: &[HistoryEvent], expected: bool) -> Judgement {
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
            Judgement::Undecided
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
            Judgement::Agree
        }
        got => {
            println!("MISMATCH {name}: expected {want}, got {got}\n{}", report.render_text());
            Judgement::Disagree
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
    let mut tally = Tally::default();
    for row in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (log, verdict) = row.split_once('\t').expect("log<TAB>verdict");
        let expected: bool = verdict.trim().parse().expect("true or false");
        let events = read_jepsen_log(dir.join(log)).unwrap_or_else(|e| panic!("{log}: {e}"));
        tally.add(log, judge(log, &events, expected));
    }
    println!("{}", tally.summary("jepsen-etcd", started.elapsed()));
    assert_eq!(tally.total(), 60, "expected.tsv should list 60 logs");
    assert!(tally.disagreed.is_empty(), "wrong verdicts: {:?}", tally.disagreed);
    // Undecided histories are not agreement; at most 5% of them are tolerated.
    assert!(
        tally.undecided.len() * 20 <= tally.total(),
        "too many undecided histories ({} of {}, at most 5% allowed): {:?}",
        tally.undecided.len(),
        tally.total(),
        tally.undecided
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
    let mut tally = Tally::default();
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
        tally.add(&name, judge(&name, &events, expected));
    }
    println!("{}", tally.summary("porcupine-kv", started.elapsed()));
    assert!(files.len() >= 4, "expected at least 4 histories");
    assert!(tally.disagreed.is_empty(), "wrong verdicts: {:?}", tally.disagreed);
    assert!(tally.undecided.is_empty(), "undecided histories: {:?}", tally.undecided);
}
