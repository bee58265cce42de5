//! The auth API of a member: who a request's credentials name, logging
//! in, managing users and roles, and the checks etcd makes before it
//! proposes or when it serves a read.
//!
//! Changes go through the log ([`WriteCommand::Auth`]) and are judged when
//! applied ([`crate::apply`]); reads of the auth state (status, users,
//! roles) are served after a read barrier, judged by the same rules.
//!
//! # Tokens, cluster-wide
//! A simple token is issued through the log, so every member records it;
//! its index lets a member that has not applied it yet wait for it, as
//! etcd's members do. Unlike etcd, whose members each let a token expire
//! `auth_token_ttl` after its last use *on that member*, the expiry is
//! replicated: every member that serves a request with a token notes it,
//! and every [`Tokens::tick`] proposes one [`AuthCommand::RenewTokens`]
//! for the tokens it saw that would gain more than a tick, with its clock
//! and its TTL. A token used on any member therefore stays valid on every
//! member, and a client whose member burns carries on at another without
//! logging in again. Expiry is judged against each member's wall clock
//! (as etcd's JWTs are); the leader purges expired tokens through the log.
//!
//! # Correctness
//! - A token is valid from the moment the entry that issued it applies
//!   until `auth_token_ttl` after its last use on any member, give or take
//!   one tick and the clock skew between members, unless its user is
//!   deleted, its password changed or auth disabled (all through the log,
//!   so every member revokes it at the same point of the log).
//! - A read is judged after the read barrier, under the same lock as the
//!   read itself, against the replica that serves it; credentials older
//!   than the auth state then are refused as etcd refuses them
//!   ("revision of auth store is old"), so a read never uses permissions
//!   that a change acknowledged before it began had taken away.

use std::collections::HashSet;
use std::sync::{Mutex, Weak};
use std::time::{Duration, SystemTime};

use firebreak_auth::token::{simple_token_index, simple_token_prefix, unix_millis, Jwt, JwtError};
use firebreak_auth::{password, AuthApplied, AuthCommand, AuthError, AuthInfo, KeyPermission, Operation};
use firebreak_config::auth::{AuthConfig, TokenConfig};
use firebreak_mvcc::{authorize, WriteCommand, WriteResponse};

use crate::error::NodeError;
use crate::node::Node;
use crate::state_machine::Replica;

/// How this member makes and checks tokens.
enum TokenKind {
    Simple,
    Jwt(Jwt),
}

/// The token settings of a member, and the simple tokens its clients used
/// since its last renewal.
pub struct Tokens {
    kind: TokenKind,
    /// How long a simple token lives without being used.
    ttl: Duration,
    bcrypt_cost: u32,
    /// Simple tokens used here that are due for renewal.
    used: Mutex<HashSet<String>>,
}

impl Tokens {
    /// The settings of `config`, with the JWT keys loaded.
    pub fn new(config: &AuthConfig) -> Result<Tokens, JwtError> {
        let kind = match &config.token {
            TokenConfig::Simple => TokenKind::Simple,
            TokenConfig::Jwt {
                sign_method,
                public_key,
                private_key,
                ttl,
            } => TokenKind::Jwt(Jwt::load(
                sign_method,
                public_key.as_deref(),
                private_key.as_deref(),
                *ttl,
            )?),
        };
        Ok(Tokens {
            kind,
            ttl: config.token_ttl,
            bcrypt_cost: config.bcrypt_cost,
            used: Mutex::new(HashSet::new()),
        })
    }

    /// How often used tokens are renewed: a tenth of their TTL, between
    /// 100 ms and 10 s.
    pub fn tick(&self) -> Duration {
        (self.ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    /// Notes a use of a simple token that expires at `expires_at_ms`, if a
    /// renewal would extend it by more than a tick.
    fn note_use(&self, token: &str, expires_at_ms: u64, now_ms: u64) {
        if expires_at_ms < now_ms + self.ttl_ms() - self.tick().as_millis() as u64 {
            self.used.lock().expect("tokens lock").insert(token.to_owned());
        }
    }
}

/// A command made by `who`: wrapped with its credentials unless it has
/// none.
pub(crate) fn as_caller(who: &AuthInfo, cmd: WriteCommand) -> WriteCommand {
    if who.is_anonymous() {
        cmd
    } else {
        WriteCommand::AsUser {
            user: who.user.clone(),
            auth_revision: who.revision,
            cmd: Box::new(cmd),
        }
    }
}

/// etcd's last check of a read served here (`doSerialize`): credentials
/// issued at another revision than the replica's are old.
pub(crate) fn check_read_revision(replica: &Replica, who: &AuthInfo) -> Result<(), AuthError> {
    if who.revision != 0 && who.revision != replica.auth.revision() {
        return Err(AuthError::AuthOldRevision);
    }
    Ok(())
}

impl Node {
    /// Who a request is made by: the user its token names (`token`), else
    /// the common name of its verified client certificate, else nobody.
    /// While auth is disabled every request is made by nobody. etcd's
    /// `AuthInfoFromCtx`.
    pub async fn auth_info(&self, token: Option<&str>, common_name: Option<&str>) -> Result<AuthInfo, NodeError> {
        let revision = {
            let replica = self.replica.read().expect("replica lock");
            if !replica.auth.is_enabled() {
                return Ok(AuthInfo::anonymous());
            }
            replica.auth.revision()
        };
        match (token, common_name) {
            (Some(token), _) => Ok(self.token_info(token).await?),
            (None, Some(name)) => Ok(AuthInfo {
                user: name.to_owned(),
                revision,
            }),
            (None, None) => Ok(AuthInfo::anonymous()),
        }
    }

    async fn token_info(&self, token: &str) -> Result<AuthInfo, AuthError> {
        match &self.tokens.kind {
            TokenKind::Jwt(jwt) => jwt.verify(token).ok_or(AuthError::InvalidAuthToken),
            TokenKind::Simple => {
                let index = simple_token_index(token).ok_or(AuthError::InvalidAuthToken)?;
                // Issued through an entry this member may not have applied
                // yet: wait for it, as etcd does.
                self.raft
                    .wait(Some(self.request_timeout))
                    .applied_index_at_least(Some(index), "the entry that issued a token")
                    .await
                    .map_err(|_| AuthError::InvalidAuthToken)?;
                let now_ms = unix_millis(SystemTime::now());
                let replica = self.replica.read().expect("replica lock");
                let t = replica.auth.token(token, now_ms).ok_or(AuthError::InvalidAuthToken)?;
                self.tokens.note_use(token, t.expires_at_ms, now_ms);
                Ok(AuthInfo {
                    user: t.user.clone(),
                    revision: replica.auth.revision(),
                })
            }
        }
    }

    /// Checks a user's password and issues a token. etcd's
    /// `Authenticate`: after a read barrier; the password is checked
    /// against the state then, and checked again if the auth state changed
    /// before the token was issued.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<String, NodeError> {
        self.read_barrier().await?;
        loop {
            let (hash, checked) = {
                let replica = self.replica.read().expect("replica lock");
                if !replica.auth.is_enabled() {
                    return Err(AuthError::AuthNotEnabled.into());
                }
                let user = replica.auth.user(name).ok_or(AuthError::AuthFailed)?;
                if user.no_password {
                    return Err(AuthError::NoPasswordUser.into());
                }
                (user.password_hash.clone(), replica.auth.revision())
            };
            let given = password.to_owned();
            let matches = tokio::task::spawn_blocking(move || password::verify(&given, &hash))
                .await
                .map_err(|e| NodeError::Stopped(e.to_string()))?;
            if !matches {
                tracing::info!(user = %name, "invalid password");
                return Err(AuthError::AuthFailed.into());
            }
            let (token, revision) = match &self.tokens.kind {
                TokenKind::Jwt(jwt) => {
                    let token = jwt.sign(name, checked, SystemTime::now())?;
                    (token, self.replica.read().expect("replica lock").auth.revision())
                }
                TokenKind::Simple => {
                    let cmd = AuthCommand::Authenticate {
                        name: name.to_owned(),
                        prefix: simple_token_prefix(),
                        now_ms: unix_millis(SystemTime::now()),
                        ttl_ms: self.tokens.ttl_ms(),
                    };
                    let applied = self.auth_write(&AuthInfo::anonymous(), cmd).await?;
                    (applied.token.expect("an issued token"), applied.revision)
                }
            };
            if revision == checked {
                return Ok(token);
            }
            tracing::info!(user = %name, "the auth state changed while a password was checked; checking again");
        }
    }

    /// Proposes an auth change made by `who` and waits for its answer.
    pub async fn auth_write(&self, who: &AuthInfo, cmd: AuthCommand) -> Result<AuthApplied, NodeError> {
        match self.write(as_caller(who, WriteCommand::Auth(cmd))).await? {
            WriteResponse::Auth(applied) => Ok(applied),
            other => unreachable!("an auth command answered with {other:?}"),
        }
    }

    /// The bcrypt hash of `password`, off the runtime's threads.
    async fn hash_password(&self, password: &str) -> Result<Vec<u8>, NodeError> {
        let (password, cost) = (password.to_owned(), self.tokens.bcrypt_cost);
        Ok(tokio::task::spawn_blocking(move || password::hash(&password, cost))
            .await
            .map_err(|e| NodeError::Stopped(e.to_string()))??)
    }

    /// Adds a user; the password is hashed here, before it is proposed.
    pub async fn user_add(
        &self,
        who: &AuthInfo,
        name: &str,
        password: &str,
        no_password: bool,
    ) -> Result<(), NodeError> {
        let password_hash = if no_password {
            Vec::new()
        } else {
            self.hash_password(password).await?
        };
        let cmd = AuthCommand::UserAdd {
            name: name.to_owned(),
            password_hash,
            no_password,
        };
        self.auth_write(who, cmd).await.map(|_| ())
    }

    /// Changes a user's password (an empty one matches nothing, as in etcd).
    pub async fn user_change_password(&self, who: &AuthInfo, name: &str, password: &str) -> Result<(), NodeError> {
        let password_hash = if password.is_empty() {
            Vec::new()
        } else {
            self.hash_password(password).await?
        };
        let cmd = AuthCommand::UserChangePassword {
            name: name.to_owned(),
            password_hash,
        };
        self.auth_write(who, cmd).await.map(|_| ())
    }

    /// Reads the auth state after a read barrier, as `who` may.
    async fn auth_read<T>(&self, read: impl FnOnce(&Replica) -> Result<T, AuthError>) -> Result<T, NodeError> {
        self.read_barrier().await?;
        let replica = self.replica.read().expect("replica lock");
        Ok(read(&replica)?)
    }

    /// Whether auth is enabled, and the auth revision (root only).
    pub async fn auth_status(&self, who: &AuthInfo) -> Result<(bool, u64), NodeError> {
        self.auth_read(|r| {
            r.auth.check_admin(who)?;
            Ok((r.auth.is_enabled(), r.auth.revision()))
        })
        .await
    }

    /// A user's roles (root, or the user itself).
    pub async fn user_get(&self, who: &AuthInfo, name: &str) -> Result<Vec<String>, NodeError> {
        self.auth_read(|r| {
            r.auth.check_user_get(who, name)?;
            Ok(r.auth.user(name).ok_or(AuthError::UserNotFound)?.roles.clone())
        })
        .await
    }

    /// Every user name (root only).
    pub async fn user_list(&self, who: &AuthInfo) -> Result<Vec<String>, NodeError> {
        self.auth_read(|r| {
            r.auth.check_admin(who)?;
            Ok(r.auth.user_names())
        })
        .await
    }

    /// A role's permissions (root, or a holder of the role).
    pub async fn role_get(&self, who: &AuthInfo, role: &str) -> Result<Vec<KeyPermission>, NodeError> {
        self.auth_read(|r| {
            r.auth.check_role_get(who, role)?;
            Ok(r.auth.role(role).ok_or(AuthError::RoleNotFound)?.perms.clone())
        })
        .await
    }

    /// Every role name (root only).
    pub async fn role_list(&self, who: &AuthInfo) -> Result<Vec<String>, NodeError> {
        self.auth_read(|r| {
            r.auth.check_admin(who)?;
            Ok(r.auth.role_names())
        })
        .await
    }

    /// etcd's `IsAdminPermitted`, checked by the member that takes a
    /// request it reserves to `root` (compaction, maintenance, membership).
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), NodeError> {
        Ok(self.replica.read().expect("replica lock").auth.check_admin(who)?)
    }

    /// etcd's `requireAuthInfo`: while auth is enabled, a request needs
    /// credentials (lease grants and revokes, status, alarm lists).
    pub fn require_auth_info(&self, who: &AuthInfo) -> Result<(), NodeError> {
        let enabled = self.replica.read().expect("replica lock").auth.is_enabled();
        if enabled && who.is_anonymous() {
            return Err(AuthError::UserEmpty.into());
        }
        Ok(())
    }

    /// Whether `who` may watch `[key, range_end)` (READ), on this replica
    /// as it is.
    pub fn check_watch(&self, who: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        self.replica
            .read()
            .expect("replica lock")
            .auth
            .check(who, key, range_end, Operation::Read)
    }

    /// etcd's `checkLeaseRenew`: a keep-alive needs WRITE on every key of
    /// the lease.
    pub(crate) fn check_lease_renew(&self, who: &AuthInfo, lease: i64) -> Result<(), NodeError> {
        let replica = self.replica.read().expect("replica lock");
        if !replica.auth.is_enabled() {
            return Ok(());
        }
        if who.is_anonymous() {
            return Err(AuthError::UserEmpty.into());
        }
        authorize::check_lease_writes(&replica.auth, &replica.store, who, lease)?;
        check_read_revision(&replica, who)?;
        Ok(())
    }

    /// etcd's checks of LeaseTimeToLive with keys and of Leases: READ on
    /// every key of `leases` (all leases when `None`), after which the
    /// credentials must be current.
    pub(crate) fn check_lease_reads(&self, who: &AuthInfo, leases: Option<&[i64]>) -> Result<(), NodeError> {
        let replica = self.replica.read().expect("replica lock");
        if !replica.auth.is_enabled() {
            return Ok(());
        }
        if who.is_anonymous() {
            return Err(AuthError::UserEmpty.into());
        }
        let ids = match leases {
            Some(ids) => ids.to_vec(),
            None => replica.store.lease_ids(),
        };
        authorize::check_lease_reads(&replica.auth, &replica.store, who, ids)?;
        check_read_revision(&replica, who)?;
        Ok(())
    }
}

/// Renews the simple tokens used on this member, and on the leader purges
/// expired ones, every [`Tokens::tick`], until the node is dropped.
pub(crate) async fn renew_tokens(node: Weak<Node>) {
    let tick = match node.upgrade() {
        Some(node) => node.tokens.tick(),
        None => return,
    };
    loop {
        tokio::time::sleep(tick).await;
        let Some(node) = node.upgrade() else { return };
        let used: Vec<String> = node.tokens.used.lock().expect("tokens lock").drain().collect();
        let now_ms = unix_millis(SystemTime::now());
        let (tokens, any_expired) = {
            let replica = node.replica.read().expect("replica lock");
            let all = replica.auth.tokens();
            let due: Vec<String> = used.into_iter().filter(|t| all.contains_key(t)).collect();
            (due, all.values().any(|t| t.expires_at_ms <= now_ms))
        };
        let purge = any_expired && node.serving_term().is_some();
        if tokens.is_empty() && !purge {
            continue;
        }
        let count = tokens.len();
        let cmd = AuthCommand::RenewTokens {
            now_ms,
            ttl_ms: node.tokens.ttl_ms(),
            tokens,
        };
        if let Err(e) = node.auth_write(&AuthInfo::anonymous(), cmd).await {
            tracing::debug!(error = %e, tokens = count, "renewing tokens");
        }
    }
}
