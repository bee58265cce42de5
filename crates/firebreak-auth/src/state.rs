//! The auth state of one replica and how commands change it.
//!
//! # Correctness
//! - Applying is deterministic: it reads nothing but the state and the
//!   command (hashes, token prefixes and times come in the command), so
//!   every replica that applies the same log holds the same users, roles,
//!   tokens and revision.
//! - The revision starts at 1 and grows by one with every change of users,
//!   roles, permissions or of the enabled flag to off, exactly where etcd's
//!   `commitRevision` runs; enabling, a grant of a role the user has, and
//!   token issue or renewal leave it, as in etcd. Credentials carry the
//!   revision they were issued at, so a change is seen by every request
//!   judged after it.
//! - While auth is enabled the `root` user exists and holds the `root`
//!   role: enabling requires it, and deleting `root`, revoking its role or
//!   deleting the `root` role is refused until auth is disabled.
//! - A user's simple tokens are forgotten when the user is deleted or its
//!   password changes, and every token when auth is disabled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{AuthApplied, AuthCommand};
use crate::error::AuthError;
use crate::perm::{is_permitted, is_valid_permission_range, KeyPermission, Operation};
use crate::AuthInfo;

/// The user that must exist, with [`ROOT_ROLE`], before auth is enabled.
pub const ROOT_USER: &str = "root";
/// The role that may do anything; it needs no role object to be granted.
pub const ROOT_ROLE: &str = "root";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The bcrypt hash of the password (empty: none can match).
    pub password_hash: Vec<u8>,
    /// Created without a password: it cannot authenticate with one (only
    /// by its client certificate).
    pub no_password: bool,
    /// Role names, sorted.
    pub roles: Vec<String>,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.binary_search_by(|r| r.as_str().cmp(role)).is_ok()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Sorted by key (stably: a permission on a key already present with
    /// another range end goes after it, as etcd's sort leaves it).
    pub perms: Vec<KeyPermission>,
}

/// A simple token that was issued and has not expired or been revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleToken {
    pub user: String,
    /// Unix milliseconds, by the clock of the member that issued or last
    /// renewed it.
    pub expires_at_ms: u64,
}

/// Users, roles, the enabled flag, the revision and the simple tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    tokens: BTreeMap<String, SimpleToken>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            enabled: false,
            // etcd commits revision 1 when it creates its auth store.
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            tokens: BTreeMap::new(),
        }
    }
}

impl AuthState {
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// User names, in byte order (etcd's).
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Role names, in byte order.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// A simple token that exists and has not expired at `now_ms`.
    pub fn token(&self, token: &str, now_ms: u64) -> Option<&SimpleToken> {
        self.tokens.get(token).filter(|t| t.expires_at_ms > now_ms)
    }

    /// Every simple token, expired or not (for the renewal of used tokens
    /// and the purge of expired ones).
    pub fn tokens(&self) -> &BTreeMap<String, SimpleToken> {
        &self.tokens
    }

    /// The state a backup describes: these users and roles, the enabled
    /// flag and the revision, and no tokens. Each user's roles are sorted
    /// and each role's permissions sorted stably by key, as etcd keeps
    /// them; nothing else is checked (a restore takes what the backup
    /// holds, as etcd's does).
    pub fn from_parts(
        enabled: bool,
        revision: u64,
        mut users: BTreeMap<String, User>,
        mut roles: BTreeMap<String, Role>,
    ) -> AuthState {
        for user in users.values_mut() {
            user.roles.sort();
            user.roles.dedup();
        }
        for role in roles.values_mut() {
            role.perms.sort_by(|a, b| a.key.cmp(&b.key));
        }
        AuthState {
            enabled,
            revision,
            users,
            roles,
            tokens: BTreeMap::new(),
        }
    }

    /// The same state without its tokens (what a backup keeps: tokens are
    /// credentials of the cluster that issued them).
    pub fn without_tokens(&self) -> AuthState {
        AuthState {
            tokens: BTreeMap::new(),
            ..self.clone()
        }
    }

    fn commit_revision(&mut self) {
        self.revision += 1;
    }

    /// Applies a committed command; `index` is the log index of its entry
    /// (it names simple tokens, as etcd's). An error leaves the state as it
    /// was.
    pub fn apply(&mut self, cmd: &AuthCommand, index: u64) -> Result<AuthApplied, AuthError> {
        let mut token = None;
        match cmd {
            AuthCommand::Enable => {
                if !self.enabled {
                    let root = self.users.get(ROOT_USER).ok_or(AuthError::RootUserNotExist)?;
                    if !root.has_role(ROOT_ROLE) {
                        return Err(AuthError::RootRoleNotExist);
                    }
                    self.enabled = true;
                }
            }
            AuthCommand::Disable => {
                if self.enabled {
                    self.enabled = false;
                    self.tokens.clear();
                    self.commit_revision();
                }
            }
            AuthCommand::Authenticate {
                name,
                prefix,
                now_ms,
                ttl_ms,
            } => {
                if !self.enabled {
                    return Err(AuthError::AuthNotEnabled);
                }
                let user = self.users.get(name).ok_or(AuthError::AuthFailed)?;
                if user.no_password {
                    return Err(AuthError::AuthFailed);
                }
                let issued = format!("{prefix}.{index}");
                self.tokens.insert(
                    issued.clone(),
                    SimpleToken {
                        user: name.clone(),
                        expires_at_ms: now_ms.saturating_add(*ttl_ms),
                    },
                );
                token = Some(issued);
            }
            AuthCommand::UserAdd {
                name,
                password_hash,
                no_password,
            } => {
                if name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthError::UserAlreadyExist);
                }
                self.users.insert(
                    name.clone(),
                    User {
                        password_hash: if *no_password {
                            Vec::new()
                        } else {
                            password_hash.clone()
                        },
                        no_password: *no_password,
                        roles: Vec::new(),
                    },
                );
                self.commit_revision();
            }
            AuthCommand::UserDelete { name } => {
                if self.enabled && name == ROOT_USER {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
                self.commit_revision();
                self.tokens.retain(|_, t| t.user != *name);
            }
            AuthCommand::UserChangePassword { name, password_hash } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                if !user.no_password {
                    user.password_hash = password_hash.clone();
                }
                self.commit_revision();
                self.tokens.retain(|_, t| t.user != *name);
            }
            AuthCommand::UserGrantRole { user, role } => {
                if !self.users.contains_key(user) {
                    return Err(AuthError::UserNotFound);
                }
                if role != ROOT_ROLE && !self.roles.contains_key(role) {
                    return Err(AuthError::RoleNotFound);
                }
                let u = self.users.get_mut(user).expect("checked above");
                if let Err(at) = u.roles.binary_search(role) {
                    u.roles.insert(at, role.clone());
                    self.commit_revision();
                }
            }
            AuthCommand::UserRevokeRole { name, role } => {
                if self.enabled && name == ROOT_USER && role == ROOT_ROLE {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                let before = user.roles.len();
                user.roles.retain(|r| r != role);
                if user.roles.len() == before {
                    return Err(AuthError::RoleNotGranted);
                }
                self.commit_revision();
            }
            AuthCommand::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Role::default());
                self.commit_revision();
            }
            AuthCommand::RoleGrantPermission { name, perm } => {
                let perm = perm.as_ref().ok_or(AuthError::PermissionNotGiven)?;
                if !is_valid_permission_range(&perm.key, &perm.range_end) {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
                // etcd looks at the first permission whose key is not below
                // the new one: the same key and end update it, anything
                // else is added (even a duplicate further on).
                let at = role.perms.partition_point(|p| p.key < perm.key);
                match role.perms.get_mut(at) {
                    Some(p) if p.key == perm.key && p.range_end == perm.range_end => p.perm = perm.perm,
                    _ => {
                        role.perms.push(perm.clone());
                        role.perms.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
                self.commit_revision();
            }
            AuthCommand::RoleRevokePermission { role, key, range_end } => {
                let r = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let before = r.perms.len();
                r.perms.retain(|p| p.key != *key || p.range_end != *range_end);
                if r.perms.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
                self.commit_revision();
            }
            AuthCommand::RoleDelete { role } => {
                if self.enabled && role == ROOT_ROLE {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(role).ok_or(AuthError::RoleNotFound)?;
                for user in self.users.values_mut() {
                    user.roles.retain(|r| r != role);
                }
                self.commit_revision();
            }
            AuthCommand::RenewTokens { now_ms, ttl_ms, tokens } => {
                let until = now_ms.saturating_add(*ttl_ms);
                for t in tokens {
                    if let Some(t) = self.tokens.get_mut(t) {
                        t.expires_at_ms = t.expires_at_ms.max(until);
                    }
                }
                self.tokens.retain(|_, t| t.expires_at_ms > *now_ms);
            }
        }
        Ok(AuthApplied {
            revision: self.revision,
            token,
        })
    }

    /// etcd's `IsAdminPermitted`: whether `who` may manage auth (and make
    /// the other requests etcd reserves to `root`).
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if who.user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let user = self.users.get(&who.user).ok_or(AuthError::UserNotFound)?;
        if !user.has_role(ROOT_ROLE) {
            return Err(AuthError::PermissionDenied);
        }
        Ok(())
    }

    /// etcd's `isOpPermitted`: whether `who` may do `op` on `key` (with
    /// `range_end` as in a range request).
    pub fn check(&self, who: &AuthInfo, key: &[u8], range_end: &[u8], op: Operation) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        // Only credentials-less requests come with revision 0.
        if who.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if who.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        let user = self.users.get(&who.user).ok_or(AuthError::PermissionDenied)?;
        if user.has_role(ROOT_ROLE) {
            return Ok(());
        }
        let perms = user
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.perms.iter());
        if is_permitted(perms, key, range_end, op) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// `who` may read `name`'s roles: `root`, or `name` itself.
    pub fn check_user_get(&self, who: &AuthInfo, name: &str) -> Result<(), AuthError> {
        match self.check_admin(who) {
            Err(e) if who.user != name => Err(e),
            _ => Ok(()),
        }
    }

    /// `who` may read `role`'s permissions: `root`, or a holder of `role`.
    pub fn check_role_get(&self, who: &AuthInfo, role: &str) -> Result<(), AuthError> {
        match self.check_admin(who) {
            Err(e)
                if !self
                    .users
                    .get(&who.user)
                    .is_some_and(|u| u.roles.iter().any(|r| r == role)) =>
            {
                Err(e)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perm::PermissionType;

    fn apply(s: &mut AuthState, cmd: AuthCommand) -> Result<AuthApplied, AuthError> {
        s.apply(&cmd, 7)
    }

    fn add_user(s: &mut AuthState, name: &str) {
        apply(
            s,
            AuthCommand::UserAdd {
                name: name.into(),
                password_hash: b"hash".to_vec(),
                no_password: false,
            },
        )
        .unwrap();
    }

    fn grant_role(s: &mut AuthState, user: &str, role: &str) -> Result<AuthApplied, AuthError> {
        apply(
            s,
            AuthCommand::UserGrantRole {
                user: user.into(),
                role: role.into(),
            },
        )
    }

    fn grant(s: &mut AuthState, role: &str, perm: PermissionType, key: &str, range_end: &str) {
        apply(
            s,
            AuthCommand::RoleGrantPermission {
                name: role.into(),
                perm: Some(KeyPermission {
                    perm,
                    key: key.into(),
                    range_end: range_end.into(),
                }),
            },
        )
        .unwrap();
    }

    fn as_user(s: &AuthState, user: &str) -> AuthInfo {
        AuthInfo {
            user: user.into(),
            revision: s.revision(),
        }
    }

    /// root with the root role, and alice with role `app`: read-write on `app/`.
    fn enabled() -> AuthState {
        let mut s = AuthState::default();
        add_user(&mut s, "root");
        grant_role(&mut s, "root", "root").unwrap();
        add_user(&mut s, "alice");
        apply(&mut s, AuthCommand::RoleAdd { name: "app".into() }).unwrap();
        grant(&mut s, "app", PermissionType::ReadWrite, "app/", "app0");
        grant_role(&mut s, "alice", "app").unwrap();
        apply(&mut s, AuthCommand::Enable).unwrap();
        s
    }

    #[test]
    fn enabling_needs_root_with_the_root_role() {
        let mut s = AuthState::default();
        assert_eq!(s.revision(), 1);
        assert_eq!(apply(&mut s, AuthCommand::Enable), Err(AuthError::RootUserNotExist));
        add_user(&mut s, "root");
        assert_eq!(apply(&mut s, AuthCommand::Enable), Err(AuthError::RootRoleNotExist));
        // The root role needs no role object.
        grant_role(&mut s, "root", "root").unwrap();
        let rev = s.revision();
        assert_eq!(
            apply(&mut s, AuthCommand::Enable).unwrap().revision,
            rev,
            "enabling keeps the revision"
        );
        assert!(s.is_enabled());
        assert_eq!(
            apply(&mut s, AuthCommand::Enable).unwrap().revision,
            rev,
            "enabling twice is a no-op"
        );
    }

    #[test]
    fn root_cannot_be_removed_or_stripped_while_auth_is_on() {
        let mut s = enabled();
        let del = AuthCommand::UserDelete { name: "root".into() };
        let revoke = AuthCommand::UserRevokeRole {
            name: "root".into(),
            role: "root".into(),
        };
        let del_role = AuthCommand::RoleDelete { role: "root".into() };
        assert_eq!(apply(&mut s, del.clone()), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(apply(&mut s, revoke.clone()), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(apply(&mut s, del_role.clone()), Err(AuthError::InvalidAuthMgmt));
        apply(&mut s, AuthCommand::Disable).unwrap();
        assert_eq!(apply(&mut s, del_role), Err(AuthError::RoleNotFound));
        apply(&mut s, revoke).unwrap();
        apply(&mut s, del).unwrap();
    }

    #[test]
    fn every_change_advances_the_revision_and_failures_change_nothing() {
        let mut s = enabled();
        let before = s.clone();
        assert_eq!(
            apply(&mut s, AuthCommand::RoleAdd { name: "app".into() }),
            Err(AuthError::RoleAlreadyExist)
        );
        assert_eq!(grant_role(&mut s, "nobody", "app"), Err(AuthError::UserNotFound));
        assert_eq!(grant_role(&mut s, "alice", "nope"), Err(AuthError::RoleNotFound));
        assert_eq!(s, before);
        // Granting a role the user has is answered but changes nothing.
        let rev = s.revision();
        grant_role(&mut s, "alice", "app").unwrap();
        assert_eq!(s.revision(), rev);
        apply(&mut s, AuthCommand::RoleAdd { name: "ops".into() }).unwrap();
        assert_eq!(s.revision(), rev + 1);
        apply(&mut s, AuthCommand::Disable).unwrap();
        assert_eq!(s.revision(), rev + 2);
    }

    #[test]
    fn permissions_follow_roles_and_root_may_do_anything() {
        let s = enabled();
        let alice = as_user(&s, "alice");
        assert_eq!(s.check(&alice, b"app/x", b"", Operation::Write), Ok(()));
        assert_eq!(s.check(&alice, b"app/", b"app0", Operation::Read), Ok(()));
        assert_eq!(
            s.check(&alice, b"other", b"", Operation::Read),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(s.check(&as_user(&s, "root"), b"other", b"\0", Operation::Write), Ok(()));
        assert_eq!(
            s.check(&AuthInfo::anonymous(), b"app/x", b"", Operation::Read),
            Err(AuthError::UserEmpty)
        );
        assert_eq!(
            s.check(&as_user(&s, "ghost"), b"app/x", b"", Operation::Read),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(s.check_admin(&alice), Err(AuthError::PermissionDenied));
        assert_eq!(s.check_admin(&as_user(&s, "ghost")), Err(AuthError::UserNotFound));
        assert_eq!(s.check_admin(&AuthInfo::anonymous()), Err(AuthError::UserEmpty));
        assert_eq!(s.check_user_get(&alice, "alice"), Ok(()));
        assert_eq!(s.check_user_get(&alice, "root"), Err(AuthError::PermissionDenied));
        assert_eq!(s.check_role_get(&alice, "app"), Ok(()));
        assert_eq!(s.check_role_get(&alice, "root"), Err(AuthError::PermissionDenied));
    }

    #[test]
    fn credentials_from_before_a_change_are_old() {
        let mut s = enabled();
        let alice = as_user(&s, "alice");
        apply(&mut s, AuthCommand::RoleAdd { name: "ops".into() }).unwrap();
        assert_eq!(
            s.check(&alice, b"app/x", b"", Operation::Read),
            Err(AuthError::AuthOldRevision)
        );
        // Admin checks look at the user only, as etcd's.
        assert_eq!(
            s.check_admin(&AuthInfo {
                revision: 1,
                ..as_user(&s, "root")
            }),
            Ok(())
        );
    }

    #[test]
    fn nothing_is_checked_while_auth_is_off() {
        let mut s = enabled();
        apply(&mut s, AuthCommand::Disable).unwrap();
        assert_eq!(s.check(&AuthInfo::anonymous(), b"x", b"", Operation::Write), Ok(()));
        assert_eq!(s.check_admin(&AuthInfo::anonymous()), Ok(()));
    }

    #[test]
    fn grants_update_the_same_range_and_revokes_need_an_exact_match() {
        let mut s = enabled();
        grant(&mut s, "app", PermissionType::Read, "app/", "app0");
        assert_eq!(s.role("app").unwrap().perms.len(), 1);
        assert_eq!(s.role("app").unwrap().perms[0].perm, PermissionType::Read);
        grant(&mut s, "app", PermissionType::Write, "a", "");
        let keys: Vec<&[u8]> = s.role("app").unwrap().perms.iter().map(|p| &p.key[..]).collect();
        assert_eq!(keys, vec![&b"a"[..], b"app/"]);
        let revoke = |key: &str, range_end: &str| AuthCommand::RoleRevokePermission {
            role: "app".into(),
            key: key.into(),
            range_end: range_end.into(),
        };
        assert_eq!(apply(&mut s, revoke("app/", "")), Err(AuthError::PermissionNotGranted));
        apply(&mut s, revoke("app/", "app0")).unwrap();
        assert_eq!(
            apply(
                &mut s,
                AuthCommand::RoleGrantPermission {
                    name: "app".into(),
                    perm: None
                }
            ),
            Err(AuthError::PermissionNotGiven)
        );
        assert_eq!(
            apply(
                &mut s,
                AuthCommand::RoleGrantPermission {
                    name: "app".into(),
                    perm: Some(KeyPermission {
                        perm: PermissionType::Read,
                        key: b"b".to_vec(),
                        range_end: b"a".to_vec(),
                    })
                }
            ),
            Err(AuthError::InvalidAuthMgmt)
        );
    }

    #[test]
    fn deleting_a_role_takes_it_from_every_user() {
        let mut s = enabled();
        apply(&mut s, AuthCommand::RoleDelete { role: "app".into() }).unwrap();
        assert!(s.user("alice").unwrap().roles.is_empty());
        assert_eq!(
            apply(&mut s, AuthCommand::RoleDelete { role: "app".into() }),
            Err(AuthError::RoleNotFound)
        );
    }

    #[test]
    fn tokens_are_issued_renewed_expired_and_revoked() {
        let mut s = AuthState::default();
        let auth = |name: &str, now_ms| AuthCommand::Authenticate {
            name: name.into(),
            prefix: "abc".into(),
            now_ms,
            ttl_ms: 1000,
        };
        assert_eq!(s.apply(&auth("root", 0), 5), Err(AuthError::AuthNotEnabled));
        s = enabled();
        assert_eq!(s.apply(&auth("ghost", 0), 5), Err(AuthError::AuthFailed));
        let token = s.apply(&auth("alice", 0), 5).unwrap().token.unwrap();
        assert_eq!(token, "abc.5");
        assert_eq!(s.token(&token, 999).unwrap().user, "alice");
        assert!(s.token(&token, 1000).is_none(), "expired after its TTL");
        let renew = |now_ms, tokens: Vec<String>| AuthCommand::RenewTokens {
            now_ms,
            ttl_ms: 1000,
            tokens,
        };
        apply(&mut s, renew(900, vec![token.clone()])).unwrap();
        assert!(s.token(&token, 1899).is_some(), "renewed from the renewal's time");
        apply(&mut s, renew(1900, vec![])).unwrap();
        assert!(s.tokens().is_empty(), "expired tokens are purged");
        let token = s.apply(&auth("alice", 0), 8).unwrap().token.unwrap();
        apply(
            &mut s,
            AuthCommand::UserChangePassword {
                name: "alice".into(),
                password_hash: b"new".to_vec(),
            },
        )
        .unwrap();
        assert!(s.token(&token, 0).is_none(), "a new password revokes the user's tokens");
        s.apply(&auth("alice", 0), 9).unwrap();
        apply(&mut s, AuthCommand::Disable).unwrap();
        assert!(s.tokens().is_empty(), "disabling revokes every token");
    }

    #[test]
    fn a_user_without_password_cannot_authenticate() {
        let mut s = enabled();
        apply(
            &mut s,
            AuthCommand::UserAdd {
                name: "cert".into(),
                password_hash: b"ignored".to_vec(),
                no_password: true,
            },
        )
        .unwrap();
        assert!(s.user("cert").unwrap().password_hash.is_empty());
        let auth = AuthCommand::Authenticate {
            name: "cert".into(),
            prefix: "p".into(),
            now_ms: 0,
            ttl_ms: 1,
        };
        assert_eq!(s.apply(&auth, 1), Err(AuthError::AuthFailed));
        assert_eq!(
            apply(
                &mut s,
                AuthCommand::UserAdd {
                    name: String::new(),
                    password_hash: vec![],
                    no_password: false
                }
            ),
            Err(AuthError::UserEmpty)
        );
        assert_eq!(
            apply(&mut s, AuthCommand::RoleAdd { name: String::new() }),
            Err(AuthError::RoleEmpty)
        );
    }
}
