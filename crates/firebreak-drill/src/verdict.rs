//! The checks that depend on the history alone, shared by the drill and by
//! `firebreak check`, so that both print the same verdict for the same
//! `history.jsonl`.
//!
//! - `linearizable`: the checker's per-key linearizability search.
//! - `revisions`: the checker's revision checks (per-client order, unique
//!   write revisions, real-time order, value origins, mod revisions).
//! - `final_read`: the final linearizable read (client 0) shows every
//!   acknowledged write or a later one ([`crate::verify::lost`]).

use std::collections::BTreeMap;

use firebreak_check::{AnomalyKind, CheckReport, HistoryEvent, Outcome};

use crate::report::{CheckResult, Status};
use crate::verify::final_read::DRILL_CLIENT;
use crate::verify::lost::lost_by_final_read;

/// The history checks, from the history and the checker's report on it.
pub fn history_checks(events: &[HistoryEvent], check: &CheckReport) -> Vec<CheckResult> {
    let mut checks = Vec::new();

    let undecided = check
        .keys
        .iter()
        .filter(|k| k.verdict == firebreak_check::Verdict::Unknown)
        .count();
    let failed: Vec<&str> = check
        .keys
        .iter()
        .filter(|k| k.verdict == firebreak_check::Verdict::Fail)
        .map(|k| k.key.as_str())
        .collect();
    let (status, detail) = match check.linearizable {
        Some(true) => (
            Status::Pass,
            format!(
                "every key's history has a linearization ({} operations on {} keys, {} with unknown outcome, {} search steps)",
                check.stats.events, check.stats.keys, check.stats.unknown, check.stats.steps
            ),
        ),
        Some(false) => (
            Status::Fail,
            format!("no linearization exists for key(s) {}; see the counterexample", failed.join(", ")),
        ),
        None => (
            Status::Unknown,
            format!("the search ran out of budget on {undecided} key(s) before deciding"),
        ),
    };
    checks.push(CheckResult {
        name: "linearizable".into(),
        status,
        from_history: true,
        detail,
    });

    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for a in check
        .anomalies
        .iter()
        .filter(|a| a.kind != AnomalyKind::NotLinearizable)
    {
        let name = serde_json::to_value(a.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *kinds.entry(name).or_default() += 1;
    }
    let revision_ops = events.iter().filter(|e| e.revision().is_some()).count();
    checks.push(CheckResult {
        name: "revisions".into(),
        status: if kinds.is_empty() { Status::Pass } else { Status::Fail },
        from_history: true,
        detail: if kinds.is_empty() {
            format!(
                "no client ever saw a revision go backwards; revisions of {revision_ops} answers agree with real \
                 time, write revisions are unique, every value read was written"
            )
        } else {
            format!(
                "revision anomalies: {}",
                kinds
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    });

    let final_reads = events
        .iter()
        .filter(|e| e.client == DRILL_CLIENT && e.outcome == Outcome::Ok)
        .count();
    let acked = events
        .iter()
        .filter(|e| e.client != DRILL_CLIENT && e.is_acknowledged_write())
        .count();
    let lost = lost_by_final_read(events);
    checks.push(CheckResult {
        name: "final_read".into(),
        status: if !lost.is_empty() {
            Status::Fail
        } else if final_reads == 0 {
            Status::Unknown
        } else {
            Status::Pass
        },
        from_history: true,
        detail: if !lost.is_empty() {
            format!(
                "{} of {acked} acknowledged writes are missing from the final read (ops {})",
                lost.len(),
                lost.keys().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", ")
            )
        } else if final_reads == 0 {
            "the history holds no final read (client 0)".into()
        } else {
            format!("the final read of {final_reads} keys shows each of the {acked} acknowledged writes or a later one")
        },
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_check::{check_history, Budget, OpResult, Operation, Verdict};

    #[test]
    fn a_clean_history_passes_and_a_lost_write_fails() {
        let put = HistoryEvent::invoked(
            1,
            1,
            Some("dc1"),
            Operation::Put {
                key: "k".into(),
                value: "a".into(),
            },
            0,
        )
        .ok(10, OpResult::put(2));
        let read = |value: Option<&str>, mod_rev| {
            HistoryEvent::invoked(2, DRILL_CLIENT, Some("dc2"), Operation::Get { key: "k".into() }, 20)
                .ok(30, OpResult::get(value.map(str::to_owned), 2, mod_rev))
        };
        let good = vec![put.clone(), read(Some("a"), Some(2))];
        let checks = history_checks(&good, &check_history(&good, Budget::default()));
        assert_eq!(crate::report::verdict_of(&checks), Verdict::Pass, "{checks:?}");

        let lost = vec![put, read(None, None)];
        let checks = history_checks(&lost, &check_history(&lost, Budget::default()));
        let status: Vec<(&str, Status)> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert!(status.contains(&("final_read", Status::Fail)), "{checks:?}");
        assert!(status.contains(&("linearizable", Status::Fail)), "{checks:?}");
    }
}
