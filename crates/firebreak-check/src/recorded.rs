//! The record of one client operation: [`Recorded`], one envelope (who
//! invoked what, when, and what is known of its effect) around a
//! workload's own operation and result types. The register history's
//! [`crate::HistoryEvent`] is `Recorded<Operation, OpResult>`; the other
//! workloads ([`crate::bank`], [`crate::ranges`], [`crate::locks`]) have
//! theirs, and their client files are read ([`parse_recorded`]) and merged
//! ([`merge_recorded`]) here.
//!
//! One JSON object per line, e.g. for the bank workload:
//!
//! ```text
//! {"id":4,"client":2,"dc":"dc1","op":{"type":"read","prefix":"drill/bank/","serializable":false},"invoke_ns":10,"complete_ns":12,"outcome":"ok","result":{"type":"read","revision":9,"kvs":[…]}}
//! ```
//!
//! # Correctness
//!
//! - A client writes an operation's invocation (outcome `unknown`, no
//!   completion) before sending it, and its completion after; the last line
//!   of an id wins, so an operation whose client died stays `unknown`.
//! - `fail` means the operation certainly had no effect. A `fail` may carry
//!   a result when the store answered that it did nothing (a transaction
//!   whose comparison failed).
//! - A torn line (a client killed in the middle of a write) is skipped with
//!   a warning; only the last line of a file can be torn.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::history::Outcome;

/// One operation of a workload: what was invoked, when, and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded<O, R> {
    /// Unique within its history: a client's file, or the merged history
    /// ([`merge_recorded`]).
    pub id: u64,
    /// The client (process) that issued it. A client issues one operation
    /// at a time.
    pub client: u64,
    /// The datacenter / failure domain the client talked to, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
    /// What was invoked.
    pub op: O,
    /// `CLOCK_MONOTONIC` nanoseconds when it was invoked (before sending).
    pub invoke_ns: u64,
    /// When it completed or the client gave up; `None` for an `unknown`
    /// outcome whose client never gave up explicitly.
    #[serde(default)]
    pub complete_ns: Option<u64>,
    /// What is known about its effect.
    pub outcome: Outcome,
    /// The answer: for `ok`, and for a `fail` the store answered. (A
    /// missing field reads as `None`.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
}

impl<O, R> Recorded<O, R> {
    /// An operation just invoked; complete it with [`Recorded::ok`],
    /// [`Recorded::fail`] ([`Recorded::fail_with`]) or
    /// [`Recorded::unknown`]. Until then its outcome is `unknown`.
    pub fn invoked(id: u64, client: u64, dc: Option<&str>, op: O, invoke_ns: u64) -> Self {
        Recorded {
            id,
            client,
            dc: dc.map(str::to_owned),
            op,
            invoke_ns,
            complete_ns: None,
            outcome: Outcome::Unknown,
            result: None,
        }
    }

    /// Completed with an answer.
    pub fn ok(mut self, complete_ns: u64, result: R) -> Self {
        self.complete_ns = Some(complete_ns);
        self.outcome = Outcome::Ok;
        self.result = Some(result);
        self
    }

    /// Certainly had no effect.
    pub fn fail(self, complete_ns: u64) -> Self {
        self.fail_with(complete_ns, None)
    }

    /// Certainly had no effect, with the store's answer if there was one
    /// (a transaction whose comparison failed).
    pub fn fail_with(mut self, complete_ns: u64, result: Option<R>) -> Self {
        self.complete_ns = Some(complete_ns);
        self.outcome = Outcome::Fail;
        self.result = result;
        self
    }

    /// May or may not have taken effect; `gave_up_ns` is when the client
    /// stopped waiting.
    pub fn unknown(mut self, gave_up_ns: Option<u64>) -> Self {
        self.complete_ns = gave_up_ns;
        self.outcome = Outcome::Unknown;
        self.result = None;
        self
    }

    /// The answer of an `ok` operation.
    pub fn ok_result(&self) -> Option<&R> {
        match self.outcome {
            Outcome::Ok => self.result.as_ref(),
            _ => None,
        }
    }

    /// Whether the operation's real-time interval overlaps `[from, to]`
    /// (an operation that never completed runs forever).
    pub fn overlaps(&self, from: u64, to: u64) -> bool {
        self.invoke_ns <= to && self.complete_ns.unwrap_or(u64::MAX) >= from
    }
}

impl<O: Serialize, R: Serialize> Recorded<O, R> {
    /// The record as a JSON value, for an anomaly's list of operations.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one client's file: the last line of each id, in id order, plus
/// warnings for lines that could not be parsed (`source` names the file).
pub fn parse_recorded<O, R>(text: &str, source: &str) -> (Vec<Recorded<O, R>>, Vec<String>)
where
    O: DeserializeOwned,
    R: DeserializeOwned,
{
    let mut by_id = BTreeMap::new();
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Recorded<O, R>>(line) {
            Ok(record) => {
                by_id.insert(record.id, record);
            }
            Err(e) => warnings.push(format!("{source} line {}: skipped ({e})", n + 1)),
        }
    }
    (by_id.into_values().collect(), warnings)
}

/// Merges the clients' records into one history: renumbered `1..` in
/// invocation order, times relative to `zero_ns` (real-time order is kept).
pub fn merge_recorded<O, R>(clients: Vec<Vec<Recorded<O, R>>>, zero_ns: u64) -> Vec<Recorded<O, R>> {
    let mut all: Vec<Recorded<O, R>> = clients.into_iter().flatten().collect();
    all.sort_by_key(|r| (r.invoke_ns, r.client, r.id));
    for (i, record) in all.iter_mut().enumerate() {
        record.id = i as u64 + 1;
        record.invoke_ns = record.invoke_ns.saturating_sub(zero_ns);
        record.complete_ns = record.complete_ns.map(|t| t.saturating_sub(zero_ns));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rec = Recorded<String, u64>;

    #[test]
    fn last_line_wins_torn_lines_warn_and_merge_renumbers() {
        let a = Rec::invoked(1, 7, Some("dc1"), "x".into(), 100);
        let a_done = a.clone().ok(150, 3);
        let b = Rec::invoked(2, 7, Some("dc1"), "y".into(), 160);
        let text = [&a, &a_done, &b]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect::<String>()
            + "{\"id\":3,";
        let (records, warnings) = parse_recorded::<String, u64>(&text, "c7.x.jsonl");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].outcome, Outcome::Ok);
        assert_eq!(records[0].ok_result(), Some(&3));
        assert_eq!(records[1].outcome, Outcome::Unknown);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let other = vec![Rec::invoked(1, 8, None, "z".into(), 120).fail_with(130, Some(4))];
        let merged = merge_recorded(vec![records, other], 100);
        assert_eq!(
            merged.iter().map(|r| (r.id, r.client)).collect::<Vec<_>>(),
            [(1, 7), (2, 8), (3, 7)]
        );
        assert_eq!(merged[0].complete_ns, Some(50));
        assert_eq!(merged[1].result, Some(4), "a fail keeps the store's answer");
        assert!(merged[2].overlaps(0, 60) && !merged[1].overlaps(31, 40));
    }
}
