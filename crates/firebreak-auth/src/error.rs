//! The errors of auth, as a client sees them.
//!
//! `Display` is the message etcd sends (its `rpctypes`), since clients
//! match on it; [`AuthError::class`] is the gRPC code etcd sends with it.
//! None of them is worth retrying unchanged, except
//! [`AuthError::InvalidAuthToken`] and [`AuthError::AuthOldRevision`],
//! after which a client logs in again (etcd's clients do so by
//! themselves).

use serde::{Deserialize, Serialize};

/// An auth request or check that failed. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AuthError {
    /// AuthEnable without a `root` user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// AuthEnable while `root` lacks the `root` role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// No user name: a request without credentials while auth is on, or a
    /// UserAdd with an empty name.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// A wrong user name or password.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// A token that is malformed, unknown, expired or badly signed.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// Removing `root` or its role while auth is on, or a permission whose
    /// range is empty.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// Credentials issued before the last change of the auth state.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// A password given for a user created without one. etcd sends its
    /// internal message with code Unknown.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// A member that holds only the public key of its JWT pair was asked
    /// to sign one (etcd: code Unknown).
    #[error("auth: token signing attempted with verify-only key")]
    VerifyOnly,
    /// bcrypt takes at most 72 bytes of password (Go's bcrypt refuses
    /// longer ones; etcd passes its message on with code Unknown).
    #[error("bcrypt: password length exceeds 72 bytes")]
    PasswordTooLong,
}

/// The gRPC code etcd answers an [`AuthError`] with, named after gRPC's
/// codes so the protocol layer maps it without knowing each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorClass {
    InvalidArgument,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    Unknown,
}

impl AuthError {
    /// The text of etcd's own error (`auth.Err…`), which etcd sends as it
    /// is, with code Unknown, where it forgets to translate it (the admin
    /// checks of Defragment, Snapshot, Hash and HashKV).
    pub fn etcd_internal_message(&self) -> String {
        use AuthError::*;
        let text = match self {
            RootUserNotExist => "auth: root user does not exist",
            RootRoleNotExist => "auth: root user does not have root role",
            UserAlreadyExist => "auth: user already exists",
            UserEmpty => "auth: user name is empty",
            UserNotFound => "auth: user not found",
            RoleAlreadyExist => "auth: role already exists",
            RoleNotFound => "auth: role not found",
            RoleEmpty => "auth: role name is empty",
            AuthFailed => "auth: authentication failed, invalid user ID or password",
            PermissionNotGiven => "auth: permission not given",
            PermissionDenied => "auth: permission denied",
            RoleNotGranted => "auth: role is not granted to the user",
            PermissionNotGranted => "auth: permission is not granted to the role",
            AuthNotEnabled => "auth: authentication is not enabled",
            InvalidAuthToken => "auth: invalid auth token",
            InvalidAuthMgmt => "auth: invalid auth management",
            AuthOldRevision => "auth: revision in header is old",
            NoPasswordUser | VerifyOnly | PasswordTooLong => return self.to_string(),
        };
        text.to_owned()
    }

    pub fn class(&self) -> AuthErrorClass {
        use AuthError::*;
        match self {
            UserEmpty | RoleEmpty | AuthFailed | PermissionNotGiven | InvalidAuthMgmt | AuthOldRevision => {
                AuthErrorClass::InvalidArgument
            }
            RootUserNotExist | RootRoleNotExist | UserAlreadyExist | UserNotFound | RoleAlreadyExist | RoleNotFound
            | RoleNotGranted | PermissionNotGranted | AuthNotEnabled => AuthErrorClass::FailedPrecondition,
            PermissionDenied => AuthErrorClass::PermissionDenied,
            InvalidAuthToken => AuthErrorClass::Unauthenticated,
            NoPasswordUser | VerifyOnly | PasswordTooLong => AuthErrorClass::Unknown,
        }
    }
}
