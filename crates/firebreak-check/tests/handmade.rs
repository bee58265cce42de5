//! Hand-made histories with known verdicts: valid ones (sequential and
//! concurrent), the classic anomalies, unknown outcomes that explain an
//! otherwise suspicious history, and budget exhaustion.

use std::time::Duration;

use firebreak_check::{
    check_history, read_history_jsonl, write_history_jsonl, AnomalyKind, Budget, CheckReport, HistoryEvent, OpResult,
    Operation, Verdict,
};

/// Milliseconds to nanoseconds.
const MS: u64 = 1_000_000;

/// Builds events with consecutive ids; times are given in milliseconds.
#[derive(Default)]
struct History {
    events: Vec<HistoryEvent>,
}

impl History {
    fn invoke(&mut self, client: u64, op: Operation, t0: u64) -> HistoryEvent {
        let id = self.events.len() as u64 + 1;
        HistoryEvent::invoked(id, client, Some("dc1"), op, t0 * MS)
    }

    fn put(&mut self, c: u64, key: &str, value: &str, t: (u64, u64), rev: u64) -> u64 {
        let e = self.invoke(c, put_op(key, value), t.0);
        self.push(e.ok(t.1 * MS, OpResult::put(rev)))
    }

    fn put_unknown(&mut self, c: u64, key: &str, value: &str, t0: u64) -> u64 {
        let e = self.invoke(c, put_op(key, value), t0);
        self.push(e.unknown(None))
    }

    fn put_failed(&mut self, c: u64, key: &str, value: &str, t: (u64, u64)) -> u64 {
        let e = self.invoke(c, put_op(key, value), t.0);
        self.push(e.fail(t.1 * MS))
    }

    fn get(&mut self, c: u64, key: &str, seen: Option<&str>, t: (u64, u64), rev: u64, mod_rev: Option<u64>) -> u64 {
        let e = self.invoke(c, Operation::Get { key: key.into() }, t.0);
        self.push(e.ok(t.1 * MS, OpResult::get(seen.map(str::to_owned), rev, mod_rev)))
    }

    #[allow(clippy::too_many_arguments)]
    fn cas(
        &mut self,
        c: u64,
        key: &str,
        expected: Option<&str>,
        new: &str,
        t: (u64, u64),
        succeeded: bool,
        rev: u64,
    ) -> u64 {
        let op = Operation::Cas {
            key: key.into(),
            expected: expected.map(str::to_owned),
            new: new.into(),
        };
        let e = self.invoke(c, op, t.0);
        self.push(e.ok(t.1 * MS, OpResult::cas(succeeded, rev)))
    }

    fn cas_unknown(&mut self, c: u64, key: &str, expected: Option<&str>, new: &str, t0: u64) -> u64 {
        let op = Operation::Cas {
            key: key.into(),
            expected: expected.map(str::to_owned),
            new: new.into(),
        };
        let e = self.invoke(c, op, t0);
        self.push(e.unknown(Some((t0 + 1000) * MS)))
    }

    fn delete(&mut self, c: u64, key: &str, t: (u64, u64), deleted: u64, rev: u64) -> u64 {
        let e = self.invoke(c, Operation::Delete { key: key.into() }, t.0);
        self.push(e.ok(t.1 * MS, OpResult::delete(deleted, rev)))
    }

    fn push(&mut self, event: HistoryEvent) -> u64 {
        let id = event.id;
        self.events.push(event);
        id
    }

    fn check(&self) -> CheckReport {
        let report = check_history(&self.events, Budget::with_duration(Duration::from_secs(20)));
        println!("{}", report.render_text());
        report
    }
}

fn put_op(key: &str, value: &str) -> Operation {
    Operation::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn kinds(report: &CheckReport) -> Vec<AnomalyKind> {
    report.anomalies.iter().map(|a| a.kind).collect()
}

fn assert_pass(report: &CheckReport) {
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.render_text());
    assert_eq!(report.linearizable, Some(true));
    assert!(report.anomalies.is_empty());
}

#[test]
fn sequential_history_passes() {
    let mut h = History::default();
    h.get(1, "k", None, (0, 1), 1, None);
    h.put(1, "k", "a", (2, 3), 2);
    h.get(2, "k", Some("a"), (4, 5), 2, Some(2));
    h.cas(1, "k", Some("a"), "b", (6, 7), true, 3);
    h.cas(2, "k", Some("a"), "c", (8, 9), false, 3);
    h.get(2, "k", Some("b"), (10, 11), 3, Some(3));
    h.delete(1, "k", (12, 13), 1, 4);
    h.delete(2, "k", (14, 15), 0, 4);
    h.cas(2, "k", None, "d", (16, 17), true, 5);
    h.get(1, "k", Some("d"), (18, 19), 5, Some(5));
    let report = h.check();
    assert_pass(&report);
    assert_eq!(report.keys.len(), 1);
    assert_eq!(report.keys[0].ops, 10);
}

#[test]
fn concurrent_history_passes() {
    let mut h = History::default();
    // Two overlapping writes; readers overlapping them may see either order,
    // but must agree on the final order once the writes are done.
    h.put(1, "k", "a", (0, 10), 3);
    h.put(2, "k", "b", (1, 9), 2);
    h.get(3, "k", Some("b"), (2, 4), 2, Some(2));
    h.get(4, "k", Some("a"), (5, 12), 3, Some(3));
    h.get(3, "k", Some("a"), (13, 14), 3, Some(3));
    // Another key, interleaved in time: checked independently.
    h.put(4, "j", "x", (15, 20), 4);
    h.get(1, "j", None, (15, 16), 3, None);
    h.get(2, "j", Some("x"), (16, 21), 4, Some(4));
    h.cas(3, "j", Some("x"), "y", (17, 30), true, 5);
    h.get(1, "j", Some("x"), (18, 19), 4, Some(4));
    h.get(1, "j", Some("y"), (31, 32), 5, Some(5));
    let report = h.check();
    assert_pass(&report);
    assert_eq!(report.keys.len(), 2);
    assert!(report.keys.iter().all(|k| k.verdict == Verdict::Pass));
}

#[test]
fn lost_write_fails_with_counterexample() {
    let mut h = History::default();
    let a = h.put(1, "k", "a", (0, 1), 2);
    let b = h.put(2, "k", "b", (2, 3), 3);
    // The acknowledged write of b is lost: every later read shows a.
    let r1 = h.get(3, "k", Some("a"), (4, 5), 3, Some(2));
    h.get(1, "k", Some("a"), (6, 7), 3, Some(2));
    h.get(2, "k", Some("a"), (8, 9), 3, Some(2));
    let report = h.check();
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.linearizable, Some(false));
    assert!(kinds(&report).contains(&AnomalyKind::NotLinearizable));
    let key = &report.keys[0];
    assert_eq!(key.verdict, Verdict::Fail);
    let cx = key.counterexample.as_ref().expect("counterexample");
    // Minimal: the two writes and the first stale read.
    assert_eq!(cx.ops, vec![a, b, r1], "{:#?}", cx);
    assert_eq!(cx.blocked_op, r1);
    assert!(
        cx.text
            .iter()
            .any(|l| l.contains("c2 put k=b [t=0.002s..0.003s] ok rev=3")),
        "{:#?}",
        cx.text
    );
    let json = report.to_json_pretty();
    assert!(json.contains("\"verdict\": \"FAIL\""), "{json}");
    assert!(json.contains("\"linearizable\": false"), "{json}");
}

#[test]
fn stale_read_fails() {
    let mut h = History::default();
    h.put(1, "k", "a", (0, 1), 2);
    h.put(1, "k", "b", (2, 3), 3);
    h.get(2, "k", Some("b"), (4, 5), 3, Some(3));
    // A later read by another client returns the superseded value...
    let stale = h.get(3, "k", Some("a"), (6, 7), 3, Some(2));
    // ...although afterwards b is visible again.
    h.get(2, "k", Some("b"), (8, 9), 3, Some(3));
    let report = h.check();
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.linearizable, Some(false));
    let cx = report.keys[0].counterexample.as_ref().unwrap();
    assert!(cx.ops.contains(&stale), "{cx:#?}");
    assert!(cx.ops.len() <= 3, "{cx:#?}");
}

#[test]
fn revision_going_backwards_for_a_client_fails() {
    let mut h = History::default();
    let w = h.put(1, "k1", "a", (0, 1), 5);
    let r = h.get(1, "k2", None, (2, 3), 4, None);
    let report = h.check();
    assert_eq!(report.verdict, Verdict::Fail, "{}", report.render_text());
    // Each key on its own is linearizable; the revisions are not.
    assert_eq!(report.linearizable, Some(true));
    let anomaly = report
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::ClientRevisionRegression)
        .expect("client revision regression");
    assert_eq!(anomaly.ops, vec![w, r]);
    assert!(anomaly.message.contains("from 5 to 4"), "{}", anomaly.message);
}

#[test]
fn read_of_a_value_never_written_fails() {
    let mut h = History::default();
    h.put(1, "k", "a", (0, 1), 2);
    let r = h.get(2, "k", Some("zzz"), (2, 3), 2, Some(2));
    let report = h.check();
    assert_eq!(report.verdict, Verdict::Fail);
    let anomaly = report
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::ReadOfUnwrittenValue)
        .expect("read of unwritten value");
    assert!(
        anomaly.message.contains("read of a value never written"),
        "{}",
        anomaly.message
    );
    assert_eq!(anomaly.ops, vec![r]);
    assert!(kinds(&report).contains(&AnomalyKind::NotLinearizable));
    assert!(report.render_text().contains("read of a value never written"));
}

#[test]
fn read_of_a_failed_write_fails() {
    let mut h = History::default();
    h.put(1, "k", "a", (0, 1), 2);
    h.put_failed(2, "k", "b", (2, 3));
    h.get(3, "k", Some("b"), (4, 5), 2, Some(3));
    let report = h.check();
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(kinds(&report).contains(&AnomalyKind::ReadOfFailedWrite));
    assert!(kinds(&report).contains(&AnomalyKind::NotLinearizable));
}

#[test]
fn cas_that_wrongly_succeeded_fails() {
    let mut h = History::default();
    h.put(1, "k", "b", (0, 1), 2);
    h.put(1, "k", "a", (2, 3), 3);
    // The value is a, yet a cas expecting b claims success.
    let cas = h.cas(2, "k", Some("b"), "c", (4, 5), true, 4);
    let report = h.check();
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.linearizable, Some(false));
    let cx = report.keys[0].counterexample.as_ref().unwrap();
    assert_eq!(cx.blocked_op, cas);
    // b *was* written, so only the linearizability search can see this.
    assert_eq!(kinds(&report), vec![AnomalyKind::NotLinearizable]);
}

#[test]
fn delete_reporting_the_wrong_count_fails() {
    let mut h = History::default();
    h.put(1, "k", "a", (0, 1), 2);
    h.delete(2, "k", (2, 3), 0, 2);
    let report = h.check();
    assert_eq!(report.linearizable, Some(false));
}

#[test]
fn unknown_outcomes_explain_suspicious_histories() {
    // A timed-out put whose value shows up much later: it took effect late.
    let mut h = History::default();
    h.put(1, "k", "a", (0, 1), 2);
    h.put_unknown(2, "k", "b", 2);
    h.get(3, "k", Some("a"), (100, 101), 2, Some(2));
    h.get(3, "k", Some("b"), (200, 201), 3, Some(3));
    h.get(1, "k", Some("b"), (300, 301), 3, Some(3));
    assert_pass(&h.check());

    // The same history with the put known to have failed is a violation.
    let mut bad = History::default();
    bad.put(1, "k", "a", (0, 1), 2);
    bad.put_failed(2, "k", "b", (2, 3));
    bad.get(3, "k", Some("a"), (100, 101), 2, Some(2));
    bad.get(3, "k", Some("b"), (200, 201), 3, Some(3));
    assert_eq!(bad.check().verdict, Verdict::Fail);

    // A timed-out put that never took effect at all.
    let mut never = History::default();
    never.put(1, "k", "a", (0, 1), 2);
    never.put_unknown(2, "k", "b", 2);
    never.get(3, "k", Some("a"), (500, 501), 2, Some(2));
    assert_pass(&never.check());

    // A timed-out cas explains a value change nobody else made.
    let mut cas = History::default();
    cas.put(1, "k", "a", (0, 1), 2);
    cas.cas_unknown(2, "k", Some("a"), "c", 2);
    cas.get(3, "k", Some("c"), (50, 51), 3, Some(3));
    cas.cas(1, "k", Some("a"), "d", (60, 61), false, 3);
    assert_pass(&cas.check());
}

#[test]
fn duplicate_and_misordered_write_revisions_fail() {
    let mut h = History::default();
    let a = h.put(1, "k1", "a", (0, 1), 7);
    let b = h.put(2, "k2", "b", (0, 1), 7);
    let report = h.check();
    assert_eq!(report.verdict, Verdict::Fail);
    let dup = report
        .anomalies
        .iter()
        .find(|x| x.kind == AnomalyKind::DuplicateWriteRevision)
        .expect("duplicate revision");
    assert_eq!(dup.ops, vec![a, b]);

    let mut order = History::default();
    let first = order.put(1, "k1", "a", (0, 1), 9);
    let second = order.put(2, "k2", "b", (2, 3), 8);
    let report = order.check();
    let anomaly = report
        .anomalies
        .iter()
        .find(|x| x.kind == AnomalyKind::WriteRevisionOrder)
        .expect("write order");
    assert_eq!(anomaly.ops, vec![first, second]);
    assert_eq!(report.verdict, Verdict::Fail);
}

#[test]
fn stale_header_revision_across_clients_fails() {
    let mut h = History::default();
    h.put(1, "k1", "a", (0, 1), 9);
    h.get(2, "k2", None, (2, 3), 8, None);
    let report = h.check();
    assert_eq!(kinds(&report), vec![AnomalyKind::StaleRevision]);
}

#[test]
fn mod_revision_must_match_the_write() {
    let mut h = History::default();
    h.put(1, "k", "a", (0, 1), 2);
    h.get(2, "k", Some("a"), (2, 3), 2, Some(1));
    let report = h.check();
    assert_eq!(kinds(&report), vec![AnomalyKind::ModRevisionMismatch]);
    assert_eq!(report.linearizable, Some(true));
    assert_eq!(report.verdict, Verdict::Fail);
}

/// A history with `n` writers all racing, then a read, valid but needing
/// search; used for budget tests.
fn racing_history(n: u64) -> History {
    let mut h = History::default();
    for c in 0..n {
        h.put(c, "k", &format!("v{c}"), (0, 100), c + 2);
    }
    h.get(0, "k", Some("v0"), (101, 102), n + 1, Some(2));
    h
}

#[test]
fn exhausted_budget_is_unknown_never_pass() {
    let h = racing_history(12);
    assert_pass(&check_history(&h.events, Budget::unlimited()));

    let report = check_history(&h.events, Budget::with_steps(5));
    assert_eq!(report.verdict, Verdict::Unknown, "{}", report.render_text());
    assert_eq!(report.linearizable, None);
    assert_eq!(report.keys[0].verdict, Verdict::Unknown);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verdict"], "UNKNOWN");
    assert!(json["linearizable"].is_null());
    assert!(report.render_text().contains("undecided keys"));

    let report = check_history(&h.events, Budget::with_duration(Duration::ZERO));
    assert_eq!(report.verdict, Verdict::Unknown);

    // An invalid history under a tiny budget is not a pass either.
    let mut bad = racing_history(12);
    bad.get(1, "k", Some("v5"), (200, 201), 13, Some(7));
    for steps in [1, 10, 100, 1000] {
        let verdict = check_history(&bad.events, Budget::with_steps(steps)).verdict;
        assert_ne!(verdict, Verdict::Pass, "steps={steps}");
    }
    assert_eq!(check_history(&bad.events, Budget::unlimited()).verdict, Verdict::Fail);
}

#[test]
fn history_file_round_trip_and_check() {
    let mut h = History::default();
    h.put(1, "k", "a", (0, 1), 2);
    h.get(2, "k", Some("a"), (2, 3), 2, Some(2));
    h.put_unknown(3, "k", "b", 4);
    let path = std::env::temp_dir().join(format!("firebreak-check-roundtrip-{}.jsonl", std::process::id()));
    write_history_jsonl(&path, &h.events).unwrap();
    let back = read_history_jsonl(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, h.events);
    assert_pass(&check_history(&back, Budget::default()));
}
