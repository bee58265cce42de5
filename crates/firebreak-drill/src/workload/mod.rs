//! The workload: what the clients do and how their histories become one.
//!
//! - [`mix`]: the seeded sequence of operations of one client;
//! - [`outcome`]: what an error says about an operation's effect;
//! - [`client`]: the `firebreak drill-client` process;
//! - the other workloads a client may run beside (or instead of) the
//!   registers, each a task that records its own history: [`bank`],
//!   [`ranges`], [`locks`], [`watches`]; what they share: [`context`] (the
//!   client's settings, pacing), [`endpoints`] (fail-over, timeouts,
//!   outcomes) and [`recorder`] (their JSON-lines files);
//! - [`merge`]: the clients' raw files into the drill's `history.jsonl`;
//! - [`tail`]: live counts for the progress line.

pub mod bank;
pub mod client;
pub mod context;
pub mod endpoints;
pub mod locks;
pub mod merge;
pub mod mix;
pub mod outcome;
pub mod ranges;
pub mod recorder;
pub mod tail;
pub mod watches;
