//! Differential test of auth: the same seeded random sequence of user,
//! role, permission, auth and key-value calls, made by several users,
//! goes to a one-member real etcd and to a three-member Firebreak cluster,
//! and every answer and every error must be the same.
//!
//! Each seed starts on a fresh pair of servers (bcrypt cost 4 and a simple
//! token TTL of a day on both, so that hashing is quick and no token
//! expires during a run), replays the Firebreak harness's `__ready` writes
//! on etcd, creates `root` (role `root`), `alice`, `bob` and `carol` with
//! two roles, enables auth and logs everyone in. Then a random sequence
//! mixes:
//! - user calls: UserAdd (also duplicates, the empty name, no-password
//!   users), UserDelete, UserChangePassword, UserGrantRole and
//!   UserRevokeRole (also unknown users and roles, and the `root` role),
//!   UserGet, UserList;
//! - role calls: RoleAdd, RoleDelete, RoleGet, RoleList,
//!   RoleGrantPermission (READ, WRITE, READWRITE on one key, ranges,
//!   prefixes, from-key ranges, every key) and RoleRevokePermission;
//! - AuthEnable, AuthDisable, AuthStatus, Authenticate (right and wrong
//!   passwords, unknown users, no-password users, while disabled);
//! - logins: a user's client connects again with
//!   `ConnectOptions::with_user` (the right password or a wrong one);
//! - key-value calls: Range (single keys, prefixes, from-key ranges,
//!   ranges, also ones whose end is not above their key; serializable
//!   too), Put and DeleteRange (with and without `prev_kv`), Txn (compares
//!   that send it down either branch, reads and writes in both), Compact.
//!
//! Every call is made as one of `root`, `alice`, `bob`, `carol` (each with a
//! client of its own, logged in with `ConnectOptions::with_user`, on both
//! servers) or without credentials. A client keeps its token until it logs
//! in again, so calls with tokens that a password change, a user deletion
//! or an auth disable revoked are made and compared too.
//!
//! Compared: the raw protobuf answer, with only the top-level header's
//! `cluster_id`, `member_id` and `raft_term` zeroed as in the key-value
//! differential test (the header's revision, the KV revision, is compared;
//! etcd's response header carries no auth revision), and the token of an
//! Authenticate answer replaced by a placeholder (it is random); errors by
//! gRPC code and message.
//!
//! # What etcd 3.4 (the oracle) does differently from etcd 3.5
//! Firebreak implements etcd 3.5's auth; Debian's etcd is 3.4.23. Where the
//! two differ the test avoids the call or checks it against 3.5's rules:
//! - AuthStatus does not exist in 3.4 (Unimplemented). When etcd answers
//!   so, Firebreak's answer is checked against 3.5: its permission check is
//!   RoleList's (both are admin requests through the log), so etcd's answer
//!   to a RoleList by the same client says which error Firebreak must give;
//!   otherwise `enabled` must be the state etcd's answers imply and
//!   `auth_revision` the revision 3.5 commits for the changes etcd accepted
//!   (one per change of users, roles, permissions, and per disable; none
//!   for an enable, a grant of a role held, a login).
//! - 3.4 sends a stale token to the token check even while auth is
//!   disabled ("invalid auth token"); 3.5 ignores tokens then
//!   (`AuthInfoFromCtx`). While auth is disabled only the client without
//!   credentials makes calls.
//! - 3.4 checks neither nested txns nor the READ that a txn's put with
//!   `prev_kv` needs (3.5's `checkTxnAuth` and `checkPutAuth` do): nested
//!   txns and `prev_kv` on txn puts are only sent while auth is disabled
//!   or by a user with the `root` role, where neither checks anything.
//! - 3.4 accepts a permission with an empty key or with a range end not
//!   above its key; 3.5 refuses it ("invalid auth management",
//!   `isValidPermissionRange`) before it looks the role up. For such a
//!   grant Firebreak must refuse it so while etcd may accept it (it is then
//!   revoked from etcd again, so that both hold the same permissions) or
//!   refuse it for a role that does not exist.
//! - 3.4 stores an empty password's hash on UserChangePassword; 3.5 stores
//!   none (nothing matches it). Passwords are changed to non-empty ones
//!   only. No password is longer than bcrypt's 72 bytes either: Debian's
//!   3.4 build cuts such a password short (an older Go bcrypt), where
//!   current Go bcrypt, and Firebreak, refuse it.
//! - Compact needs `root` in 3.5 only. 3.4 lacks 3.5's checks of lease
//!   calls (credentials for LeaseGrant, LeaseRevoke and LeaseTimeToLive,
//!   WRITE on the attached keys for keep-alives, READ on them for
//!   LeaseTimeToLive with keys and Leases, the `root` shortcut) and of
//!   Status, MoveLeader and Alarm: none of these calls is made, no put
//!   names a lease, and Compact is made only while auth is disabled or by
//!   a user with the `root` role (and a fresh token), where both allow it.
//!
//! Permissions of a role are kept at twelve or fewer: etcd sorts them
//! with Go's `sort.Sort`, which is an insertion sort (so stable, as
//! Firebreak's) for at most twelve elements.
//!
//! A seed is reproducible on its own: `DIFF_AUTH_SEEDS=2 DIFF_AUTH_OPS=500
//! cargo test -p firebreak --test differential_auth`. If `etcd` is not
//! installed the test is skipped, unless `CI` is set, where it fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use common::etcd::{each_seed, Etcd};
use common::grpc::unary;
use common::kv_model::{
    align, answer, compact, impl_kv_answer, plain_get, show_header, Cmp, CmpRange, CmpTarget, Delete, Get, KeySel,
    KvAnswer, Put, Sub, TxnReq, B,
};
use common::{login, Cluster, Options};
use etcd_client::proto::{
    PbAuthDisableResponse, PbAuthEnableResponse, PbAuthRoleAddResponse, PbAuthRoleDeleteResponse,
    PbAuthRoleGetResponse, PbAuthRoleGrantPermissionResponse, PbAuthRoleListResponse,
    PbAuthRoleRevokePermissionResponse, PbAuthUserAddResponse, PbAuthUserChangePasswordResponse,
    PbAuthUserDeleteResponse, PbAuthUserGetResponse, PbAuthUserGrantRoleResponse, PbAuthUserListResponse,
    PbAuthUserRevokeRoleResponse, PbAuthenticateResponse, PbCompactionResponse, PbDeleteResponse, PbPutResponse,
    PbRangeResponse, PbTxnResponse,
};
use etcd_client::{Client, CompareOp, Permission, PermissionType, RoleRevokePermissionOptions, UserAddOptions};
use firebreak_grpc::auth::{AuthStatusRequest, AuthStatusResponse};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3];
/// Three seeds of 500 operations take about 15 s in a debug build on a
/// shared two-core machine.
const DEFAULT_OPS: usize = 500;

/// bcrypt's lowest cost, on both servers: hashing stays quick.
const BCRYPT_COST: &str = "4";
/// A day: no simple token expires during a run.
const TOKEN_TTL: &str = "86400";

/// The users with clients of their own.
const ACTORS: &[&str] = &["root", "alice", "bob", "carol"];
/// Users that calls name: the actors, one more, the empty name and one
/// that is never added.
const USER_NAMES: &[&str] = &["root", "alice", "bob", "carol", "dave", "", "nobody"];
/// Users that UserAdd creates (weighted).
const ADDED_USERS: &[&str] = &["alice", "bob", "carol", "dave", "dave", "root", ""];
/// Users that UserDelete removes (weighted).
const DELETED_USERS: &[&str] = &["dave", "dave", "dave", "alice", "bob", "carol", "root", "nobody"];
/// Roles that calls name: `root` needs no role object to be granted,
/// `nope` is never added.
const ROLE_NAMES: &[&str] = &["r1", "r2", "r3", "root", "", "nope"];
/// Roles that grants to users name (weighted towards the real ones).
const GRANTED_ROLES: &[&str] = &["r1", "r2", "r3", "r1", "r2", "r3", "root", "nope", ""];
/// Roles that RoleAdd creates.
const ADDED_ROLES: &[&str] = &["r1", "r2", "r3", "root", ""];
/// Roles that permissions are granted to.
const PERM_ROLES: &[&str] = &["r1", "r2", "r3", "r1", "r2", "r3", "nope"];
/// Passwords (the empty one only for new users: see the header).
const PASSWORDS: &[&str] = &["pw", "pw2", "secret", ""];
const NEW_PASSWORDS: &[&str] = &["pw", "pw2", "secret"];
/// root's first password.
const ROOT_PASSWORD: &str = "rootpw";

/// Permissions granted and revoked, as (key, range end): single keys,
/// prefixes, ranges, from-key ranges, every key.
const PERMS: &[(&[u8], &[u8])] = &[
    (b"a/x", b""),
    (b"b/y", b""),
    (b"c", b""),
    (b"d", b""),
    (b"a/", b"a0"),
    (b"b/", b"b0"),
    (b"c", b"d"),
    (b"a/", b"b/"),
    (b"a/y", b"b/y"),
    (b"b/", b"d"),
    (b"b/", b"\0"),
    (b"c", b"\0"),
    (b"\0", b"\0"),
];
/// Permissions that etcd 3.5 refuses (an empty key, an end not above the
/// key) and 3.4 stores.
const BAD_PERMS: &[(&[u8], &[u8])] = &[(b"", b""), (b"", b"a"), (b"d", b"c"), (b"c", b"c")];
/// Go's `sort.Sort` is an insertion sort up to this many elements.
const MAX_PERMS: usize = 12;

/// Keys that puts write (and, rarely, `z`).
const KEYS: &[&[u8]] = &[b"a/x", b"a/y", b"b/x", b"b/y", b"c", b"d"];
/// Keys that are only read, compared or deleted.
const READ_KEYS: &[&[u8]] = &[b"a/", b"b", b"z", b"\0", b"__ready"];
/// Range ends (some at or below their start key).
const ENDS: &[&[u8]] = &[b"a/y", b"b/", b"b/y", b"c", b"e", b"z", b"a"];
/// Prefixes; the empty one becomes "every key" in the client.
const PREFIXES: &[&[u8]] = &[b"a/", b"b/", b"c", b""];
/// Start keys of from-key ranges.
const FROM_KEYS: &[&[u8]] = &[b"a/", b"b/x", b"c", b"\0"];
const VALUES: &[&[u8]] = &[b"", b"1", b"2", b"v"];

// ---------------------------------------------------------------------------
// The operations, as plain data (so they print in a failure message); the
// key-value requests are `common::kv_model`'s.

/// A permission as sent: its type and raw key and range end.
#[derive(Debug, Clone)]
struct Perm {
    kind: PermissionType,
    key: B,
    end: B,
}

impl Perm {
    fn permission(&self) -> Permission {
        Permission::new(self.kind, self.key.0.clone()).with_range_end(self.end.0.clone())
    }

    /// etcd 3.5's `isValidPermissionRange`.
    fn is_valid(&self) -> bool {
        let (key, end) = (&self.key.0, &self.end.0);
        !key.is_empty() && (end.is_empty() || end.as_slice() == b"\0" || key < end)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Get(Get),
    Put(Put),
    Delete(Delete),
    Txn(TxnReq),
    Compact(i64),
    AuthEnable,
    AuthDisable,
    AuthStatus,
    /// With the client without credentials.
    Authenticate {
        name: String,
        password: String,
    },
    /// The actor's client connects again with these credentials.
    Login {
        password: String,
    },
    UserAdd {
        name: String,
        password: String,
        no_password: bool,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        password: String,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        user: String,
        role: String,
    },
    UserGet {
        name: String,
    },
    UserList,
    RoleAdd {
        name: String,
    },
    RoleDelete {
        name: String,
    },
    RoleGet {
        name: String,
    },
    RoleList,
    RoleGrantPermission {
        role: String,
        perm: Perm,
    },
    RoleRevokePermission {
        role: String,
        key: B,
        end: B,
    },
}

impl Op {
    /// A short name for the statistics.
    fn name(&self) -> &'static str {
        match self {
            Op::Get(_) => "Range",
            Op::Put(_) => "Put",
            Op::Delete(_) => "DeleteRange",
            Op::Txn(_) => "Txn",
            Op::Compact(_) => "Compact",
            Op::AuthEnable => "AuthEnable",
            Op::AuthDisable => "AuthDisable",
            Op::AuthStatus => "AuthStatus",
            Op::Authenticate { .. } => "Authenticate",
            Op::Login { .. } => "login",
            Op::UserAdd { .. } => "UserAdd",
            Op::UserDelete { .. } => "UserDelete",
            Op::UserChangePassword { .. } => "UserChangePassword",
            Op::UserGrantRole { .. } => "UserGrantRole",
            Op::UserRevokeRole { .. } => "UserRevokeRole",
            Op::UserGet { .. } => "UserGet",
            Op::UserList => "UserList",
            Op::RoleAdd { .. } => "RoleAdd",
            Op::RoleDelete { .. } => "RoleDelete",
            Op::RoleGet { .. } => "RoleGet",
            Op::RoleList => "RoleList",
            Op::RoleGrantPermission { .. } => "RoleGrantPermission",
            Op::RoleRevokePermission { .. } => "RoleRevokePermission",
        }
    }
}

/// Who makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    /// The client without credentials.
    Nobody,
    User(&'static str),
}

// ---------------------------------------------------------------------------
// Running an operation with etcd-client.

/// One server's answer to one operation: the raw response, or the error.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Range(PbRangeResponse),
    Put(PbPutResponse),
    Delete(PbDeleteResponse),
    Txn(PbTxnResponse),
    Compact(PbCompactionResponse),
    AuthEnable(PbAuthEnableResponse),
    AuthDisable(PbAuthDisableResponse),
    AuthStatus(AuthStatusResponse),
    Authenticate(PbAuthenticateResponse),
    UserAdd(PbAuthUserAddResponse),
    UserDelete(PbAuthUserDeleteResponse),
    UserChangePassword(PbAuthUserChangePasswordResponse),
    UserGrantRole(PbAuthUserGrantRoleResponse),
    UserRevokeRole(PbAuthUserRevokeRoleResponse),
    UserGet(PbAuthUserGetResponse),
    UserList(PbAuthUserListResponse),
    RoleAdd(PbAuthRoleAddResponse),
    RoleDelete(PbAuthRoleDeleteResponse),
    RoleGet(PbAuthRoleGetResponse),
    RoleList(PbAuthRoleListResponse),
    RoleGrantPermission(PbAuthRoleGrantPermissionResponse),
    RoleRevokePermission(PbAuthRoleRevokePermissionResponse),
    /// A client logged in (its token is random, and not compared).
    LoggedIn,
    /// A gRPC status: code and message.
    Status(String, String),
    /// Anything else (transport trouble): never expected.
    Broken(String),
}

impl_kv_answer!(Answer {
    AuthEnable,
    AuthDisable,
    AuthStatus,
    Authenticate,
    UserAdd,
    UserDelete,
    UserChangePassword,
    UserGrantRole,
    UserRevokeRole,
    UserGet,
    UserList,
    RoleAdd,
    RoleDelete,
    RoleGet,
    RoleList,
    RoleGrantPermission,
    RoleRevokePermission,
} without header { LoggedIn });

impl Answer {
    fn is_ok(&self) -> bool {
        !matches!(self, Answer::Status(..) | Answer::Broken(_))
    }

    fn is_status(&self, code: &str, message: &str) -> bool {
        matches!(self, Answer::Status(c, m) if c == code && m == message)
    }

    /// A short name for the statistics.
    fn kind(&self, op: &Op) -> String {
        match self {
            Answer::Status(code, message) => format!("{} -> {code}: {message}", op.name()),
            Answer::Broken(e) => format!("{} -> broken: {e}", op.name()),
            Answer::Txn(r) if r.succeeded => "Txn -> ok (then)".into(),
            Answer::Txn(_) => "Txn -> ok (else)".into(),
            _ => format!("{} -> ok", op.name()),
        }
    }
}

/// Runs `op` with `c` (not a login or AuthStatus: see [`Run`]).
async fn execute(c: &mut Client, op: &Op) -> Answer {
    match op {
        Op::Get(g) => g.send(c).await,
        Op::Put(p) => p.send(c).await,
        Op::Delete(d) => d.send(c).await,
        Op::Txn(t) => t.send(c).await,
        Op::Compact(revision) => compact(c, *revision, false).await,
        Op::AuthEnable => answer(c.auth_enable().await, |r| Answer::AuthEnable(r.0)),
        Op::AuthDisable => answer(c.auth_disable().await, |r| Answer::AuthDisable(r.0)),
        Op::Authenticate { name, password } => answer(
            c.auth_client().authenticate(name.clone(), password.clone()).await,
            |r| {
                // The token is random: only whether there is one is compared.
                let mut r = r.0;
                if !r.token.is_empty() {
                    r.token = "<token>".into();
                }
                Answer::Authenticate(r)
            },
        ),
        Op::UserAdd {
            name,
            password,
            no_password,
        } => {
            let o = no_password.then(|| UserAddOptions::new().with_no_pwd());
            answer(c.user_add(name.clone(), password.clone(), o).await, |r| {
                Answer::UserAdd(r.0)
            })
        }
        Op::UserDelete { name } => answer(c.user_delete(name.clone()).await, |r| Answer::UserDelete(r.0)),
        Op::UserChangePassword { name, password } => {
            answer(c.user_change_password(name.clone(), password.clone()).await, |r| {
                Answer::UserChangePassword(r.0)
            })
        }
        Op::UserGrantRole { user, role } => answer(c.user_grant_role(user.clone(), role.clone()).await, |r| {
            Answer::UserGrantRole(r.0)
        }),
        Op::UserRevokeRole { user, role } => answer(c.user_revoke_role(user.clone(), role.clone()).await, |r| {
            Answer::UserRevokeRole(r.0)
        }),
        Op::UserGet { name } => answer(c.user_get(name.clone()).await, |r| Answer::UserGet(r.0)),
        Op::UserList => answer(c.user_list().await, |r| Answer::UserList(r.0)),
        Op::RoleAdd { name } => answer(c.role_add(name.clone()).await, |r| Answer::RoleAdd(r.0)),
        Op::RoleDelete { name } => answer(c.role_delete(name.clone()).await, |r| Answer::RoleDelete(r.0)),
        Op::RoleGet { name } => answer(c.role_get(name.clone()).await, |r| Answer::RoleGet(r.0)),
        Op::RoleList => answer(c.role_list().await, |r| Answer::RoleList(r.0)),
        Op::RoleGrantPermission { role, perm } => {
            answer(c.role_grant_permission(role.clone(), perm.permission()).await, |r| {
                Answer::RoleGrantPermission(r.0)
            })
        }
        Op::RoleRevokePermission { role, key, end } => answer(
            c.role_revoke_permission(
                role.clone(),
                key.0.clone(),
                Some(RoleRevokePermissionOptions::new().with_range_end(end.0.clone())),
            )
            .await,
            |r| Answer::RoleRevokePermission(r.0),
        ),
        Op::Login { .. } | Op::AuthStatus => unreachable!("{op:?} is run by the harness"),
    }
}

/// AuthStatus, which etcd-client lacks, straight over gRPC with `token`.
async fn auth_status(endpoint: &str, token: Option<&str>) -> Answer {
    let call = unary(endpoint, "/etcdserverpb.Auth/AuthStatus", token, AuthStatusRequest {});
    let mut a = match call.await {
        Ok(r) => Answer::AuthStatus(r),
        Err(s) => Answer::Status(format!("{:?}", s.code()), s.message().to_owned()),
    };
    a.normalise();
    a
}

// ---------------------------------------------------------------------------
// Readable answers for failure messages.

fn show(a: &Answer) -> String {
    if let Some(kv) = a.show_kv_answer() {
        return kv;
    }
    match a {
        Answer::AuthStatus(r) => format!(
            "auth status {} enabled {} auth_revision {}",
            show_header(&r.header),
            r.enabled,
            r.auth_revision
        ),
        Answer::Authenticate(r) => format!("authenticate {} token {:?}", show_header(&r.header), r.token),
        Answer::UserGet(r) => format!("user {} roles {:?}", show_header(&r.header), r.roles),
        Answer::UserList(r) => format!("users {} {:?}", show_header(&r.header), r.users),
        Answer::RoleList(r) => format!("roles {} {:?}", show_header(&r.header), r.roles),
        Answer::RoleGet(r) => {
            let perms: Vec<String> = r
                .perm
                .iter()
                .map(|p| format!("{} {:?}..{:?}", p.perm_type, B(p.key.clone()), B(p.range_end.clone())))
                .collect();
            format!("role {} perms {perms:?}", show_header(&r.header))
        }
        Answer::LoggedIn => "logged in".into(),
        other => {
            let header = other.header().map(show_header).unwrap_or_default();
            let name = format!("{other:?}");
            format!("{} ok {header}", name.split('(').next().unwrap_or_default())
        }
    }
}

// ---------------------------------------------------------------------------
// What etcd's answers imply about the auth state.

struct ModelUser {
    /// None: a user added without a password.
    password: Option<String>,
    roles: BTreeSet<String>,
}

/// The auth state as the answers etcd gave (and Firebreak agreed with)
/// imply it, with the auth revision etcd 3.5 would have.
struct Model {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, ModelUser>,
    /// Each role's permissions, in etcd's order.
    roles: BTreeMap<String, Vec<Perm>>,
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  enabled {}, auth revision {}", self.enabled, self.revision)?;
        for (name, u) in &self.users {
            writeln!(f, "  user {name:?}: password {:?}, roles {:?}", u.password, u.roles)?;
        }
        for (name, perms) in &self.roles {
            let perms: Vec<String> = perms
                .iter()
                .map(|p| format!("{:?} {:?}..{:?}", p.kind, p.key, p.end))
                .collect();
            writeln!(f, "  role {name:?}: {perms:?}")?;
        }
        Ok(())
    }
}

impl Model {
    fn new() -> Model {
        Model {
            enabled: false,
            // etcd commits revision 1 when it creates its auth store.
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }

    fn has_root_role(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.contains("root"))
    }

    /// Whether granting (key, end) to `role` would add a permission (not
    /// update one), as etcd decides it: it looks at the first permission
    /// whose key is not below the new one.
    fn grant_adds(&self, role: &str, key: &[u8], end: &[u8]) -> bool {
        let Some(perms) = self.roles.get(role) else {
            return false;
        };
        let at = perms.partition_point(|p| p.key.0.as_slice() < key);
        !matches!(perms.get(at), Some(p) if p.key.0 == key && p.end.0 == end)
    }

    /// Applies a change that etcd accepted.
    fn apply(&mut self, op: &Op) {
        match op {
            Op::AuthEnable => self.enabled = true,
            // Disabling auth while it is disabled changes nothing.
            Op::AuthDisable if self.enabled => {
                self.enabled = false;
                self.revision += 1;
            }
            Op::UserAdd {
                name,
                password,
                no_password,
            } => {
                let password = (!no_password).then(|| password.clone());
                self.users.insert(
                    name.clone(),
                    ModelUser {
                        password,
                        roles: BTreeSet::new(),
                    },
                );
                self.revision += 1;
            }
            Op::UserDelete { name } => {
                self.users.remove(name);
                self.revision += 1;
            }
            Op::UserChangePassword { name, password } => {
                let user = self.users.get_mut(name).expect("etcd changed a known user's password");
                if user.password.is_some() {
                    user.password = Some(password.clone());
                }
                self.revision += 1;
            }
            Op::UserGrantRole { user, role } => {
                let user = self.users.get_mut(user).expect("etcd granted to a known user");
                if user.roles.insert(role.clone()) {
                    self.revision += 1;
                }
            }
            Op::UserRevokeRole { user, role } => {
                self.users.get_mut(user).expect("a known user").roles.remove(role);
                self.revision += 1;
            }
            Op::RoleAdd { name } => {
                self.roles.insert(name.clone(), Vec::new());
                self.revision += 1;
            }
            Op::RoleDelete { name } => {
                self.roles.remove(name);
                for user in self.users.values_mut() {
                    user.roles.remove(name);
                }
                self.revision += 1;
            }
            Op::RoleGrantPermission { role, perm } => {
                let adds = self.grant_adds(role, &perm.key.0, &perm.end.0);
                let perms = self.roles.get_mut(role).expect("etcd granted to a known role");
                if adds {
                    perms.push(perm.clone());
                    perms.sort_by(|a, b| a.key.cmp(&b.key));
                } else {
                    let at = perms.partition_point(|p| p.key < perm.key);
                    perms[at].kind = perm.kind;
                }
                self.revision += 1;
            }
            Op::RoleRevokePermission { role, key, end } => {
                let perms = self.roles.get_mut(role).expect("etcd revoked from a known role");
                perms.retain(|p| p.key != *key || p.end != *end);
                self.revision += 1;
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// The servers' clients.

/// The same client on both servers.
struct Pair {
    etcd: Client,
    firebreak: Client,
}

/// A user's clients.
struct Session {
    pair: Pair,
    /// Tokens issued to the same user at the same login, for the
    /// AuthStatus calls that etcd-client cannot make: the changes that
    /// revoke the clients' tokens revoke these as well.
    tokens: (String, String),
    /// Whether no change the model knows of revoked the tokens since.
    fresh: bool,
}

/// One seed's run: the clients, the generator and its model, and what a
/// failure message shows.
struct Run<'a> {
    seed: u64,
    rng: StdRng,
    model: Model,
    /// etcd's client URL and the Firebreak leader's.
    endpoints: (String, String),
    nobody: Pair,
    sessions: BTreeMap<&'static str, Session>,
    /// The KV revision and the last compaction.
    rev: i64,
    compacted: i64,
    cluster: &'a Cluster,
    leader: usize,
    history: Vec<String>,
    stats: BTreeMap<String, usize>,
}

impl Run<'_> {
    /// Panics with the difference, the seed, the op index and the last
    /// steps.
    async fn fail(&mut self, i: usize, what: String) -> ! {
        let leader = self.leader_now().await;
        panic!(
            "seed {}, op #{i}: etcd and Firebreak differ\n{what}\n\
             Firebreak's leader: m{} at the start; {leader}\n\
             the auth state before, as etcd's answers imply it:\n{}\n\
             previous steps, oldest first:\n{}",
            self.seed,
            self.leader + 1,
            self.model,
            self.history.join("\n")
        );
    }

    /// Whether the member that was leader at the start still is: every
    /// client talks to it, and serializable reads there may lag behind
    /// if it is not, which is no bug. Status needs credentials while auth
    /// is enabled: root's client asks then, if it can.
    async fn leader_now(&mut self) -> String {
        if !self.model.enabled {
            return format!("m{} now", self.cluster.leader().await + 1);
        }
        let Some(root) = self.sessions.get_mut("root") else {
            return "now unknown (root is not logged in)".into();
        };
        match root.pair.firebreak.status().await {
            Ok(s) if s.header().is_some_and(|h| h.member_id() == s.leader()) => "still leader".into(),
            Ok(_) => "no longer leader".into(),
            Err(e) => format!("now unknown ({e})"),
        }
    }

    fn remember(&mut self, line: String) {
        self.history.push(line);
        if self.history.len() > 12 {
            self.history.remove(0);
        }
    }

    fn pair(&mut self, actor: Actor) -> &mut Pair {
        match actor {
            Actor::Nobody => &mut self.nobody,
            Actor::User(user) => &mut self.sessions.get_mut(user).expect("a logged-in actor").pair,
        }
    }

    /// Runs one step on both servers, compares the answers, and updates
    /// the model with etcd's.
    async fn step(&mut self, i: usize, actor: Actor, op: Op) {
        let (a, b, note) = match &op {
            Op::Login { password } => {
                let Actor::User(user) = actor else {
                    unreachable!("nobody logs in")
                };
                let (a, b) = self.login(i, user, password).await;
                (a, b, "")
            }
            Op::AuthStatus => self.auth_status(actor).await,
            _ => {
                let pair = self.pair(actor);
                let (a, b) = tokio::join!(execute(&mut pair.etcd, &op), execute(&mut pair.firebreak, &op));
                (a, b, "")
            }
        };
        let agreed = a == b && !matches!(a, Answer::Broken(_));
        let excused = !agreed && self.bad_permission(actor, &op, &a, &b).await;
        if !agreed && !excused {
            self.fail(
                i,
                format!(
                    "{actor:?}: {op:#?}\n\
                     etcd:      {}\n\
                     firebreak: {}{note}\n\
                     (raw etcd: {a:?})\n(raw firebreak: {b:?})",
                    show(&a),
                    show(&b)
                ),
            )
            .await;
        }
        if let Some(rev) = a.revision() {
            self.rev = self.rev.max(rev);
        }
        if agreed && a.is_ok() {
            self.observe(&op);
        }
        *self.stats.entry(b.kind(&op)).or_insert(0) += 1;
        self.remember(format!(
            "  #{i} {actor:?}: {op:?}\n      -> {}",
            show(&b).replace('\n', "\n      ")
        ));
    }

    /// etcd 3.4 accepts a permission whose range 3.5 refuses (see the
    /// header): Firebreak must refuse it with "invalid auth management",
    /// where etcd accepted it or did not find the role. What etcd accepted
    /// is revoked from it again.
    async fn bad_permission(&mut self, actor: Actor, op: &Op, a: &Answer, b: &Answer) -> bool {
        let Op::RoleGrantPermission { role, perm } = op else {
            return false;
        };
        let refused = b.is_status("InvalidArgument", "etcdserver: invalid auth management");
        let etcd_34 = a.is_ok() || a.is_status("FailedPrecondition", "etcdserver: role name not found");
        if perm.is_valid() || !refused || !etcd_34 {
            return false;
        }
        if a.is_ok() {
            let revoke = Op::RoleRevokePermission {
                role: role.clone(),
                key: perm.key.clone(),
                end: perm.end.clone(),
            };
            let undone = execute(&mut self.pair(actor).etcd, &revoke).await;
            assert!(undone.is_ok(), "revoking {perm:?} from etcd again: {undone:?}");
        }
        *self
            .stats
            .entry("RoleGrantPermission -> refused by 3.5 only".into())
            .or_insert(0) += 1;
        true
    }

    /// Records what etcd accepted.
    fn observe(&mut self, op: &Op) {
        match op {
            Op::Compact(revision) => self.compacted = *revision,
            Op::AuthDisable => {
                for s in self.sessions.values_mut() {
                    s.fresh = false;
                }
            }
            Op::UserDelete { name } | Op::UserChangePassword { name, .. } => {
                if let Some(s) = self.sessions.get_mut(name.as_str()) {
                    s.fresh = false;
                }
            }
            _ => {}
        }
        self.model.apply(op);
    }

    /// Logs `user` in again on both servers. A login that succeeds on both
    /// replaces the user's clients; one that fails leaves them.
    async fn login(&mut self, i: usize, user: &'static str, password: &str) -> (Answer, Answer) {
        let (e, f) = tokio::join!(
            login(std::slice::from_ref(&self.endpoints.0), user, password),
            login(std::slice::from_ref(&self.endpoints.1), user, password)
        );
        match (e, f) {
            (Ok(etcd), Ok(firebreak)) => {
                let op = Op::Authenticate {
                    name: user.to_owned(),
                    password: password.to_owned(),
                };
                let (mut etcd_auth, mut firebreak_auth) =
                    (self.nobody.etcd.auth_client(), self.nobody.firebreak.auth_client());
                let tokens = tokio::join!(
                    etcd_auth.authenticate(user.into(), password.into()),
                    firebreak_auth.authenticate(user.into(), password.into())
                );
                let tokens = match tokens {
                    (Ok(a), Ok(b)) => (a.token().to_owned(), b.token().to_owned()),
                    other => self.fail(i, format!("{op:?} after a login: {other:?}")).await,
                };
                let session = Session {
                    pair: Pair { etcd, firebreak },
                    tokens,
                    fresh: true,
                };
                self.sessions.insert(user, session);
                (Answer::LoggedIn, Answer::LoggedIn)
            }
            (e, f) => (answer(e, |_| Answer::LoggedIn), answer(f, |_| Answer::LoggedIn)),
        }
    }

    /// AuthStatus on both; where etcd has none (3.4), etcd's answer is
    /// derived from a RoleList by the same client and from the model (see
    /// the header).
    async fn auth_status(&mut self, actor: Actor) -> (Answer, Answer, &'static str) {
        let tokens = match actor {
            Actor::Nobody => (None, None),
            Actor::User(user) => {
                let t = &self.sessions[user].tokens;
                (Some(t.0.clone()), Some(t.1.clone()))
            }
        };
        let (a, b) = tokio::join!(
            auth_status(&self.endpoints.0, tokens.0.as_deref()),
            auth_status(&self.endpoints.1, tokens.1.as_deref())
        );
        if !matches!(&a, Answer::Status(code, _) if code == "Unimplemented") {
            return (a, b, "");
        }
        let expected = match execute(&mut self.pair(actor).etcd, &Op::RoleList).await {
            Answer::RoleList(r) => Answer::AuthStatus(AuthStatusResponse {
                header: r.header,
                enabled: self.model.enabled,
                auth_revision: self.model.revision,
            }),
            other => other,
        };
        (
            expected,
            b,
            "\n(etcd 3.4 has no AuthStatus: its answer is derived from a RoleList and the model)",
        )
    }
}

// ---------------------------------------------------------------------------
// The generator.

impl Run<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        *from.choose(&mut self.rng).expect("non-empty")
    }

    fn pick_b(&mut self, from: &[&[u8]]) -> B {
        B::of(self.pick(from))
    }

    /// An actor with clients, by weight; nobody if none of them has.
    fn actor(&mut self, weights: &[(Actor, u32)]) -> Actor {
        let present: Vec<(Actor, u32)> = weights
            .iter()
            .copied()
            .filter(|(a, _)| match a {
                Actor::Nobody => true,
                Actor::User(u) => self.sessions.contains_key(u),
            })
            .collect();
        present
            .choose_weighted(&mut self.rng, |(_, w)| *w)
            .map_or(Actor::Nobody, |(a, _)| *a)
    }

    /// Whether nothing that 3.4 and 3.5 check differently is checked for
    /// `actor`: auth is disabled, or it has the `root` role.
    fn trusted(&self, actor: Actor) -> bool {
        match actor {
            _ if !self.model.enabled => true,
            Actor::Nobody => false,
            Actor::User(user) => self.model.has_root_role(user),
        }
    }

    /// The password a user has, mostly; else another one.
    fn password_for(&mut self, user: &str) -> String {
        let known = self.model.users.get(user).and_then(|u| u.password.clone());
        match known {
            Some(p) if self.chance(0.85) => p,
            _ if self.chance(0.3) => "wrong".into(),
            _ => self.pick(PASSWORDS).into(),
        }
    }

    fn key_sel(&mut self) -> KeySel {
        match self.rng.gen_range(0..100) {
            0..=44 => {
                let key = if self.chance(0.8) {
                    self.pick_b(KEYS)
                } else if self.chance(0.95) {
                    self.pick_b(READ_KEYS)
                } else {
                    B(Vec::new())
                };
                KeySel::Single(key)
            }
            45..=64 => {
                let key = if self.chance(0.7) {
                    self.pick_b(KEYS)
                } else {
                    self.pick_b(READ_KEYS)
                };
                KeySel::Range(key, self.pick_b(ENDS))
            }
            65..=84 => KeySel::Prefix(self.pick_b(PREFIXES)),
            _ => KeySel::FromKey(self.pick_b(FROM_KEYS)),
        }
    }

    fn get(&mut self) -> Get {
        let sel = self.key_sel();
        Get {
            limit: if self.chance(0.2) { self.rng.gen_range(1..=2) } else { 0 },
            serializable: self.chance(0.25),
            keys_only: self.chance(0.1),
            count_only: self.chance(0.1),
            ..Get::of(sel)
        }
    }

    fn put(&mut self, prev_kv: bool) -> Put {
        let key = if self.chance(0.95) {
            self.pick_b(KEYS)
        } else {
            B::of(b"z")
        };
        let value = self.pick_b(VALUES);
        Put {
            prev_kv: prev_kv && self.chance(0.4),
            ..Put::of(key, value)
        }
    }

    fn delete(&mut self) -> Delete {
        Delete {
            sel: self.key_sel(),
            prev_kv: self.chance(0.4),
        }
    }

    fn cmp(&mut self) -> Cmp {
        let key = if self.chance(0.85) {
            self.pick_b(KEYS)
        } else {
            self.pick_b(READ_KEYS)
        };
        let range = match self.rng.gen_range(0..10) {
            0..=6 => CmpRange::None,
            7 | 8 => CmpRange::Range(self.pick_b(ENDS)),
            _ => CmpRange::Range(B::of(b"\0")),
        };
        let op = self.pick(&[
            CompareOp::Equal,
            CompareOp::NotEqual,
            CompareOp::Greater,
            CompareOp::Less,
        ]);
        let rev = self.rev;
        let target = match self.rng.gen_range(0..4) {
            0 => CmpTarget::Value(self.pick_b(VALUES)),
            1 => CmpTarget::Version(self.rng.gen_range(0..3)),
            2 => CmpTarget::Create(self.rng.gen_range(0..=rev)),
            _ => CmpTarget::Mod(self.rng.gen_range(0..=rev + 1)),
        };
        Cmp { key, range, op, target }
    }

    /// A branch of a txn: reads, and at most one write (so that no key is
    /// written twice); a nested txn of reads when `trusted`.
    fn branch(&mut self, trusted: bool) -> Vec<Sub> {
        let mut ops = Vec::new();
        let mut wrote = false;
        for _ in 0..self.rng.gen_range(0..=2) {
            let sub = match self.rng.gen_range(0..10) {
                0..=3 => Sub::Get(self.get()),
                4..=6 if !wrote => {
                    wrote = true;
                    Sub::Put(self.put(trusted))
                }
                7 | 8 if !wrote => {
                    wrote = true;
                    Sub::Delete(self.delete())
                }
                9 if trusted => Sub::Txn(TxnReq {
                    when: vec![self.cmp()],
                    then: vec![Sub::Get(self.get())],
                    otherwise: vec![Sub::Get(self.get())],
                }),
                _ => Sub::Get(self.get()),
            };
            ops.push(sub);
        }
        ops
    }

    fn kv_op(&mut self, actor: Actor) -> Op {
        let trusted = self.trusted(actor);
        match self.rng.gen_range(0..100) {
            0..=34 => Op::Get(self.get()),
            35..=59 => Op::Put(self.put(true)),
            60..=74 => Op::Delete(self.delete()),
            _ => {
                let when = (0..self.rng.gen_range(0..=2)).map(|_| self.cmp()).collect();
                Op::Txn(TxnReq {
                    when,
                    then: self.branch(trusted),
                    otherwise: self.branch(trusted),
                })
            }
        }
    }

    /// A compaction at a revision that may be compacted already or in the
    /// future.
    fn compact(&mut self) -> Op {
        let (rev, compacted) = (self.rev, self.compacted.max(0));
        let revision = match self.rng.gen_range(0..10) {
            0 => compacted,
            1 => rev + 1,
            _ => self.rng.gen_range(compacted..=rev),
        };
        Op::Compact(revision)
    }

    fn perm(&mut self) -> Perm {
        let (key, end) = if self.chance(0.05) {
            self.pick(BAD_PERMS)
        } else {
            self.pick(PERMS)
        };
        Perm {
            kind: self.pick(&[PermissionType::Read, PermissionType::Write, PermissionType::Readwrite]),
            key: B::of(key),
            end: B::of(end),
        }
    }

    fn revoke(&mut self, role: &str) -> Op {
        let held: Vec<Perm> = self.model.roles.get(role).cloned().unwrap_or_default();
        let (key, end) = match held.choose(&mut self.rng) {
            Some(p) if self.chance(0.7) => (p.key.clone(), p.end.clone()),
            _ => {
                let (k, e) = self.pick(PERMS);
                (B::of(k), B::of(e))
            }
        };
        Op::RoleRevokePermission {
            role: role.into(),
            key,
            end,
        }
    }

    fn admin_op(&mut self) -> Op {
        let s = |x: &str| x.to_owned();
        match self.rng.gen_range(0..100) {
            0..=11 => Op::UserAdd {
                name: s(self.pick(ADDED_USERS)),
                password: s(self.pick(PASSWORDS)),
                no_password: self.chance(0.1),
            },
            12..=17 => Op::UserDelete {
                name: s(self.pick(DELETED_USERS)),
            },
            18..=23 => Op::UserChangePassword {
                name: s(self.pick(USER_NAMES)),
                password: s(self.pick(NEW_PASSWORDS)),
            },
            24..=37 => Op::UserGrantRole {
                user: s(self.pick(USER_NAMES)),
                role: s(self.pick(GRANTED_ROLES)),
            },
            38..=44 => {
                // Mostly a role the user holds.
                let held: Vec<(String, String)> = self
                    .model
                    .users
                    .iter()
                    .flat_map(|(u, m)| m.roles.iter().map(move |r| (u.clone(), r.clone())))
                    .collect();
                match held.choose(&mut self.rng) {
                    Some((user, role)) if self.chance(0.6) => Op::UserRevokeRole {
                        user: user.clone(),
                        role: role.clone(),
                    },
                    _ => Op::UserRevokeRole {
                        user: s(self.pick(USER_NAMES)),
                        role: s(self.pick(GRANTED_ROLES)),
                    },
                }
            }
            45..=51 => Op::UserGet {
                name: s(self.pick(USER_NAMES)),
            },
            52..=54 => Op::UserList,
            55..=60 => Op::RoleAdd {
                name: s(self.pick(ADDED_ROLES)),
            },
            61..=63 => Op::RoleDelete {
                name: s(self.pick(&["r1", "r2", "r3", "root", "nope"])),
            },
            64..=69 => Op::RoleGet {
                name: s(self.pick(ROLE_NAMES)),
            },
            70..=72 => Op::RoleList,
            73..=89 => {
                let role = s(self.pick(PERM_ROLES));
                let perm = self.perm();
                let full = self.model.roles.get(&role).is_some_and(|p| p.len() >= MAX_PERMS);
                if full && self.model.grant_adds(&role, &perm.key.0, &perm.end.0) {
                    self.revoke(&role)
                } else {
                    Op::RoleGrantPermission { role, perm }
                }
            }
            _ => {
                let role = self.pick(PERM_ROLES);
                self.revoke(role)
            }
        }
    }

    /// A login of one of the actors, mostly one whose token was revoked.
    fn login_op(&mut self) -> (Actor, Op) {
        let stale: Vec<&'static str> = ACTORS
            .iter()
            .copied()
            .filter(|u| !self.sessions.get(u).is_some_and(|s| s.fresh))
            .collect();
        let user = match stale.choose(&mut self.rng) {
            Some(u) if self.chance(0.7) => *u,
            _ => self.pick(ACTORS),
        };
        let password = self.password_for(user);
        (Actor::User(user), Op::Login { password })
    }

    /// Mostly, a login of an actor whose token was revoked, before it
    /// makes calls again (else most calls would only meet "invalid auth
    /// token").
    fn relogin(&mut self, actor: Actor) -> Option<(Actor, Op)> {
        let Actor::User(user) = actor else {
            return None;
        };
        let can = self.model.users.get(user).is_some_and(|u| u.password.is_some());
        if !can || self.sessions.get(user).is_none_or(|s| s.fresh) || !self.chance(0.7) {
            return None;
        }
        let password = self.password_for(user);
        Some((actor, Op::Login { password }))
    }

    /// An Authenticate of a user that may exist, mostly with its password.
    fn authenticate(&mut self) -> Op {
        let name = self.pick(USER_NAMES);
        let password = self.password_for(name);
        Op::Authenticate {
            name: name.into(),
            password,
        }
    }

    /// The next step.
    fn next(&mut self) -> (Actor, Op) {
        use Actor::{Nobody, User};
        /// Who makes a call, by weight: root, each other actor, nobody.
        const fn weights(root: u32, user: u32, nobody: u32) -> [(Actor, u32); 5] {
            [
                (User("root"), root),
                (User("alice"), user),
                (User("bob"), user),
                (User("carol"), user),
                (Nobody, nobody),
            ]
        }
        const KV: &[(Actor, u32)] = &weights(2, 3, 1);
        const ADMIN: &[(Actor, u32)] = &weights(12, 1, 1);
        const ANY: &[(Actor, u32)] = &weights(3, 1, 1);
        let roll = self.rng.gen_range(0..100);
        if !self.model.enabled {
            // Nobody but the client without credentials: see the header.
            let root = self.model.users.get("root");
            let repair = match root {
                None => Some(Op::UserAdd {
                    name: "root".into(),
                    password: ROOT_PASSWORD.into(),
                    no_password: false,
                }),
                Some(r) if !r.roles.contains("root") => Some(Op::UserGrantRole {
                    user: "root".into(),
                    role: "root".into(),
                }),
                Some(_) => None,
            };
            return match roll {
                // AuthEnable needs root with the root role: mostly, mend
                // that first.
                0..=11 => match repair {
                    Some(op) if self.chance(0.6) => (Nobody, op),
                    _ => (Nobody, Op::AuthEnable),
                },
                12..=49 => (Nobody, self.kv_op(Nobody)),
                50..=87 => (Nobody, self.admin_op()),
                88..=91 => (Nobody, self.authenticate()),
                92..=94 => self.login_op(),
                95..=97 => (Nobody, Op::AuthStatus),
                _ => (Nobody, self.compact()),
            };
        }
        match roll {
            0..=7 => self.login_op(),
            8..=49 => {
                let actor = self.actor(KV);
                self.relogin(actor).unwrap_or_else(|| (actor, self.kv_op(actor)))
            }
            50..=81 => {
                let actor = self.actor(ADMIN);
                self.relogin(actor).unwrap_or_else(|| (actor, self.admin_op()))
            }
            82..=85 => (Nobody, self.authenticate()),
            86..=89 => (self.actor(ANY), Op::AuthStatus),
            90..=91 => (self.actor(ANY), Op::AuthEnable),
            92..=93 => (self.actor(ADMIN), Op::AuthDisable),
            _ => {
                // Compact where 3.4 and 3.5 agree (see the header): by a
                // user with the root role and a fresh token.
                let admins: Vec<&'static str> = self
                    .sessions
                    .iter()
                    .filter(|(u, s)| s.fresh && self.model.has_root_role(u))
                    .map(|(u, _)| *u)
                    .collect();
                match admins.choose(&mut self.rng) {
                    Some(&u) => (User(u), self.compact()),
                    None => (Nobody, self.kv_op(Nobody)),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The test.

/// The steps every seed starts with: root (role root), alice (r1:
/// read-write on `a/`), bob (r2: read on `b/`, write on `c`), carol (both),
/// r3 (write on `[b/, d)`) for nobody yet, auth enabled.
fn preamble() -> Vec<(Actor, Op)> {
    let s = |x: &str| x.to_owned();
    let user = |name: &str, password: &str| Op::UserAdd {
        name: s(name),
        password: s(password),
        no_password: false,
    };
    let grant = |user: &str, role: &str| Op::UserGrantRole {
        user: s(user),
        role: s(role),
    };
    let perm = |role: &str, kind, key: &[u8], end: &[u8]| Op::RoleGrantPermission {
        role: s(role),
        perm: Perm {
            kind,
            key: B::of(key),
            end: B::of(end),
        },
    };
    let steps = vec![
        user("root", ROOT_PASSWORD),
        grant("root", "root"),
        user("alice", "pw"),
        user("bob", "pw"),
        user("carol", "pw"),
        Op::RoleAdd { name: s("r1") },
        Op::RoleAdd { name: s("r2") },
        Op::RoleAdd { name: s("r3") },
        perm("r1", PermissionType::Readwrite, b"a/", b"a0"),
        perm("r2", PermissionType::Read, b"b/", b"b0"),
        perm("r2", PermissionType::Write, b"c", b""),
        perm("r3", PermissionType::Write, b"b/", b"d"),
        grant("alice", "r1"),
        grant("bob", "r2"),
        grant("carol", "r1"),
        grant("carol", "r2"),
        Op::AuthEnable,
    ];
    steps.into_iter().map(|op| (Actor::Nobody, op)).collect()
}

/// Logs the actors in after auth was enabled: root always, the others
/// mostly.
async fn log_everyone_in(run: &mut Run<'_>, i: usize) {
    for &user in ACTORS {
        if user == "root" || run.chance(0.7) {
            let password = run
                .model
                .users
                .get(user)
                .and_then(|u| u.password.clone())
                .unwrap_or_else(|| "pw".into());
            run.step(i, Actor::User(user), Op::Login { password }).await;
        }
    }
}

async fn run_seed(seed: u64, ops: usize) -> BTreeMap<String, usize> {
    // A fresh pair per seed, so that each seed is reproducible alone.
    let etcd = Etcd::start_with(&["--bcrypt-cost", BCRYPT_COST, "--auth-token-ttl", TOKEN_TTL]);
    let cluster = Cluster::start(Options {
        env: vec![
            ("FIREBREAK_BCRYPT_COST".into(), BCRYPT_COST.into()),
            ("FIREBREAK_AUTH_TOKEN_TTL".into(), TOKEN_TTL.into()),
        ],
        ..Options::default()
    })
    .await;
    let etcd_client = etcd.client().await;
    // Every client talks to the leader: serializable reads on a follower
    // may lag behind the last write, legitimately.
    let leader = cluster.leader().await;
    let mut nobody = Pair {
        etcd: etcd_client,
        firebreak: cluster.client_of(leader).await,
    };
    align(&mut nobody.etcd, &mut nobody.firebreak, show).await;
    let rev = execute(&mut nobody.etcd, &Op::Get(plain_get(b"__ready")))
        .await
        .revision()
        .expect("etcd answers");
    let mut run = Run {
        seed,
        rng: StdRng::seed_from_u64(seed),
        model: Model::new(),
        endpoints: (etcd.endpoint().to_owned(), cluster.members[leader].endpoint()),
        nobody,
        sessions: BTreeMap::new(),
        rev,
        compacted: 0,
        cluster: &cluster,
        leader,
        history: Vec::new(),
        stats: BTreeMap::new(),
    };
    for (actor, op) in preamble() {
        run.step(0, actor, op).await;
    }
    log_everyone_in(&mut run, 0).await;
    for i in 0..ops {
        let (actor, op) = run.next();
        let enabling = matches!(op, Op::AuthEnable) && !run.model.enabled;
        run.step(i, actor, op).await;
        if enabling && run.model.enabled {
            log_everyone_in(&mut run, i).await;
        }
    }
    // The end state, read by root (or by nobody while auth is disabled).
    let reader = if run.model.enabled {
        let password = run.model.users.get("root").and_then(|u| u.password.clone());
        let password = password.unwrap_or_default();
        run.step(ops, Actor::User("root"), Op::Login { password }).await;
        if run.sessions.contains_key("root") {
            Actor::User("root")
        } else {
            Actor::Nobody
        }
    } else {
        Actor::Nobody
    };
    let mut last = vec![Op::UserList, Op::RoleList, Op::AuthStatus];
    last.extend(USER_NAMES.iter().map(|n| Op::UserGet { name: (*n).into() }));
    last.extend(ROLE_NAMES.iter().map(|n| Op::RoleGet { name: (*n).into() }));
    last.push(Op::Get(Get {
        sel: KeySel::FromKey(B::of(b"\0")),
        ..plain_get(b"")
    }));
    for op in last {
        run.step(ops, reader, op).await;
    }
    let stats = std::mem::take(&mut run.stats);
    drop(run);
    drop(cluster);
    drop(etcd);
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_auth_answers_as_etcd() {
    each_seed("DIFF_AUTH_SEEDS", DEFAULT_SEEDS, "DIFF_AUTH_OPS", DEFAULT_OPS, run_seed).await;
}
