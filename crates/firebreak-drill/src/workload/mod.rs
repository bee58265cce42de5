//! The workload: what the clients do and how their histories become one.
//!
//! - [`mix`]: the seeded sequence of operations of one client;
//! - [`outcome`]: what an error says about an operation's effect;
//! - [`client`]: the `firebreak drill-client` process;
//! - [`merge`]: the clients' raw files into the drill's `history.jsonl`;
//! - [`tail`]: live counts for the progress line.

pub mod client;
pub mod merge;
pub mod mix;
pub mod outcome;
pub mod tail;
