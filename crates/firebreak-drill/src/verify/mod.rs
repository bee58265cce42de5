//! The checks after the load: what the store kept and what clients saw.
//!
//! - [`final_read`]: the final linearizable read of the whole keyspace;
//! - [`replicas`]: every surviving and restored member at the same state;
//! - [`store_history`]: the store's history, revision by revision;
//! - [`lost`]: acknowledged writes missing from the final read or from the
//!   store's history;
//! - [`isolation`]: a cut-off datacenter served nothing;
//! - [`workloads`]: the workloads other than registers (bank, ranges,
//!   locks, watches), each by its `firebreak-check` checker.
//!
//! Linearizability and revision order come from `firebreak-check`.

pub mod final_read;
pub mod isolation;
pub mod lost;
pub mod replicas;
pub mod store_history;
pub mod workloads;
