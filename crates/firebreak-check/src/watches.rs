//! The watches workload and its checker: a watch delivers every committed
//! change of its prefix exactly once, in revision order, across
//! reconnects.
//!
//! A client opens a watch on a prefix from a start revision and records
//! every response ([`WatchEntry`]): the events (revision, key, type,
//! value), progress notifications, cancellations, and every reconnect
//! (after an error, a member's death, or a deliberate move to another
//! endpoint) with the revision it resumes from: the last revision it saw
//! plus one, as etcd's client does. One *session* is one such chain of
//! watches, from its first start revision on; a session ends when the
//! client stops (or dies), or when a compaction cancels the watch.
//!
//! [`check_watches`] compares each session with the store's history.
//!
//! # Correctness
//!
//! A session *should have seen* every change under its prefix at
//! revisions `S..=E`, where `S` is its first start revision and `E` is the
//! highest revision it observed: the highest event revision delivered or
//! progress notification received, whichever is higher (a progress
//! notification at `P` promises that every event up to `P` was sent).
//! Changes after `E` are never expected: a watcher that stopped or died
//! simply stopped. At `E` itself, when no progress notification covers it,
//! only the events delivered are judged (a response cut short by the
//! client's death must not look like a gap).
//!
//! Anomaly kinds, each with the deliveries around it:
//!
//! - `gap`: a change in `S..=E` never delivered; consecutive missing
//!   revisions with no delivery between them are one gap, listed with
//!   what the store had there and the deliveries just before and after
//!   (and the reconnects between them).
//! - `duplicate`: the same (revision, key) delivered twice in a session.
//! - `reorder`: an event below a revision already delivered, or at or
//!   below a progress notification already received.
//! - `unexpected_event`: an event the store's history does not have at
//!   that revision, or below the session's start revision.
//! - `event_mismatch`: an event whose type or value differs from the
//!   store's change of that key at that revision.
//! - `compacted`: the store cancelled a watch as compacted (the drill never
//!   compacts).
//!
//! Without the store's history, or with an unreadable revision in some
//! session's `S..=E`, that session cannot be verified and the verdict is
//! at best UNKNOWN.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::store_log::{KeyChange, StoreLog};
use crate::workload_report::{Findings, WorkloadReport};

/// Name of the workload.
pub const WATCHES: &str = "watches";

/// One line of a watch client's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRecord {
    /// The client.
    pub client: u64,
    /// The client's datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
    /// The session (chain of watches) within the client, from 1.
    pub session: u64,
    /// `CLOCK_MONOTONIC` nanoseconds when it was written.
    pub t_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub entry: WatchEntry,
}

/// What a [`WatchRecord`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchEntry {
    /// A watch is about to be created (written before sending).
    Open {
        /// Attempt number within the session, from 1.
        attempt: u64,
        /// The endpoint used.
        endpoint: String,
        /// The prefix watched.
        prefix: String,
        /// The revision to start from.
        start_revision: u64,
    },
    /// The store confirmed the watch.
    Created {
        /// Attempt.
        attempt: u64,
        /// The watch id.
        watch_id: i64,
        /// Header revision.
        revision: u64,
    },
    /// A response with events.
    Events {
        /// Attempt.
        attempt: u64,
        /// Header revision.
        revision: u64,
        /// The events, in the order received.
        events: Vec<WatchEvent>,
    },
    /// A progress notification: every event up to `revision` was sent.
    Progress {
        /// Attempt.
        attempt: u64,
        /// Header revision.
        revision: u64,
    },
    /// The store cancelled the watch.
    Canceled {
        /// Attempt.
        attempt: u64,
        /// Set when the start revision was compacted.
        compact_revision: u64,
        /// The store's reason.
        reason: String,
    },
    /// The watch stream ended (error, lost member, deliberate move); the
    /// client reconnects, resuming after the last revision it saw.
    Closed {
        /// Attempt.
        attempt: u64,
        /// Why.
        reason: String,
    },
    /// The client stopped watching (end of the load).
    Stop {
        /// The highest revision it had seen.
        last_revision: u64,
    },
}

/// One watch event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision of the change (the key's mod revision).
    pub revision: u64,
    /// The key.
    pub key: String,
    /// Put or delete.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The value put (puts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The type of a [`WatchEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

impl WatchEvent {
    fn describe(&self) -> String {
        match self.kind {
            EventKind::Put => format!(
                "put {}={} @{}",
                self.key,
                self.value.as_deref().unwrap_or(""),
                self.revision
            ),
            EventKind::Delete => format!("delete {} @{}", self.key, self.revision),
        }
    }

    fn matches(&self, change: &KeyChange) -> bool {
        match (self.kind, change) {
            (EventKind::Put, KeyChange::Put { value, .. }) => self.value.as_deref() == Some(value.as_str()),
            (EventKind::Delete, KeyChange::Delete { .. }) => true,
            _ => false,
        }
    }
}

/// Reads one client's file: every line in order, plus warnings for lines
/// that could not be parsed (`source` names the file).
pub fn parse_watch_records(text: &str, source: &str) -> (Vec<WatchRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(e) => warnings.push(format!("{source} line {}: skipped ({e})", n + 1)),
        }
    }
    (records, warnings)
}

const GAP: &str = "gap";
const DUPLICATE: &str = "duplicate";
const REORDER: &str = "reorder";
const UNEXPECTED_EVENT: &str = "unexpected_event";
const EVENT_MISMATCH: &str = "event_mismatch";
const COMPACTED: &str = "compacted";

/// One delivery: the record it came in and the event.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    record: &'a WatchRecord,
    event: &'a WatchEvent,
}

impl Delivery<'_> {
    fn to_value(self) -> serde_json::Value {
        let attempt = match &self.record.entry {
            WatchEntry::Events { attempt, .. } => *attempt,
            _ => 0,
        };
        serde_json::json!({
            "client": self.record.client,
            "session": self.record.session,
            "attempt": attempt,
            "t_ns": self.record.t_ns,
            "event": self.event,
        })
    }
}

fn record_value(record: &WatchRecord) -> serde_json::Value {
    serde_json::to_value(record).unwrap_or(serde_json::Value::Null)
}

/// Checks the watch records of every client against the store's history.
/// See the module documentation for the rules.
pub fn check_watches(records: &[WatchRecord], store: Option<&StoreLog>) -> WorkloadReport {
    let mut found = Findings::default();
    let mut sessions: BTreeMap<(u64, u64), Vec<&WatchRecord>> = BTreeMap::new();
    for record in records {
        sessions
            .entry((record.client, record.session))
            .or_default()
            .push(record);
    }
    for ((client, session), records) in &sessions {
        check_session(*client, *session, records, store, &mut found);
    }
    let detail = format!(
        "{} sessions ({} reconnects) delivered {} events and {} progress notifications; {} of {} sessions checked \
         against the store's history, {} changes expected{}",
        sessions.len(),
        found.get("reconnects"),
        found.get("events"),
        found.get("progress"),
        found.get("sessions_checked"),
        sessions.len(),
        found.get("changes_expected"),
        found.anomalies_suffix()
    );
    let undecided = if store.is_none() {
        Some("the store's history was not read".to_owned())
    } else if found.get("sessions_unverifiable") > 0 {
        Some(format!(
            "{} sessions need revisions the store's history lacks",
            found.get("sessions_unverifiable")
        ))
    } else if found.get("events") == 0 {
        Some("no event was delivered".to_owned())
    } else {
        None
    };
    found.finish(WATCHES, detail, undecided)
}

fn check_session(client: u64, session: u64, records: &[&WatchRecord], store: Option<&StoreLog>, found: &mut Findings) {
    let Some((prefix, start)) = records.iter().find_map(|r| match &r.entry {
        WatchEntry::Open {
            prefix, start_revision, ..
        } => Some((prefix.as_str(), *start_revision)),
        _ => None,
    }) else {
        found.warnings.push(format!(
            "client {client} session {session}: no open record; not checked"
        ));
        return;
    };
    let name = format!("client {client} session {session}");
    let opens = records
        .iter()
        .filter(|r| matches!(r.entry, WatchEntry::Open { .. }))
        .count() as u64;
    found.count("reconnects", opens.saturating_sub(1));

    // Walk the deliveries in order.
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut first_at: HashMap<(u64, &str), usize> = HashMap::new();
    let mut event_high: Option<usize> = None;
    let mut progress_high = 0u64;
    let mut reconnects: Vec<(usize, &WatchRecord)> = Vec::new();
    for record in records {
        match &record.entry {
            WatchEntry::Events { events, .. } => {
                for event in events {
                    found.count("events", 1);
                    let d = Delivery { record, event };
                    let index = deliveries.len();
                    if let Some(&earlier) = first_at.get(&(event.revision, event.key.as_str())) {
                        found.anomaly(
                            DUPLICATE,
                            format!(
                                "{name}: {} delivered again (first at {:.3} s)",
                                event.describe(),
                                deliveries[earlier].record.t_ns as f64 / 1e9
                            ),
                            vec![d.to_value(), deliveries[earlier].to_value()],
                        );
                        deliveries.push(d);
                        continue;
                    }
                    first_at.insert((event.revision, event.key.as_str()), index);
                    let high = event_high.map(|i| deliveries[i]);
                    if let Some(high) = high.filter(|h| h.event.revision > event.revision) {
                        found.anomaly(
                            REORDER,
                            format!("{name}: {} delivered after {}", event.describe(), high.event.describe()),
                            vec![d.to_value(), high.to_value()],
                        );
                    } else if event.revision <= progress_high {
                        found.anomaly(
                            REORDER,
                            format!(
                                "{name}: {} delivered after a progress notification at revision {progress_high}",
                                event.describe()
                            ),
                            vec![d.to_value()],
                        );
                    }
                    if event.revision < start {
                        found.anomaly(
                            UNEXPECTED_EVENT,
                            format!(
                                "{name}: {} is below the session's start revision {start}",
                                event.describe()
                            ),
                            vec![d.to_value()],
                        );
                    }
                    match high {
                        Some(h) if h.event.revision > event.revision => {}
                        _ => event_high = Some(index),
                    }
                    deliveries.push(d);
                }
            }
            WatchEntry::Progress { revision, .. } => {
                found.count("progress", 1);
                progress_high = progress_high.max(*revision);
            }
            WatchEntry::Canceled {
                compact_revision,
                reason,
                ..
            } if *compact_revision > 0 => found.anomaly(
                COMPACTED,
                format!("{name}: watch cancelled as compacted at revision {compact_revision} ({reason})"),
                vec![record_value(record)],
            ),
            WatchEntry::Open { .. } => reconnects.push((deliveries.len(), record)),
            _ => {}
        }
    }
    let event_end = event_high.map_or(0, |i| deliveries[i].event.revision);
    let end = event_end.max(progress_high);
    if end < start {
        return;
    }
    let Some(store) = store.filter(|s| s.covers(prefix) && s.complete_between(start.max(2), end)) else {
        found.count("sessions_unverifiable", 1);
        return;
    };
    found.count("sessions_checked", 1);

    // Every delivered event must be the store's change at its revision.
    for (i, d) in deliveries.iter().enumerate() {
        if first_at.get(&(d.event.revision, d.event.key.as_str())) != Some(&i) || d.event.revision < start {
            continue;
        }
        let changes = store.changes_at(d.event.revision).unwrap_or_default();
        match changes.iter().find(|c| c.key() == d.event.key) {
            Some(change) if d.event.matches(change) => {}
            Some(change) => found.anomaly(
                EVENT_MISMATCH,
                format!(
                    "{name}: {} but the store's revision {} did {}",
                    d.event.describe(),
                    d.event.revision,
                    change.describe()
                ),
                vec![d.to_value()],
            ),
            None => found.anomaly(
                UNEXPECTED_EVENT,
                format!(
                    "{name}: {} but the store's revision {} changed [{}]",
                    d.event.describe(),
                    d.event.revision,
                    changes.iter().map(KeyChange::describe).collect::<Vec<_>>().join(", ")
                ),
                vec![d.to_value()],
            ),
        }
    }

    // Every change in S..=E must have been delivered; runs of missing
    // revisions with no delivery between them are one gap.
    let confirmed_end = progress_high >= end;
    let mut run: Vec<(u64, &KeyChange)> = Vec::new();
    let flush = |run: &mut Vec<(u64, &KeyChange)>, found: &mut Findings| {
        if run.is_empty() {
            return;
        }
        let (from, to) = (run[0].0, run[run.len() - 1].0);
        let before = deliveries
            .iter()
            .filter(|d| d.event.revision < from)
            .max_by_key(|d| d.event.revision)
            .copied();
        let after = deliveries
            .iter()
            .filter(|d| d.event.revision > to)
            .min_by_key(|d| d.event.revision)
            .copied();
        let mut ops: Vec<serde_json::Value> = before.iter().map(|d| d.to_value()).collect();
        ops.extend(after.iter().map(|d| d.to_value()));
        let window = |d: Option<Delivery>| d.map(|d| d.record.t_ns);
        let (lo, hi) = (window(before).unwrap_or(0), window(after).unwrap_or(u64::MAX));
        ops.extend(
            reconnects
                .iter()
                .filter(|(_, r)| r.t_ns >= lo && r.t_ns <= hi)
                .take(3)
                .map(|(_, r)| record_value(r)),
        );
        found.anomaly(
            GAP,
            format!(
                "{name}: revisions {from}..{to} never delivered; the store had [{}]; delivered before: {}, after: {}",
                run.iter().map(|(_, c)| c.describe()).collect::<Vec<_>>().join(", "),
                before.map_or("nothing".into(), |d| d.event.describe()),
                after.map_or("nothing".into(), |d| d.event.describe()),
            ),
            ops,
        );
        run.clear();
    };
    for rev in start.max(2)..=end {
        if rev == end && !confirmed_end {
            break;
        }
        let changes = store.changes_at(rev).unwrap_or_default();
        let mut delivered_here = false;
        for change in changes.iter().filter(|c| c.key().starts_with(prefix)) {
            found.count("changes_expected", 1);
            if first_at.contains_key(&(rev, change.key())) {
                delivered_here = true;
            } else {
                run.push((rev, change));
            }
        }
        if delivered_here {
            flush(&mut run, found);
        }
    }
    flush(&mut run, found);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;

    /// w/a=1@2, x/o@3 (outside), {w/a=2, w/b=1}@4, delete w/a@5, w/b=2@6, w/b=3@7.
    fn store() -> StoreLog {
        StoreLog::from_changes(
            "",
            [
                (2, vec![KeyChange::put("w/a", "1")]),
                (3, vec![KeyChange::put("x/o", "0")]),
                (4, vec![KeyChange::put("w/a", "2"), KeyChange::put("w/b", "1")]),
                (5, vec![KeyChange::Delete { key: "w/a".into() }]),
                (6, vec![KeyChange::put("w/b", "2")]),
                (7, vec![KeyChange::put("w/b", "3")]),
            ],
        )
    }

    fn ev(revision: u64, key: &str, value: Option<&str>) -> WatchEvent {
        WatchEvent {
            revision,
            key: key.into(),
            kind: if value.is_some() {
                EventKind::Put
            } else {
                EventKind::Delete
            },
            value: value.map(str::to_owned),
        }
    }

    struct S {
        records: Vec<WatchRecord>,
        client: u64,
        attempt: u64,
        t: u64,
    }

    impl S {
        fn new(client: u64) -> S {
            S {
                records: Vec::new(),
                client,
                attempt: 0,
                t: 0,
            }
        }
        fn add(&mut self, entry: WatchEntry) {
            self.t += 1_000_000;
            self.records.push(WatchRecord {
                client: self.client,
                dc: None,
                session: 1,
                t_ns: self.t,
                entry,
            });
        }
        fn open(&mut self, start_revision: u64) {
            self.attempt += 1;
            let attempt = self.attempt;
            self.add(WatchEntry::Open {
                attempt,
                endpoint: format!("e{attempt}"),
                prefix: "w/".into(),
                start_revision,
            });
        }
        fn events(&mut self, events: Vec<WatchEvent>) {
            let attempt = self.attempt;
            let revision = events.last().map_or(0, |e| e.revision);
            self.add(WatchEntry::Events {
                attempt,
                revision,
                events,
            });
        }
        fn close(&mut self) {
            let attempt = self.attempt;
            self.add(WatchEntry::Closed {
                attempt,
                reason: "member gone".into(),
            });
        }
        fn progress(&mut self, revision: u64) {
            let attempt = self.attempt;
            self.add(WatchEntry::Progress { attempt, revision });
        }
    }

    /// Everything from 2, with a reconnect after revision 4, and a
    /// progress notification at 7.
    fn healthy(client: u64) -> S {
        let mut s = S::new(client);
        s.open(2);
        s.events(vec![ev(2, "w/a", Some("1"))]);
        s.events(vec![ev(4, "w/b", Some("1")), ev(4, "w/a", Some("2"))]);
        s.close();
        s.open(5);
        s.events(vec![ev(5, "w/a", None), ev(6, "w/b", Some("2"))]);
        s.events(vec![ev(7, "w/b", Some("3"))]);
        s.progress(7);
        s
    }

    fn kinds(report: &WorkloadReport) -> Vec<&str> {
        let mut k: Vec<&str> = report.anomalies.iter().map(|a| a.kind.as_str()).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn complete_ordered_sessions_pass() {
        let mut records = healthy(1).records;
        // A watcher that stopped after revision 4, and one that started at 6.
        let mut stopped = S::new(2);
        stopped.open(3);
        stopped.events(vec![ev(4, "w/a", Some("2"))]);
        records.extend(stopped.records);
        let mut late = S::new(3);
        late.open(6);
        late.events(vec![ev(6, "w/b", Some("2"))]);
        late.progress(6);
        records.extend(late.records);
        let report = check_watches(&records, Some(&store()));
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        assert_eq!(report.counts["sessions_checked"], 3);
        assert_eq!(report.counts["reconnects"], 1);
        assert_eq!(check_watches(&records, None).verdict, Verdict::Unknown);
    }

    #[test]
    fn a_gap_across_a_reconnect_is_reported_with_what_the_store_had() {
        let mut s = S::new(1);
        s.open(2);
        s.events(vec![ev(2, "w/a", Some("1"))]);
        s.close();
        // Resumes too late: revisions 4 and 5 are lost.
        s.open(6);
        s.events(vec![ev(6, "w/b", Some("2")), ev(7, "w/b", Some("3"))]);
        let report = check_watches(&s.records, Some(&store()));
        assert_eq!(kinds(&report), [GAP]);
        let gap = &report.anomalies[0];
        assert!(gap.message.contains("revisions 4..5"), "{}", gap.message);
        assert!(
            gap.message.contains("put w/a=2, put w/b=1, delete w/a"),
            "{}",
            gap.message
        );
        assert!(
            gap.message.contains("before: put w/a=1 @2, after: put w/b=2 @6"),
            "{}",
            gap.message
        );
        // The deliveries before and after, and the reconnect between them.
        assert_eq!(gap.ops.len(), 3, "{:#?}", gap.ops);
        assert_eq!(gap.ops[2]["type"], "open");
    }

    #[test]
    fn duplicates_reorders_strangers_mismatches_and_compaction_are_found() {
        let mut s = S::new(1);
        s.open(2);
        s.events(vec![ev(2, "w/a", Some("1"))]);
        s.events(vec![ev(4, "w/b", Some("1")), ev(4, "w/a", Some("WRONG"))]);
        s.close();
        s.open(4);
        s.events(vec![ev(4, "w/b", Some("1"))]);
        s.events(vec![ev(6, "w/b", Some("2")), ev(5, "w/a", None)]);
        s.events(vec![ev(7, "w/z", Some("?")), ev(7, "w/b", Some("3"))]);
        s.progress(8);
        s.events(vec![ev(8, "w/b", Some("late"))]);
        let attempt = s.attempt;
        s.add(WatchEntry::Canceled {
            attempt,
            compact_revision: 3,
            reason: "compacted".into(),
        });
        let mut log = store();
        log.revisions.insert(8, vec![KeyChange::put("w/b", "late")]);
        log.final_revision = 8;
        let report = check_watches(&s.records, Some(&log));
        assert_eq!(
            kinds(&report),
            [COMPACTED, DUPLICATE, EVENT_MISMATCH, REORDER, REORDER, UNEXPECTED_EVENT]
        );
        assert_eq!(report.verdict, Verdict::Fail);
    }

    #[test]
    fn the_last_revision_of_an_unconfirmed_session_is_not_a_gap() {
        let mut s = S::new(1);
        s.open(4);
        // Killed after half of revision 4's events were recorded: not a gap.
        s.events(vec![ev(4, "w/b", Some("1"))]);
        let report = check_watches(&s.records, Some(&store()));
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        // With a progress notification at 4, the missing w/a is a gap.
        s.progress(4);
        let report = check_watches(&s.records, Some(&store()));
        assert_eq!(kinds(&report), [GAP]);
    }

    #[test]
    fn an_unreadable_revision_makes_the_session_unverifiable() {
        let mut log = store();
        log.revisions.remove(&3);
        log.unreadable.insert(3);
        let report = check_watches(&healthy(1).records, Some(&log));
        assert_eq!(report.verdict, Verdict::Unknown);
        assert!(report.anomalies.is_empty());
    }
}
