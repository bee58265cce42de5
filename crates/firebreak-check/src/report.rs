//! The result of a check: [`CheckReport`] and its parts, serializable as
//! JSON for the drill and renderable as text for `firebreak check FILE`.
//!
//! # Correctness
//!
//! - `verdict` is `FAIL` if any key is proven non-linearizable or any
//!   revision anomaly was found; otherwise `UNKNOWN` if any key's search ran
//!   out of budget; otherwise `PASS`. `PASS` therefore always means every
//!   key was searched to completion and found linearizable.
//! - `linearizable` is `false` if any key is non-linearizable, `true` if
//!   all keys are linearizable, and `null` otherwise. It reflects the
//!   linearizability search only (revision anomalies do not change it).
//! - `Verdict` serializes exactly as `"PASS"`, `"FAIL"`, `"UNKNOWN"`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Overall or per-key judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Checked completely; no violation.
    Pass,
    /// A violation was found.
    Fail,
    /// The budget ran out before a verdict; never to be read as a pass.
    Unknown,
}

impl Verdict {
    /// `PASS`, `FAIL` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of violation an [`Anomaly`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A key's operations admit no linearization.
    NotLinearizable,
    /// A client saw a revision lower than one it had already seen.
    ClientRevisionRegression,
    /// Two acknowledged successful writes reported the same revision.
    DuplicateWriteRevision,
    /// A write that completed before another write was invoked has a
    /// revision that is not lower.
    WriteRevisionOrder,
    /// An operation invoked after another completed reported a lower header
    /// revision (or, for a write, one not higher), where at least one of the
    /// two is not a write.
    StaleRevision,
    /// A get reported a mod_revision other than the revision of the write
    /// that wrote the value, or greater than its own header revision.
    ModRevisionMismatch,
    /// A get (or a successful cas's comparison) saw a value no operation
    /// ever wrote.
    ReadOfUnwrittenValue,
    /// A get saw a value whose only writes certainly did not take effect.
    ReadOfFailedWrite,
}

/// One violation, with the operations involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Kind of violation.
    pub kind: AnomalyKind,
    /// Human-readable explanation.
    pub message: String,
    /// Ids of the operations involved.
    pub ops: Vec<u64>,
}

/// A minimal set of one key's operations that cannot be linearized, with
/// the search's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    /// The key.
    pub key: String,
    /// Operations on the key that entered the search.
    pub original_ops: usize,
    /// Ids of the operations in the counterexample, by invocation time.
    pub ops: Vec<u64>,
    /// If set, the history was cut here: operations invoked later are left
    /// out, and operations still running at this time are treated as having
    /// an unknown outcome. (Sound: if the full history were linearizable,
    /// the cut one would be too.)
    pub cut_at_ns: Option<u64>,
    /// If set, the counterexample starts at this write: no other completed
    /// operation overlaps it, so completed operations before it cannot
    /// matter and are left out. (Sound for the same reason.)
    pub starts_at_op: Option<u64>,
    /// For a recognised classic shape (overwritten read, read from the
    /// future, read of absent after a write with no delete between): why
    /// these few operations alone prove the violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// The longest linearizable prefix found, in linearization order.
    pub linearized_prefix: Vec<u64>,
    /// The key's value after that prefix (`None`: absent).
    pub value_after_prefix: Option<String>,
    /// The operation that had completed but could not be placed after the
    /// prefix.
    pub blocked_op: u64,
    /// Other operations invoked before the blocked one returned that are not
    /// in the prefix (the ones the search could have placed before it).
    pub concurrent_ops: Vec<u64>,
    /// Readable rendering, one line per entry.
    pub text: Vec<String>,
}

/// The result for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// PASS, FAIL or UNKNOWN for this key's linearizability.
    pub verdict: Verdict,
    /// Events on this key in the history.
    pub events: usize,
    /// Operations searched (events minus `fail` and `unknown` reads).
    pub ops: usize,
    /// Of those, operations with an unknown outcome.
    pub unknown_ops: usize,
    /// `unknown` writes left out of the search because no operation could
    /// observe whether they happened (this never changes the verdict).
    pub pruned_ops: usize,
    /// Search steps spent on this key.
    pub steps: u64,
    /// Present when `verdict` is FAIL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
}

/// Counts describing the check.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckStats {
    /// Events in the history.
    pub events: usize,
    /// Events with outcome `ok`.
    pub ok: usize,
    /// Events with outcome `fail` (dropped from the search).
    pub failed: usize,
    /// Events with outcome `unknown`.
    pub unknown: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Total search steps.
    pub steps: u64,
    /// Wall-clock time of the whole check, in milliseconds.
    pub elapsed_ms: u64,
}

/// The full result of [`crate::check_history`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// PASS, FAIL or UNKNOWN.
    pub verdict: Verdict,
    /// Whether the history is linearizable; `null` when not decided.
    pub linearizable: Option<bool>,
    /// One-line summary.
    pub summary: String,
    /// Counts.
    pub stats: CheckStats,
    /// Per-key linearizability results, sorted by key.
    pub keys: Vec<KeyReport>,
    /// Violations found (linearizability and revision checks).
    pub anomalies: Vec<Anomaly>,
    /// Problems with the history itself (not with the store) that the check
    /// worked around.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Whether the verdict is PASS.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// The report as pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a CheckReport always serializes")
    }

    /// A multi-line human-readable rendering: summary, anomalies,
    /// counterexamples, undecided keys and warnings.
    pub fn render_text(&self) -> String {
        let mut out = format!("{}: {}\n", self.verdict, self.summary);
        if !self.anomalies.is_empty() {
            let _ = writeln!(out, "\nanomalies ({}):", self.anomalies.len());
            for anomaly in &self.anomalies {
                let kind = serde_json::to_value(anomaly.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let _ = writeln!(out, "- [{kind}] {}", anomaly.message);
            }
        }
        for key in &self.keys {
            if let Some(cx) = &key.counterexample {
                let _ = writeln!(out, "\ncounterexample for key {:?}:", cx.key);
                for line in &cx.text {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        let undecided: Vec<&str> = self
            .keys
            .iter()
            .filter(|k| k.verdict == Verdict::Unknown)
            .map(|k| k.key.as_str())
            .collect();
        if !undecided.is_empty() {
            let _ = writeln!(
                out,
                "\nundecided keys (budget exhausted) ({}): {}",
                undecided.len(),
                undecided.join(", ")
            );
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nwarnings:");
            for warning in &self.warnings {
                let _ = writeln!(out, "- {warning}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_serializes_as_upper_case_strings() {
        assert_eq!(serde_json::to_string(&Verdict::Pass).unwrap(), "\"PASS\"");
        assert_eq!(serde_json::to_string(&Verdict::Fail).unwrap(), "\"FAIL\"");
        assert_eq!(serde_json::to_string(&Verdict::Unknown).unwrap(), "\"UNKNOWN\"");
        assert_eq!(
            serde_json::to_string(&AnomalyKind::ReadOfUnwrittenValue).unwrap(),
            "\"read_of_unwritten_value\""
        );
    }
}
