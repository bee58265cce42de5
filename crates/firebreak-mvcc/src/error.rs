//! The errors a key-value request can end in, as a client sees them.
//!
//! Every variant is the client's fault or a fact about the data: none of
//! them is worth retrying unchanged. Their `Display` texts are etcd's own
//! messages, because clients (etcdctl, client libraries) match on them.

use firebreak_auth::AuthErrorClass;
use serde::{Deserialize, Serialize};

/// A request that the store refused. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KvError {
    /// A key was empty where etcd requires one.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` was set together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` was set together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn branch or its compares hold more than [`crate::MAX_TXN_OPS`] entries.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn writes one key twice (or puts a key it also deletes).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// `ignore_value` / `ignore_lease` on a key that does not exist, or an
    /// empty operation in a txn.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A put names a lease that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A read or compaction at a revision above the current one.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A read at a revision that compaction has removed.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// A lease grant names an id that is taken.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A lease grant over etcd's largest TTL.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// The space quota is exhausted (the NOSPACE alarm is raised): only
    /// requests that free space are served.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// An encoded write request above [`crate::MAX_REQUEST_BYTES`].
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// Refused by auth: no or old credentials, or not permitted.
    #[error(transparent)]
    Auth(#[from] firebreak_auth::AuthError),
}

/// The gRPC status class of a [`KvError`], named after gRPC's codes so the
/// protocol layer can map it without knowing each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is malformed.
    InvalidArgument,
    /// A named object does not exist.
    NotFound,
    /// A revision outside the range the store holds.
    OutOfRange,
    /// The request conflicts with the current state.
    FailedPrecondition,
    /// A quota is exhausted.
    ResourceExhausted,
    /// The caller may not do this.
    PermissionDenied,
    /// The caller's credentials are not valid.
    Unauthenticated,
    /// etcd answers with code Unknown.
    Unknown,
}

impl KvError {
    /// The gRPC status class etcd answers this error with.
    pub fn class(&self) -> ErrorClass {
        match self {
            KvError::LeaseNotFound => ErrorClass::NotFound,
            KvError::FutureRevision | KvError::Compacted | KvError::LeaseTtlTooLarge => ErrorClass::OutOfRange,
            KvError::LeaseExists => ErrorClass::FailedPrecondition,
            KvError::NoSpace => ErrorClass::ResourceExhausted,
            KvError::Auth(e) => match e.class() {
                AuthErrorClass::InvalidArgument => ErrorClass::InvalidArgument,
                AuthErrorClass::FailedPrecondition => ErrorClass::FailedPrecondition,
                AuthErrorClass::PermissionDenied => ErrorClass::PermissionDenied,
                AuthErrorClass::Unauthenticated => ErrorClass::Unauthenticated,
                AuthErrorClass::Unknown => ErrorClass::Unknown,
            },
            _ => ErrorClass::InvalidArgument,
        }
    }
}
