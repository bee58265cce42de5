//! Typed configuration of one Firebreak node, and the topology rule.
//!
//! A node's configuration is read from TOML into [`RawConfig`] (every field
//! documented, most defaulted), overridden field by field from flags or
//! environment variables by the binary, and then validated once by
//! [`RawConfig::validate`] into a [`Config`], which cannot be invalid.
//!
//! [`auth`] holds the auth settings: tokens and password hashing.
//!
//! [`tls`] holds the TLS settings of the client and peer listeners.
//!
//! [`topology`] holds the failure-domain rule: a voter set must span at
//! least three datacenters and no single datacenter (or room, rack, host)
//! may hold a quorum.

pub mod auth;
mod config;
pub mod tls;
pub mod topology;

pub use config::*;
pub use tls::{ClientTls, PeerTls, RawTls, TlsConfig};
pub use topology::{check_topology, Domains, TopologyError};
