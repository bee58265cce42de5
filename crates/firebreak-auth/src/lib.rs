//! Who may do what: etcd's users, roles and permissions, as replicated
//! state.
//!
//! This crate owns the auth state of one replica ([`AuthState`]): users
//! with their bcrypt password hashes and roles, roles with their key
//! permissions, the enabled flag, the auth revision and the simple tokens
//! issued. Every change is an [`AuthCommand`] that travels through the Raft
//! log and is applied deterministically by [`AuthState::apply`], with etcd
//! 3.5's rules and errors; the permission checks ([`AuthState::check`],
//! [`AuthState::check_admin`]) are etcd's `isOpPermitted` and
//! `IsAdminPermitted`. It knows nothing of gRPC, Raft or the key-value
//! store: which permissions a key-value request needs is decided by
//! `firebreak-mvcc`, which calls these checks.
//!
//! Key types:
//! - [`AuthState`], [`AuthCommand`], [`AuthApplied`]: the state, what
//!   changes it, what a change answers.
//! - [`AuthInfo`]: who makes a request (a user and the auth revision of
//!   its token), as etcd's `AuthInfo`.
//! - [`AuthError`]: etcd's auth errors, with etcd's messages.
//! - [`password`]: bcrypt, outside the state machine (etcd hashes before it
//!   proposes, so that applying stays cheap and deterministic).
//! - [`token`]: simple tokens and JWTs.

mod command;
mod error;
pub mod password;
mod perm;
mod state;
pub mod token;

pub use command::{AuthApplied, AuthCommand};
pub use error::{AuthError, AuthErrorClass};
pub use perm::{KeyPermission, Operation, PermissionType};
pub use state::{AuthState, Role, SimpleToken, User, ROOT_ROLE, ROOT_USER};

use serde::{Deserialize, Serialize};

/// Who makes a request, as etcd's `AuthInfo`: a user name and the auth
/// revision its credentials were issued at. The default (no user,
/// revision 0) is a request without credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthInfo {
    pub user: String,
    pub revision: u64,
}

impl AuthInfo {
    /// A request without credentials.
    pub fn anonymous() -> AuthInfo {
        AuthInfo::default()
    }

    /// Whether the request came without credentials.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_empty()
    }
}
