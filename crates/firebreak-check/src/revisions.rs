//! Cheap cross-key checks on etcd revisions and on where read values came
//! from. These complement the per-key linearizability search: they see
//! across keys and use the revisions the store reported.
//!
//! # Correctness
//!
//! Only `ok` operations that reported a `revision` take part in revision
//! checks; imported histories without revisions are not judged by them. The
//! properties checked, all of which a linearizable etcd guarantees:
//!
//! - **Per client**: in a client's completion order, header revisions never
//!   decrease.
//! - **Unique write revisions**: two acknowledged successful writes (put,
//!   append, cas with `succeeded: true`, delete with `deleted >= 1`) never
//!   report the same revision (every operation here touches one key, so each
//!   write is its own revision).
//! - **Real-time order**: if operation A completed strictly before B was
//!   invoked, then `rev(B) >= rev(A)`, and `rev(B) > rev(A)` when B is a
//!   successful write. Both writes: [`AnomalyKind::WriteRevisionOrder`];
//!   otherwise [`AnomalyKind::StaleRevision`]. Equal timestamps count as
//!   concurrent. A pair already reported by the per-client check is not
//!   reported again.
//! - **Value origin**: a `get` returning value `v` of key `k` (or a cas that
//!   succeeded comparing against `v`) needs an operation that wrote `v` to
//!   `k`; if none exists it is a read of a value never written, and if all
//!   such writes certainly had no effect it is a read of a failed write.
//!   Keys with `append` operations hold concatenations and are skipped.
//! - **mod_revision**: when exactly one operation wrote `v`, and it is an
//!   acknowledged write with a known revision `R`, a get of `v` must report
//!   `mod_revision == R`; and a get's `mod_revision` never exceeds its header
//!   revision.
//!
//! At most [`MAX_PER_KIND`] anomalies of each kind are listed; a warning
//! counts the rest.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{HistoryEvent, Operation, Outcome};
use crate::model::id_list;
use crate::render::describe_event;
use crate::report::{Anomaly, AnomalyKind};

/// Most anomalies of one kind listed in a report.
pub const MAX_PER_KIND: usize = 20;

/// Collects anomalies, capping each kind.
#[derive(Default)]
pub(crate) struct Collector {
    anomalies: Vec<Anomaly>,
    counts: BTreeMap<String, (AnomalyKind, usize)>,
}

impl Collector {
    pub(crate) fn push(&mut self, kind: AnomalyKind, message: String, ops: Vec<u64>) {
        let entry = self.counts.entry(format!("{kind:?}")).or_insert((kind, 0));
        entry.1 += 1;
        if entry.1 <= MAX_PER_KIND {
            self.anomalies.push(Anomaly { kind, message, ops });
        }
    }

    pub(crate) fn finish(self, anomalies: &mut Vec<Anomaly>, warnings: &mut Vec<String>) {
        anomalies.extend(self.anomalies);
        for (kind, count) in self.counts.into_values() {
            if count > MAX_PER_KIND {
                warnings.push(format!(
                    "{} further {kind:?} anomalies not listed ({count} in all)",
                    count - MAX_PER_KIND
                ));
            }
        }
    }
}

/// Runs all revision and value-origin checks.
pub(crate) fn check_revisions(events: &[HistoryEvent], found: &mut Collector, warnings: &mut Vec<String>) {
    per_client(events, found);
    duplicate_write_revisions(events, found);
    real_time_order(events, found);
    value_origins(events, found, warnings);
}

fn completion_key(event: &HistoryEvent) -> (u64, u64, u64) {
    (event.complete_ns.unwrap_or(u64::MAX), event.invoke_ns, event.id)
}

fn per_client(events: &[HistoryEvent], found: &mut Collector) {
    let mut by_client: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        if event.revision().is_some() {
            by_client.entry(event.client).or_default().push(i);
        }
    }
    for (client, mut indices) in by_client {
        indices.sort_by_key(|&i| completion_key(&events[i]));
        let mut max: Option<(u64, usize)> = None;
        for i in indices {
            let rev = events[i].revision().unwrap_or_default();
            match max {
                Some((max_rev, j)) if rev < max_rev => found.push(
                    AnomalyKind::ClientRevisionRegression,
                    format!(
                        "client c{client}: revision went backwards from {max_rev} to {rev}: \
                         {} then {}",
                        describe_event(&events[j]),
                        describe_event(&events[i])
                    ),
                    vec![events[j].id, events[i].id],
                ),
                Some((max_rev, _)) if rev <= max_rev => {}
                _ => max = Some((rev, i)),
            }
        }
    }
}

fn duplicate_write_revisions(events: &[HistoryEvent], found: &mut Collector) {
    let mut by_revision: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        if let (true, Some(rev)) = (event.is_acknowledged_write(), event.revision()) {
            by_revision.entry(rev).or_default().push(i);
        }
    }
    for (rev, indices) in by_revision {
        if indices.len() > 1 {
            let lines: Vec<String> = indices.iter().map(|&i| describe_event(&events[i])).collect();
            found.push(
                AnomalyKind::DuplicateWriteRevision,
                format!(
                    "{} acknowledged writes share revision {rev}: {}",
                    indices.len(),
                    lines.join("; ")
                ),
                indices.iter().map(|&i| events[i].id).collect(),
            );
        }
    }
}

fn real_time_order(events: &[HistoryEvent], found: &mut Collector) {
    let with_rev: Vec<usize> = (0..events.len()).filter(|&i| events[i].revision().is_some()).collect();
    let mut by_completion: Vec<usize> = with_rev
        .iter()
        .copied()
        .filter(|&i| events[i].complete_ns.is_some())
        .collect();
    by_completion.sort_by_key(|&i| completion_key(&events[i]));
    let mut by_invocation = with_rev;
    by_invocation.sort_by_key(|&i| (events[i].invoke_ns, events[i].id));

    let rev = |i: usize| events[i].revision().unwrap_or_default();
    let mut next = 0;
    // Highest revision (and its op) among writes / among all ops completed
    // so far.
    let mut max_write: Option<(u64, usize)> = None;
    let mut max_any: Option<(u64, usize)> = None;
    for b in by_invocation {
        let invoked = events[b].invoke_ns;
        while next < by_completion.len() && events[by_completion[next]].complete_ns.unwrap_or(u64::MAX) < invoked {
            let a = by_completion[next];
            if max_any.is_none_or_lower(rev(a)) {
                max_any = Some((rev(a), a));
            }
            if events[a].is_acknowledged_write() && max_write.is_none_or_lower(rev(a)) {
                max_write = Some((rev(a), a));
            }
            next += 1;
        }
        let b_rev = rev(b);
        let b_writes = events[b].is_acknowledged_write();
        let violated = |(a_rev, _): (u64, usize)| {
            if b_writes {
                b_rev <= a_rev
            } else {
                b_rev < a_rev
            }
        };
        let (kind, a) = match (max_write, max_any) {
            (Some(w), _) if b_writes && violated(w) => (AnomalyKind::WriteRevisionOrder, w.1),
            (_, Some(x)) if violated(x) => (AnomalyKind::StaleRevision, x.1),
            _ => continue,
        };
        // The same pair within one client is the per-client check's finding.
        if events[a].client == events[b].client && b_rev < rev(a) {
            continue;
        }
        let relation = if b_writes { "not above" } else { "below" };
        found.push(
            kind,
            format!(
                "revision {b_rev} is {relation} {} although the operation started after the \
                 other completed: {} completed before {} was invoked",
                rev(a),
                describe_event(&events[a]),
                describe_event(&events[b])
            ),
            vec![events[a].id, events[b].id],
        );
    }
}

trait LowerThan {
    fn is_none_or_lower(&self, rev: u64) -> bool;
}

impl LowerThan for Option<(u64, usize)> {
    fn is_none_or_lower(&self, rev: u64) -> bool {
        match self {
            Some((max, _)) => *max < rev,
            None => true,
        }
    }
}

fn value_origins(events: &[HistoryEvent], found: &mut Collector, warnings: &mut Vec<String>) {
    let mut writers: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut by_value: HashMap<&str, usize> = HashMap::new();
    let mut appended: HashSet<&str> = HashSet::new();
    for (i, event) in events.iter().enumerate() {
        if let Some(value) = event.op.written_value() {
            writers.entry((event.key(), value)).or_default().push(i);
            *by_value.entry(value).or_default() += 1;
        }
        if matches!(event.op, Operation::Append { .. }) {
            appended.insert(event.key());
        }
    }
    let mut duplicated: Vec<&str> = by_value.into_iter().filter(|&(_, n)| n > 1).map(|(v, _)| v).collect();
    if !duplicated.is_empty() {
        duplicated.sort_unstable();
        let shown: Vec<String> = duplicated.iter().take(5).map(|v| format!("{v:?}")).collect();
        warnings.push(format!(
            "{} value(s) were written by more than one operation (the recorder should write \
             unique values; mod_revision checks skip them), e.g. {}",
            duplicated.len(),
            shown.join(", ")
        ));
    }

    for event in events {
        if event.outcome != Outcome::Ok || appended.contains(event.key()) {
            continue;
        }
        let Some(result) = &event.result else {
            continue;
        };
        let (seen, what) = match &event.op {
            Operation::Get { .. } => match &result.value {
                Some(Some(v)) => (v.as_str(), "read"),
                _ => continue,
            },
            Operation::Cas { expected: Some(v), .. } if result.succeeded == Some(true) => {
                (v.as_str(), "successful cas compared against")
            }
            _ => continue,
        };
        let sources = writers.get(&(event.key(), seen)).map(Vec::as_slice).unwrap_or_default();
        let effective = |&&w: &&usize| {
            let writer = &events[w];
            match writer.outcome {
                Outcome::Fail => false,
                Outcome::Unknown => true,
                Outcome::Ok => match writer.op {
                    Operation::Cas { .. } => writer.result.as_ref().and_then(|r| r.succeeded) != Some(false),
                    _ => true,
                },
            }
        };
        if sources.is_empty() {
            found.push(
                AnomalyKind::ReadOfUnwrittenValue,
                format!(
                    "read of a value never written: {what} {seen:?}, which no operation wrote \
                     to key {:?}: {}",
                    event.key(),
                    describe_event(event)
                ),
                vec![event.id],
            );
            continue;
        }
        if !sources.iter().any(|w| effective(&w)) {
            let ids: Vec<u64> = sources.iter().map(|&w| events[w].id).collect();
            let mut ops = vec![event.id];
            ops.extend(&ids);
            found.push(
                AnomalyKind::ReadOfFailedWrite,
                format!(
                    "{what} {seen:?}, but every write of it ({}) certainly did not take effect: {}",
                    id_list(&ids),
                    describe_event(event)
                ),
                ops,
            );
            continue;
        }
        let Operation::Get { .. } = event.op else {
            continue;
        };
        if let (Some(mod_rev), Some(rev)) = (result.mod_revision, result.revision) {
            if mod_rev > rev {
                found.push(
                    AnomalyKind::ModRevisionMismatch,
                    format!(
                        "mod_revision {mod_rev} is above the response's own revision {rev}: {}",
                        describe_event(event)
                    ),
                    vec![event.id],
                );
                continue;
            }
        }
        if let ([w], Some(mod_rev)) = (sources, result.mod_revision) {
            let writer = &events[*w];
            if let (true, Some(write_rev)) = (writer.is_acknowledged_write(), writer.revision()) {
                if write_rev != mod_rev {
                    found.push(
                        AnomalyKind::ModRevisionMismatch,
                        format!(
                            "read {seen:?} with mod_revision {mod_rev}, but the write of it was \
                             acknowledged at revision {write_rev}: {} vs {}",
                            describe_event(event),
                            describe_event(writer)
                        ),
                        vec![event.id, writer.id],
                    );
                }
            }
        }
    }
}
