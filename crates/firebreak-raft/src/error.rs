//! Errors of the node API, grouped by what the caller should do next.

use firebreak_mvcc::KvError;

/// Why a request to the node failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The request itself was refused; do not retry it unchanged.
    #[error(transparent)]
    Request(#[from] KvError),
    /// The cluster cannot answer now (no leader, no quorum, a timeout);
    /// retry, possibly at another member. For a write the outcome may be
    /// unknown: it may still take effect.
    #[error("{0}")]
    Unavailable(Unavailable),
    /// Only the leader serves this request (etcd's "not leader").
    #[error("etcdserver: not leader")]
    NotLeader,
    /// The request names a member that cannot take it.
    #[error("etcdserver: {0}")]
    BadTarget(String),
    /// A membership change was refused.
    #[error(transparent)]
    Membership(#[from] crate::membership::MembershipError),
    /// The node is shutting down or its storage failed; go elsewhere.
    #[error("etcdserver: server stopped: {0}")]
    Stopped(String),
}

/// The kinds of unavailability, with etcd's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
}

impl From<Unavailable> for NodeError {
    fn from(u: Unavailable) -> Self {
        NodeError::Unavailable(u)
    }
}

impl From<firebreak_auth::AuthError> for NodeError {
    fn from(e: firebreak_auth::AuthError) -> Self {
        NodeError::Request(KvError::Auth(e))
    }
}
