//! Turning the clients' raw history files into the drill's one history.
//!
//! Each raw file holds, per operation, an invocation line and (unless the
//! client died first) a completion line with the same id. The merged
//! history keeps the last line of each operation, renumbers operations
//! `1..` in invocation order, and expresses times in nanoseconds since the
//! load started (the drill's time zero), so that a counterexample reads
//! `t=12.345s` on the same axis as the report's timeline.
//!
//! # Correctness
//!
//! - An operation whose completion line is missing keeps its invocation
//!   line: outcome `unknown`, no completion time (it may have taken effect
//!   at any time after it was invoked).
//! - Rebasing subtracts one constant from every time, so real-time order is
//!   unchanged; no invocation precedes time zero (clients start there).
//! - A torn last line (a client killed in the middle of a write) is skipped
//!   with a warning; it can only be a completion whose invocation line is
//!   intact, or an invocation of a request never sent.

use std::collections::BTreeMap;
use std::path::Path;

use firebreak_check::{HistoryEvent, Outcome};

/// The events of one client's raw file, last line per id, plus warnings.
pub fn read_client_file(path: &Path) -> (Vec<HistoryEvent>, Vec<String>) {
    let mut warnings = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            warnings.push(format!("{}: {e}", path.display()));
            return (Vec::new(), warnings);
        }
    };
    let mut by_id: BTreeMap<u64, HistoryEvent> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<HistoryEvent>(line) {
            Ok(event) => {
                by_id.insert(event.id, event);
            }
            Err(e) => warnings.push(format!("{} line {}: skipped ({e})", path.display(), n + 1)),
        }
    }
    (by_id.into_values().collect(), warnings)
}

/// Merges every client's events into one history: renumbered in invocation
/// order, times relative to `zero_ns`.
pub fn merge(clients: Vec<Vec<HistoryEvent>>, zero_ns: u64) -> Vec<HistoryEvent> {
    let mut all: Vec<HistoryEvent> = clients.into_iter().flatten().collect();
    all.sort_by_key(|e| (e.invoke_ns, e.client, e.id));
    for (i, event) in all.iter_mut().enumerate() {
        event.id = i as u64 + 1;
        event.invoke_ns = event.invoke_ns.saturating_sub(zero_ns);
        event.complete_ns = event.complete_ns.map(|t| t.saturating_sub(zero_ns));
        if event.outcome != Outcome::Ok {
            event.result = None;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_check::{to_jsonl_line, OpResult, Operation};

    fn put(id: u64, client: u64, at: u64) -> HistoryEvent {
        HistoryEvent::invoked(
            id,
            client,
            Some("dc1"),
            Operation::Put {
                key: "k".into(),
                value: format!("c{client}-{id}"),
            },
            at,
        )
    }

    #[test]
    fn last_line_wins_and_a_missing_completion_stays_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c1.jsonl");
        let first = put(1, 1, 1_000);
        let done = first.clone().ok(2_000, OpResult::put(5));
        let second = put(2, 1, 3_000);
        let text = [&first, &done, &second]
            .iter()
            .map(|e| to_jsonl_line(e).unwrap() + "\n")
            .collect::<String>()
            + "{\"id\":3,\"cli";
        std::fs::write(&path, text).unwrap();
        let (events, warnings) = read_client_file(&path);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].outcome, Outcome::Ok);
        assert_eq!(events[1].outcome, Outcome::Unknown);
        assert_eq!(events[1].complete_ns, None);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn merged_history_is_renumbered_and_rebased() {
        let a = vec![put(1, 1, 5_000).ok(6_000, OpResult::put(2))];
        let b = vec![put(1, 2, 4_000).unknown(Some(9_000))];
        let merged = merge(vec![a, b], 1_000);
        assert_eq!(merged[0].client, 2);
        assert_eq!(merged[0].id, 1);
        assert_eq!(merged[0].invoke_ns, 3_000);
        assert_eq!(merged[0].complete_ns, Some(8_000));
        assert_eq!(merged[1].id, 2);
        assert_eq!(merged[1].invoke_ns, 4_000);
    }
}
