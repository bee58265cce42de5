//! What a workload checker ([`crate::bank`], [`crate::ranges`],
//! [`crate::locks`], [`crate::watches`]) reports: a [`WorkloadReport`] with
//! a verdict, a sentence of counts, and each [`WorkloadAnomaly`] together
//! with the recorded operations that show it.
//!
//! # Correctness
//!
//! - The verdict is `FAIL` if any anomaly was found; otherwise `UNKNOWN` if
//!   some observation could not be verified (the store's history was
//!   missing or incomplete where it was needed, or nothing was observed at
//!   all); otherwise `PASS`. `PASS` therefore means every observation was
//!   checked.
//! - At most [`MAX_PER_KIND`] anomalies of each kind are listed; the
//!   report's `omitted` counts the rest, so a long run of the same fault
//!   stays readable and no anomaly goes uncounted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::Verdict;

/// Most anomalies of one kind listed in a report.
pub const MAX_PER_KIND: usize = 20;

/// One violation, with the operations (or watch records) that show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadAnomaly {
    /// The kind, in `snake_case` (each checker documents its kinds).
    pub kind: String,
    /// What is wrong, in a sentence or two, with revisions and values.
    pub message: String,
    /// The records involved, as recorded (times relative to the drill's
    /// time zero once merged), the offending one first.
    pub ops: Vec<serde_json::Value>,
}

/// The result of one workload checker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// `bank`, `ranges`, `locks` or `watches`.
    pub workload: String,
    /// PASS, FAIL or UNKNOWN (see the module's rules).
    pub verdict: Verdict,
    /// One or two sentences with counts.
    pub detail: String,
    /// What was counted (operations by kind and outcome, observations
    /// checked, unverifiable ones, …).
    pub counts: BTreeMap<String, u64>,
    /// The anomalies listed (at most [`MAX_PER_KIND`] of each kind).
    pub anomalies: Vec<WorkloadAnomaly>,
    /// Anomalies found but not listed, by kind.
    pub omitted: BTreeMap<String, u64>,
    /// Problems with the records themselves (torn lines, odd records).
    pub warnings: Vec<String>,
}

impl WorkloadReport {
    /// Every anomaly found, listed or not.
    pub fn anomaly_count(&self) -> u64 {
        self.anomalies.len() as u64 + self.omitted.values().sum::<u64>()
    }
}

/// Collects anomalies and counts for one checker.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    anomalies: Vec<WorkloadAnomaly>,
    per_kind: BTreeMap<String, u64>,
    pub(crate) counts: BTreeMap<String, u64>,
    pub(crate) warnings: Vec<String>,
}

impl Findings {
    /// Records an anomaly of `kind`.
    pub(crate) fn anomaly(&mut self, kind: &str, message: String, ops: Vec<serde_json::Value>) {
        let seen = self.per_kind.entry(kind.to_owned()).or_default();
        *seen += 1;
        if *seen as usize <= MAX_PER_KIND {
            self.anomalies.push(WorkloadAnomaly {
                kind: kind.to_owned(),
                message,
                ops,
            });
        }
    }

    /// Adds `n` to the count `name`.
    pub(crate) fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_owned()).or_default() += n;
    }

    /// The count `name` (0 if never counted).
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Anomalies found, listed or not.
    pub(crate) fn found(&self) -> u64 {
        self.per_kind.values().sum()
    }

    /// The end of a checker's detail sentence: `; anomalies: gap: 2,
    /// duplicate: 1` if any was found, else nothing.
    pub(crate) fn anomalies_suffix(&self) -> String {
        if self.found() > 0 {
            format!("; anomalies: {}", kinds_summary(&self.per_kind))
        } else {
            String::new()
        }
    }

    /// The report: FAIL with anomalies, else UNKNOWN if `undecided` says
    /// why something could not be verified, else PASS.
    pub(crate) fn finish(self, workload: &str, detail: String, undecided: Option<String>) -> WorkloadReport {
        let verdict = if !self.anomalies.is_empty() {
            Verdict::Fail
        } else if undecided.is_some() {
            Verdict::Unknown
        } else {
            Verdict::Pass
        };
        let mut detail = detail;
        if let (Verdict::Unknown, Some(why)) = (verdict, &undecided) {
            detail = format!("{detail}; undecided: {why}");
        }
        let omitted = self
            .per_kind
            .iter()
            .filter(|(_, n)| **n as usize > MAX_PER_KIND)
            .map(|(k, n)| (k.clone(), n - MAX_PER_KIND as u64))
            .collect();
        WorkloadReport {
            workload: workload.to_owned(),
            verdict,
            detail,
            counts: self.counts,
            anomalies: self.anomalies,
            omitted,
            warnings: self.warnings,
        }
    }
}

/// `kind: n` for every kind found, e.g. `gap: 2, duplicate: 1`.
pub(crate) fn kinds_summary(report_kinds: &BTreeMap<String, u64>) -> String {
    report_kinds
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_anomalies_then_undecided_and_caps_each_kind() {
        let mut f = Findings::default();
        for i in 0..(MAX_PER_KIND + 3) {
            f.anomaly("gap", format!("gap {i}"), vec![]);
        }
        f.anomaly("duplicate", "dup".into(), vec![]);
        assert_eq!(
            f.anomalies_suffix(),
            format!("; anomalies: duplicate: 1, gap: {}", MAX_PER_KIND + 3)
        );
        let report = f.finish("watches", "x".into(), Some("store".into()));
        assert_eq!(report.verdict, Verdict::Fail);
        assert_eq!(report.anomalies.len(), MAX_PER_KIND + 1);
        assert_eq!(report.omitted["gap"], 3);
        assert_eq!(report.anomaly_count(), MAX_PER_KIND as u64 + 4);
        let unknown = Findings::default().finish("locks", "n".into(), Some("nothing held".into()));
        assert_eq!(unknown.verdict, Verdict::Unknown);
        assert!(unknown.detail.contains("nothing held"));
        assert_eq!(
            Findings::default().finish("bank", "n".into(), None).verdict,
            Verdict::Pass
        );
    }
}
