//! Firebreak's consistency checker for recorded client histories.
//!
//! This crate owns the history format the drill records ([`history`]), the
//! checker that judges it ([`check_history`]: a per-key linearizability
//! search plus cross-key revision checks), the report it produces
//! ([`CheckReport`], rendered with [`CheckReport::render_text`]), and
//! importers for public histories with known verdicts ([`import`]) that keep
//! the checker honest.
//!
//! Beyond registers, the drill's other workloads have their own histories
//! and checkers, one module each: [`bank`] (multi-key transactions keep a
//! total), [`ranges`] (a Range returns exactly the state at its revision),
//! [`locks`] (mutual exclusion of v3lock holders, by the clients' clocks)
//! and [`watches`] (every change delivered once, in order, across
//! reconnects). They share the record envelope ([`recorded`]), the store's
//! own history ([`store_log`]) and the report ([`workload_report`]).
//!
//! Internally: `model` (the register semantics and per-key partitions),
//! `search` (Wing & Gong / Lowe), `patterns` (classic violation shapes) and
//! `counterexample` (shrinking a violation to a few operations).
//!
//! ```no_run
//! use std::time::Duration;
//! use firebreak_check::{check_history, read_history_jsonl, Budget, Verdict};
//!
//! let events = read_history_jsonl("history.jsonl")?;
//! let report = check_history(&events, Budget::with_duration(Duration::from_secs(30)));
//! println!("{}", report.render_text());
//! std::process::exit(if report.verdict == Verdict::Pass { 0 } else { 1 });
//! # Ok::<(), firebreak_check::HistoryError>(())
//! ```
//!
//! # Correctness
//!
//! - `PASS` means every key's search finished and found a linearization,
//!   and no revision anomaly was found. A search that runs out of budget
//!   makes its key `UNKNOWN`, never `PASS`.
//! - `FAIL` is only reported with evidence: a key for which the exhaustive
//!   (memoised) search found no linearization, or which shows one of the
//!   classic two-to-four-operation shapes that prove it (a read of an
//!   overwritten value, a read from the future, a read of an absent key after
//!   a write with no delete possible in between), each with a counterexample
//!   whose non-linearizability implies the whole key's; or a revision/value
//!   anomaly naming the operations involved.
//! - Operations whose outcome is `unknown` may have taken effect at any time
//!   after invocation, or never; `fail` operations are ignored. Neither can
//!   cause a FAIL by itself.

pub mod bank;
pub mod budget;
pub mod check;
mod counterexample;
pub mod history;
pub mod import;
pub mod locks;
mod model;
mod patterns;
pub mod ranges;
pub mod recorded;
pub mod render;
pub mod report;
pub mod revisions;
mod search;
pub mod store_log;
pub mod watches;
pub mod workload_report;

pub use budget::Budget;
pub use check::check_history;
pub use history::{
    parse_history_jsonl, read_history_jsonl, to_jsonl_line, write_history_jsonl, HistoryError, HistoryEvent,
    HistoryWriter, OpResult, Operation, Outcome,
};
pub use import::ImportError;
pub use render::describe_event;
pub use report::{Anomaly, AnomalyKind, CheckReport, CheckStats, Counterexample, KeyReport, Verdict};
pub use store_log::{KeyChange, Kv, StoreLog};
pub use workload_report::{WorkloadAnomaly, WorkloadReport};
