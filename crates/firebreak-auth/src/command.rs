//! The changes to the auth state that travel through the Raft log.
//!
//! Passwords travel as bcrypt hashes: the member that takes the request
//! hashes it before proposing (as etcd 3.5 does), so no log entry holds a
//! password and applying stays cheap and deterministic. Every other value
//! a change depends on (a simple token's random prefix, the time a token
//! is issued or renewed at) is chosen by the proposer too.
//!
//! The encoding is bincode, in the log and in snapshots: new variants go
//! at the end only.

use serde::{Deserialize, Serialize};

use crate::perm::KeyPermission;

/// A change to the auth state (or, for [`AuthCommand::Authenticate`], a
/// simple token issued).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthCommand {
    Enable,
    Disable,
    /// Issues the simple token `<prefix>.<log index>` to `name`, valid
    /// until `now_ms + ttl_ms` (Unix milliseconds of the proposer's clock).
    Authenticate {
        name: String,
        prefix: String,
        now_ms: u64,
        ttl_ms: u64,
    },
    UserAdd {
        name: String,
        /// The bcrypt hash; empty for a user without a password.
        password_hash: Vec<u8>,
        no_password: bool,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        password_hash: Vec<u8>,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        name: String,
        role: String,
    },
    RoleAdd {
        name: String,
    },
    RoleGrantPermission {
        name: String,
        /// `None`: the request carried no permission.
        perm: Option<KeyPermission>,
    },
    RoleRevokePermission {
        role: String,
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
    RoleDelete {
        role: String,
    },
    /// Renews simple tokens that were used (until `now_ms + ttl_ms`) and
    /// forgets every token expired at `now_ms`. Members propose these for
    /// the tokens their clients use, so a token stays valid on every
    /// member while it is used on any.
    RenewTokens {
        now_ms: u64,
        ttl_ms: u64,
        tokens: Vec<String>,
    },
}

impl AuthCommand {
    /// Whether only a user with the `root` role may make this change while
    /// auth is enabled (etcd's `needAdminPermission`).
    pub fn needs_admin(&self) -> bool {
        !matches!(self, AuthCommand::Authenticate { .. } | AuthCommand::RenewTokens { .. })
    }
}

/// What applying an [`AuthCommand`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthApplied {
    /// The auth revision after the change.
    pub revision: u64,
    /// The token [`AuthCommand::Authenticate`] issued.
    pub token: Option<String>,
}
