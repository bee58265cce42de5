//! The checks of the workloads other than registers ([`check_workloads`]):
//! each client's file `clients/c<id>.<workload>.jsonl` is read, the files
//! of one workload are merged, and `firebreak-check`'s checker of that
//! workload judges them, against the store's history where it needs it
//! ([`firebreak_check::bank`], [`firebreak_check::ranges`],
//! [`firebreak_check::locks`], [`firebreak_check::watches`]).
//!
//! # Correctness
//!
//! - A workload that no client ran (no file) produces no check; one that
//!   ran produces exactly one, PASS, FAIL or UNKNOWN by its checker's rules
//!   (FAIL only with anomalies, each with the operations that show it).
//! - Without the store's history (it could not be read), the checks that
//!   need it say UNKNOWN, never PASS.
//! - Times in the anomalies are relative to the drill's time zero, as in
//!   `history.jsonl`; operation ids are those of the merged workload
//!   history (`1..` in invocation order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firebreak_check::bank::{check_bank, BankEvent, BANK};
use firebreak_check::locks::{check_locks, LockEvent, LOCKS};
use firebreak_check::ranges::{check_ranges, RangeEvent, RANGES};
use firebreak_check::recorded::{merge_recorded, parse_recorded, Recorded};
use firebreak_check::watches::{check_watches, parse_watch_records, WatchRecord, WATCHES};
use firebreak_check::{StoreLog, Verdict, WorkloadAnomaly, WorkloadReport};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::store_history::StoreHistory;
use crate::workload::recorder::parse_workload_file_name;

/// The check of one workload, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadCheck {
    /// `bank`, `ranges`, `locks` or `watches`.
    pub name: String,
    /// PASS, FAIL or UNKNOWN.
    pub status: Verdict,
    /// One or two sentences with counts.
    pub detail: String,
    /// Each anomaly with the operations that show it.
    pub anomalies: Vec<WorkloadAnomaly>,
    /// Anomalies found but not listed, by kind.
    pub omitted: BTreeMap<String, u64>,
    /// The checker's counts (operations by kind and outcome, observations
    /// checked, …).
    pub counts: BTreeMap<String, u64>,
    /// Problems with the files (torn lines, …).
    pub warnings: Vec<String>,
}

impl From<WorkloadReport> for WorkloadCheck {
    fn from(report: WorkloadReport) -> WorkloadCheck {
        WorkloadCheck {
            name: report.workload,
            status: report.verdict,
            detail: report.detail,
            anomalies: report.anomalies,
            omitted: report.omitted,
            counts: report.counts,
            warnings: report.warnings,
        }
    }
}

/// Checks every workload other than registers whose files are in
/// `clients_dir`, in the order bank, ranges, locks, watches. `store` is the
/// store's history (`None` if it could not be read); `zero_ns` the drill's
/// time zero (`CLOCK_MONOTONIC`).
pub fn check_workloads(clients_dir: &Path, store: Option<&StoreHistory>, zero_ns: u64) -> Vec<WorkloadCheck> {
    check_workloads_with(clients_dir, store.map(|s| &s.log), zero_ns)
}

/// [`check_workloads`] with the store's history as a plain [`StoreLog`].
pub fn check_workloads_with(clients_dir: &Path, store: Option<&StoreLog>, zero_ns: u64) -> Vec<WorkloadCheck> {
    let files = workload_files(clients_dir);
    let mut checks = Vec::new();
    if files.contains_key(BANK) {
        let (events, warnings): (Vec<BankEvent>, _) = load(&files[BANK], zero_ns);
        checks.push(with_warnings(check_bank(&events, store), warnings));
    }
    if files.contains_key(RANGES) {
        let (events, warnings): (Vec<RangeEvent>, _) = load(&files[RANGES], zero_ns);
        checks.push(with_warnings(check_ranges(&events, store), warnings));
    }
    if files.contains_key(LOCKS) {
        let (events, warnings): (Vec<LockEvent>, _) = load(&files[LOCKS], zero_ns);
        checks.push(with_warnings(check_locks(&events), warnings));
    }
    if files.contains_key(WATCHES) {
        let (records, warnings) = load_watches(&files[WATCHES], zero_ns);
        checks.push(with_warnings(check_watches(&records, store), warnings));
    }
    checks
}

fn with_warnings(report: WorkloadReport, warnings: Vec<String>) -> WorkloadCheck {
    let mut check = WorkloadCheck::from(report);
    let mut all = warnings;
    all.append(&mut check.warnings);
    check.warnings = all;
    check
}

/// The workload files in `clients_dir`, by workload name, in client order.
pub fn workload_files(clients_dir: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut files: BTreeMap<String, BTreeMap<u64, PathBuf>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(clients_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((id, workload)) = parse_workload_file_name(&name) {
                files.entry(workload.to_owned()).or_default().insert(id, entry.path());
            }
        }
    }
    files.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect()
}

fn read(path: &Path, warnings: &mut Vec<String>) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        warnings.push(format!("{}: {e}", path.display()));
        String::new()
    })
}

/// Reads and merges the records of one workload (bank, ranges or locks):
/// ids `1..` in invocation order, times since `zero_ns`.
pub fn load<O, R>(paths: &[PathBuf], zero_ns: u64) -> (Vec<Recorded<O, R>>, Vec<String>)
where
    O: DeserializeOwned,
    R: DeserializeOwned,
{
    let mut warnings = Vec::new();
    let mut per_client = Vec::new();
    for path in paths {
        let text = read(path, &mut warnings);
        let (records, mut w) = parse_recorded(&text, &path.display().to_string());
        warnings.append(&mut w);
        per_client.push(records);
    }
    (merge_recorded(per_client, zero_ns), warnings)
}

/// Reads the watch records of every client, in file order, times since
/// `zero_ns`.
pub fn load_watches(paths: &[PathBuf], zero_ns: u64) -> (Vec<WatchRecord>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut all = Vec::new();
    for path in paths {
        let text = read(path, &mut warnings);
        let (records, mut w) = parse_watch_records(&text, &path.display().to_string());
        warnings.append(&mut w);
        all.extend(records.into_iter().map(|mut r| {
            r.t_ns = r.t_ns.saturating_sub(zero_ns);
            r
        }));
    }
    (all, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_check::bank::{BankOp, BankResult};
    use firebreak_check::locks::{LockOp, LockResult};
    use firebreak_check::ranges::{RangeOp, RangeResult};
    use firebreak_check::watches::{EventKind, WatchEntry, WatchEvent};
    use firebreak_check::{KeyChange, Kv};

    use crate::workload::recorder::{workload_history_path, LineRecorder};

    fn write_bank(dir: &Path, client: u64, reads: &[(u64, &str)]) {
        let recorder = LineRecorder::open(&workload_history_path(&dir.join(format!("c{client}.jsonl")), BANK)).unwrap();
        let init = BankEvent::invoked(
            recorder.next_id(),
            client,
            None,
            BankOp::Init {
                accounts: vec!["d/bank/a00".into(), "d/bank/a01".into()],
                balance: 5,
            },
            1_000,
        );
        recorder.record(&init).unwrap();
        recorder
            .record(&init.ok(
                2_000,
                BankResult::Init {
                    created: true,
                    revision: 2,
                },
            ))
            .unwrap();
        for (revision, a01) in reads {
            let read = BankEvent::invoked(
                recorder.next_id(),
                client,
                None,
                BankOp::Read {
                    prefix: "d/bank/".into(),
                    serializable: false,
                },
                3_000,
            );
            recorder.record(&read).unwrap();
            let kvs = vec![
                Kv {
                    key: "d/bank/a00".into(),
                    value: "5".into(),
                    mod_revision: 2,
                    create_revision: 2,
                },
                Kv {
                    key: "d/bank/a01".into(),
                    value: a01.to_string(),
                    mod_revision: 2,
                    create_revision: 2,
                },
            ];
            recorder
                .record(&read.ok(
                    4_000,
                    BankResult::Read {
                        revision: *revision,
                        kvs,
                    },
                ))
                .unwrap();
        }
        // A client killed while writing its last line.
        let path = workload_history_path(&dir.join(format!("c{client}.jsonl")), BANK);
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        std::io::Write::write_all(&mut file, b"{\"id\":9,\"cli").unwrap();
    }

    fn store() -> StoreLog {
        StoreLog::from_changes(
            "d/",
            [
                (
                    2,
                    vec![KeyChange::put("d/bank/a00", "5"), KeyChange::put("d/bank/a01", "5")],
                ),
                (3, vec![KeyChange::put("d/w/x", "1")]),
            ],
        )
    }

    #[test]
    fn only_workloads_that_ran_are_checked_and_files_merge() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_workloads_with(dir.path(), None, 0).is_empty());
        // A register history is not a workload file.
        std::fs::write(dir.path().join("c1.jsonl"), "").unwrap();
        write_bank(dir.path(), 1, &[(2, "5")]);
        write_bank(dir.path(), 2, &[(2, "5"), (3, "5")]);
        let checks = check_workloads_with(dir.path(), Some(&store()), 500);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "bank");
        assert_eq!(checks[0].status, Verdict::Pass, "{:#?}", checks[0]);
        assert_eq!(checks[0].counts["reads_checked"], 3);
        assert_eq!(checks[0].warnings.len(), 2, "{:?}", checks[0].warnings);
        let (events, _) = load::<BankOp, BankResult>(&workload_files(dir.path())["bank"], 500);
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(events[0].invoke_ns, 500);

        write_bank(dir.path(), 3, &[(3, "4")]);
        let checks = check_workloads_with(dir.path(), Some(&store()), 0);
        assert_eq!(checks[0].status, Verdict::Fail);
        assert_eq!(checks[0].anomalies[0].kind, "wrong_total");
        let json = serde_json::to_value(&checks[0]).unwrap();
        assert_eq!(json["status"], "FAIL");
        assert!(json["anomalies"][0]["ops"][0]["op"]["type"] == "read", "{json}");
    }

    #[test]
    fn every_workload_has_its_check_and_the_store_is_needed_where_it_should_be() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("c4.jsonl");
        let ranges = LineRecorder::open(&workload_history_path(&history, RANGES)).unwrap();
        let range = RangeEvent::invoked(
            1,
            4,
            None,
            RangeOp::Range {
                prefix: "d/w/".into(),
                revision: None,
                serializable: false,
            },
            10,
        );
        ranges.record(&range).unwrap();
        let kvs = vec![Kv {
            key: "d/w/x".into(),
            value: "1".into(),
            mod_revision: 3,
            create_revision: 3,
        }];
        ranges
            .record(&range.ok(20, RangeResult::Range { revision: 3, kvs }))
            .unwrap();
        let locks = LineRecorder::open(&workload_history_path(&history, LOCKS)).unwrap();
        let grant = LockEvent::invoked(1, 4, None, LockOp::Grant { ttl: 3 }, 10);
        locks
            .record(&grant.ok(
                20,
                LockResult::Grant {
                    lease: 7,
                    ttl: 3,
                    revision: 1,
                },
            ))
            .unwrap();
        let lock = LockEvent::invoked(
            2,
            4,
            None,
            LockOp::Lock {
                name: "L".into(),
                lease: 7,
            },
            30,
        );
        locks
            .record(&lock.ok(
                40,
                LockResult::Lock {
                    key: "L/7".into(),
                    revision: 4,
                },
            ))
            .unwrap();
        let watches = LineRecorder::open(&workload_history_path(&history, WATCHES)).unwrap();
        let record = |t_ns, entry| WatchRecord {
            client: 4,
            dc: None,
            session: 1,
            t_ns,
            entry,
        };
        watches
            .record(&record(
                10,
                WatchEntry::Open {
                    attempt: 1,
                    endpoint: "e".into(),
                    prefix: "d/w/".into(),
                    start_revision: 3,
                },
            ))
            .unwrap();
        let event = WatchEvent {
            revision: 3,
            key: "d/w/x".into(),
            kind: EventKind::Put,
            value: Some("1".into()),
        };
        watches
            .record(&record(
                20,
                WatchEntry::Events {
                    attempt: 1,
                    revision: 3,
                    events: vec![event],
                },
            ))
            .unwrap();
        let checks = check_workloads_with(dir.path(), Some(&store()), 0);
        let names: Vec<(&str, Verdict)> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(
            names,
            [
                ("ranges", Verdict::Pass),
                ("locks", Verdict::Pass),
                ("watches", Verdict::Pass)
            ],
            "{checks:#?}"
        );
        let without: Vec<Verdict> = check_workloads_with(dir.path(), None, 0)
            .iter()
            .map(|c| c.status)
            .collect();
        assert_eq!(without, [Verdict::Unknown, Verdict::Pass, Verdict::Unknown]);
    }

    /// End to end against a running cluster (`firebreak up`) after
    /// `firebreak drill-client … --workload …` processes have run:
    /// `FIREBREAK_E2E_DIR` holds `clients/` and `zero_ns`,
    /// `FIREBREAK_E2E_ENDPOINTS` the members' client URLs. Every workload
    /// that ran must PASS, and FAIL once its history is doctored.
    #[test]
    #[ignore = "needs a running cluster and recorded clients"]
    fn end_to_end_against_a_running_cluster() {
        use firebreak_check::bank::check_bank;
        let dir = PathBuf::from(std::env::var("FIREBREAK_E2E_DIR").expect("FIREBREAK_E2E_DIR"));
        let urls: Vec<String> = std::env::var("FIREBREAK_E2E_ENDPOINTS")
            .expect("FIREBREAK_E2E_ENDPOINTS")
            .split(',')
            .map(str::to_owned)
            .collect();
        let zero: u64 = std::fs::read_to_string(dir.join("zero_ns"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = runtime.block_on(async {
            let mut clients = Vec::new();
            for url in &urls {
                clients.push(etcd_client::Client::connect([url.as_str()], None).await.unwrap());
            }
            let status = clients[0].status().await.unwrap();
            let revision = status.header().unwrap().revision() as u64;
            super::super::store_history::read_store_history_with(clients, "drill/", revision, 16).await
        });
        assert!(
            store.log.unreadable.is_empty(),
            "unreadable: {:?}",
            store.log.unreadable
        );
        let clients = dir.join("clients");
        let checks = check_workloads(&clients, Some(&store), zero);
        for check in &checks {
            println!("{} {}: {}", check.name, check.status, check.detail);
            println!("  counts {}", serde_json::to_string(&check.counts).unwrap());
            for a in check.anomalies.iter().take(3) {
                println!("  [{}] {}", a.kind, a.message);
            }
        }
        assert!(checks.iter().all(|c| c.status == Verdict::Pass), "not all PASS");

        // Doctored histories.
        let files = workload_files(&clients);
        let mut doctored = Vec::new();
        if let Some(paths) = files.get(BANK) {
            let (mut events, _): (Vec<BankEvent>, _) = load(paths, zero);
            let read = events
                .iter_mut()
                .find_map(|e| match &mut e.result {
                    Some(BankResult::Read { kvs, .. }) if !kvs.is_empty() => Some(kvs),
                    _ => None,
                })
                .expect("a read");
            read[0].value = (read[0].value.parse::<i64>().unwrap() + 1).to_string();
            doctored.push(check_bank(&events, Some(&store.log)));
        }
        if let Some(paths) = files.get(RANGES) {
            let (mut events, _): (Vec<RangeEvent>, _) = load(paths, zero);
            let kvs = events
                .iter_mut()
                .find_map(|e| match &mut e.result {
                    Some(RangeResult::Range { kvs, .. }) if !kvs.is_empty() => Some(kvs),
                    _ => None,
                })
                .expect("a range");
            kvs.pop();
            doctored.push(check_ranges(&events, Some(&store.log)));
        }
        if let Some(paths) = files.get(LOCKS) {
            // Forget every unlock and revoke: each hold lasts until its lease's bound.
            let (mut events, _): (Vec<LockEvent>, _) = load(paths, zero);
            events.retain(|e| !matches!(e.op, LockOp::Unlock { .. } | LockOp::Revoke { .. }));
            doctored.push(check_locks(&events));
        }
        if let Some(paths) = files.get(WATCHES) {
            // Lose one event in the middle of the first session.
            let (mut records, _) = load_watches(paths, zero);
            let first = (records[0].client, records[0].session);
            let with_events: Vec<usize> = records
                .iter()
                .enumerate()
                .filter(|(_, r)| (r.client, r.session) == first)
                .filter(|(_, r)| matches!(&r.entry, WatchEntry::Events { .. }))
                .map(|(i, _)| i)
                .collect();
            let middle = with_events[with_events.len() / 2];
            if let WatchEntry::Events { events, .. } = &mut records[middle].entry {
                events.remove(0);
            }
            doctored.push(check_watches(&records, Some(&store.log)));
        }
        for report in &doctored {
            let first = report.anomalies.first().map(|a| format!("[{}] {}", a.kind, a.message));
            println!(
                "doctored {} {}: {}",
                report.workload,
                report.verdict,
                first.unwrap_or_default()
            );
        }
        assert_eq!(doctored.len(), checks.len());
        assert!(
            doctored.iter().all(|r| r.verdict == Verdict::Fail),
            "a doctored history passed"
        );
    }
}
