//! How a replica applies a committed command: the key-value store and the
//! auth state side by side, every write judged as its caller's.
//!
//! # Correctness
//! - Every check reads only the replica (the auth state, and the store for
//!   the keys of a lease) as it is when the command applies, and every
//!   replica applies the same commands in the same order: every member
//!   refuses or accepts each write alike, as etcd does by checking at
//!   apply time.
//! - A command is judged as the caller its nearest wrapper names: a plain
//!   command was made without credentials ([`AuthInfo::anonymous`], refused
//!   with "user name is empty" while auth is enabled), an
//!   [`WriteCommand::AsUser`] by that user with credentials of that auth
//!   revision, an [`WriteCommand::AsMember`] by the cluster itself
//!   (lease expiry: never refused, as etcd makes it with root's
//!   credentials). Batches and tags pass the caller on to what they hold,
//!   each command of a batch is judged on its own and gets its own answer.
//! - A refused command changes nothing (the checks run before the store or
//!   the auth state is touched).

use firebreak_auth::AuthInfo;
use firebreak_mvcc::{authorize, KvError, WriteCommand, WriteResponse};

use crate::state_machine::Replica;

impl Replica {
    /// Applies `cmd`, the command of the log entry at `index`.
    pub fn apply(&mut self, cmd: &WriteCommand, index: u64) -> Result<WriteResponse, KvError> {
        self.apply_as(cmd, index, &AuthInfo::anonymous(), false)
    }

    fn apply_as(
        &mut self,
        cmd: &WriteCommand,
        index: u64,
        who: &AuthInfo,
        member: bool,
    ) -> Result<WriteResponse, KvError> {
        match cmd {
            WriteCommand::Batch(cmds) => Ok(WriteResponse::Batch(
                cmds.iter().map(|c| self.apply_as(c, index, who, member)).collect(),
            )),
            WriteCommand::Tagged { cmd, .. } => self.apply_as(cmd, index, who, member),
            WriteCommand::AsUser {
                user,
                auth_revision,
                cmd,
            } => {
                let who = AuthInfo {
                    user: user.clone(),
                    revision: *auth_revision,
                };
                self.apply_as(cmd, index, &who, false)
            }
            WriteCommand::AsMember(cmd) => self.apply_as(cmd, index, who, true),
            WriteCommand::Auth(auth) => {
                if auth.needs_admin() && !member {
                    self.auth.check_admin(who)?;
                }
                Ok(WriteResponse::Auth(self.auth.apply(auth, index)?))
            }
            kv => {
                if !member {
                    authorize::check_write(&self.auth, &self.store, who, kv)?;
                }
                self.store.apply(kv)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use firebreak_auth::{AuthCommand, AuthError, KeyPermission, PermissionType};
    use firebreak_mvcc::{LeaseGrantRequest, LeaseRevokeRequest, PutRequest};

    use super::*;

    fn auth(cmd: AuthCommand) -> WriteCommand {
        WriteCommand::Auth(cmd)
    }

    fn put(key: &str, lease: i64) -> WriteCommand {
        WriteCommand::Put(PutRequest {
            key: key.to_owned().into(),
            value: "v".into(),
            lease,
            ..Default::default()
        })
    }

    fn as_user(user: &str, revision: u64, cmd: WriteCommand) -> WriteCommand {
        WriteCommand::AsUser {
            user: user.into(),
            auth_revision: revision,
            cmd: Box::new(cmd),
        }
    }

    fn user_add(name: &str) -> WriteCommand {
        auth(AuthCommand::UserAdd {
            name: name.into(),
            password_hash: b"h".to_vec(),
            no_password: false,
        })
    }

    /// root, and alice with write access to `a/`; auth enabled.
    fn enabled() -> Replica {
        let mut r = Replica::default();
        let setup = [
            user_add("root"),
            auth(AuthCommand::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            }),
            user_add("alice"),
            auth(AuthCommand::RoleAdd { name: "a".into() }),
            auth(AuthCommand::RoleGrantPermission {
                name: "a".into(),
                perm: Some(KeyPermission {
                    perm: PermissionType::Write,
                    key: b"a/".to_vec(),
                    range_end: b"a0".to_vec(),
                }),
            }),
            auth(AuthCommand::UserGrantRole {
                user: "alice".into(),
                role: "a".into(),
            }),
            auth(AuthCommand::Enable),
        ];
        for cmd in setup {
            r.apply(&cmd, 1).expect("setup");
        }
        r
    }

    fn denied(e: AuthError) -> Result<WriteResponse, KvError> {
        Err(KvError::Auth(e))
    }

    #[test]
    fn each_command_of_a_batch_is_judged_as_its_own_caller() {
        let mut r = enabled();
        let rev = r.auth.revision();
        let batch = WriteCommand::Tagged {
            tag: 9,
            cmd: Box::new(WriteCommand::Batch(vec![
                as_user("alice", rev, put("a/1", 0)),
                as_user("alice", rev, put("b/1", 0)),
                put("a/2", 0),
                as_user("root", rev, put("b/2", 0)),
                as_user("alice", rev, auth(AuthCommand::RoleAdd { name: "x".into() })),
                as_user("root", rev, auth(AuthCommand::RoleAdd { name: "x".into() })),
                as_user("alice", rev, put("a/3", 0)),
            ])),
        };
        let Ok(WriteResponse::Batch(answers)) = r.apply(&batch, 2) else {
            panic!("a batch answers with a batch");
        };
        assert!(answers[0].is_ok());
        assert_eq!(answers[1], denied(AuthError::PermissionDenied));
        assert_eq!(answers[2], denied(AuthError::UserEmpty));
        assert!(answers[3].is_ok());
        assert_eq!(answers[4], denied(AuthError::PermissionDenied));
        assert!(answers[5].is_ok());
        // The role added in the same batch advanced the revision: alice's
        // credentials are now old.
        assert_eq!(answers[6], denied(AuthError::AuthOldRevision));
        assert_eq!(r.store.current_revision(), 3, "only the two permitted puts wrote");
    }

    #[test]
    fn a_lease_revoke_needs_write_on_every_key_but_not_from_the_cluster() {
        let mut r = enabled();
        let rev = r.auth.revision();
        let grant = WriteCommand::LeaseGrant(LeaseGrantRequest { id: 5, ttl: 10 });
        r.apply(&as_user("root", rev, grant), 3).expect("grant");
        r.apply(&as_user("root", rev, put("a/1", 5)), 3).expect("put");
        r.apply(&as_user("root", rev, put("b/1", 5)), 3).expect("put");
        let revoke = WriteCommand::LeaseRevoke(LeaseRevokeRequest { id: 5 });
        assert_eq!(
            r.apply(&as_user("alice", rev, revoke.clone()), 4),
            denied(AuthError::PermissionDenied)
        );
        // Nor may alice attach a key she may write to that lease.
        assert_eq!(
            r.apply(&as_user("alice", rev, put("a/2", 5)), 4),
            denied(AuthError::PermissionDenied)
        );
        r.apply(&WriteCommand::AsMember(Box::new(revoke)), 5)
            .expect("an expiry revokes");
        assert!(!r.store.lease_exists(5));
    }

    #[test]
    fn nothing_is_checked_while_auth_is_disabled() {
        let mut r = Replica::default();
        r.apply(&put("k", 0), 1).expect("put");
        r.apply(&auth(AuthCommand::RoleAdd { name: "x".into() }), 1)
            .expect("role add");
    }
}
