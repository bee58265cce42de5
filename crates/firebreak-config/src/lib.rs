//! Typed configuration of one Firebreak node, and the topology rule.
//!
//! A node's configuration is read from TOML into [`RawConfig`] (every field
//! documented, most defaulted), overridden field by field from flags or
//! environment variables by the binary, and then validated once by
//! [`RawConfig::validate`] into a [`Config`], which cannot be invalid.
//!
//! [`topology`] holds the failure-domain rule: a voter set must span at
//! least three datacenters and no single datacenter (or room, rack, host)
//! may hold a quorum.

mod config;
pub mod topology;

pub use config::*;
pub use topology::{check_topology, Domains, TopologyError};
