//! TLS for Firebreak: rustls configurations that follow their files on
//! disk, for the client listener, the peer listener and the connections a
//! member makes to its peers.
//!
//! - [`TlsAcceptor`] serves a certificate and key, and with a trusted CA
//!   requires and verifies client certificates (etcd's `client_cert_auth`,
//!   and always on the peer listener: mutual TLS between members).
//! - [`TlsConnector`] connects to a peer with this member's certificate and
//!   verifies the peer's against the cluster's CA.
//! - Both re-read their files at every handshake and rebuild their rustls
//!   configuration when the bytes changed ([`reload`]), so certificates
//!   rotate without a restart.
//! - [`common_name`] reads the subject common name of a verified client
//!   certificate: the user of a request that carries no token, as in etcd.
//! - With the `generate` feature, [`generate`] makes a CA and certificates
//!   signed by it (`firebreak up --tls`, tests).
//!
//! Only the `ring` crypto provider is compiled in (no aws-lc-rs: it needs
//! cmake and a C++ toolchain and builds for minutes).

use std::path::PathBuf;
use std::sync::Arc;

mod client;
mod common_name;
#[cfg(any(test, feature = "generate"))]
pub mod generate;
#[cfg(test)]
mod handshake_tests;
mod pem;
pub mod reload;
mod server;

pub use client::{server_name, tool_config, ClientFiles, TlsConnector};
pub use common_name::common_name;
pub use server::{ServerFiles, TlsAcceptor};

/// Re-exported so that callers name the same rustls and tokio-rustls.
pub use rustls;
pub use tokio_rustls;

/// Why TLS material could not be used. At start-up these are fatal; when a
/// changed file is refused on reload, the previous configuration stays in
/// use (see [`reload`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    /// A file holds no usable PEM material of the kind expected.
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// rustls refused the material as a whole (a key that does not match
    /// its certificate, a CA it cannot use).
    #[error("{what}: {reason}")]
    Refused { what: String, reason: String },
}

/// The one crypto provider: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
