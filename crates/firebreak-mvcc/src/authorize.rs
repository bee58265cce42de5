//! Which permissions a key-value request needs, checked against the auth
//! state: etcd's `apply_auth.go` and the checks of its `v3_server.go`.
//!
//! Writes are checked when the replica applies them, reads by the member
//! that serves them, each against that replica's auth state; these
//! functions are the rules, the callers choose the moment.
//!
//! # etcd's rules
//! - Range: READ on its range. Put: WRITE on its key, WRITE on every key
//!   already attached to its lease (unless the user has the `root` role),
//!   and READ on its key with `prev_kv`. DeleteRange: WRITE on its range,
//!   and READ with `prev_kv`.
//! - Txn: READ on the range of every compare, then every operation of both
//!   branches (nested txns too), whichever branch runs.
//! - LeaseRevoke (and keep-alives): WRITE on every attached key; the lease
//!   TTL with keys, and the lease list: READ on every key concerned; the
//!   `root` role may do all of these.
//! - Everything is allowed while auth is disabled.

use firebreak_auth::{AuthError, AuthInfo, AuthState, Operation};

use crate::store::Store;
use crate::types::*;

/// The checks of a write `cmd` (no wrapper) made by `who`, as etcd makes
/// them when it applies it. Compactions, lease grants and alarms are
/// checked, if at all, by the member that takes the request.
pub fn check_write(auth: &AuthState, store: &Store, who: &AuthInfo, cmd: &WriteCommand) -> Result<(), AuthError> {
    if !auth.is_enabled() {
        return Ok(());
    }
    match cmd {
        WriteCommand::Put(p) => check_put(auth, store, who, p),
        WriteCommand::DeleteRange(d) => {
            auth.check(who, &d.key, &d.range_end, Operation::Write)?;
            if d.prev_kv {
                auth.check(who, &d.key, &d.range_end, Operation::Read)?;
            }
            Ok(())
        }
        WriteCommand::Txn(t) => check_txn(auth, store, who, t),
        WriteCommand::LeaseRevoke(r) => check_lease_writes(auth, store, who, r.id),
        _ => Ok(()),
    }
}

/// A range read.
pub fn check_range(auth: &AuthState, who: &AuthInfo, r: &RangeRequest) -> Result<(), AuthError> {
    auth.check(who, &r.key, &r.range_end, Operation::Read)
}

/// A txn: its compares, then both branches.
pub fn check_txn(auth: &AuthState, store: &Store, who: &AuthInfo, t: &TxnRequest) -> Result<(), AuthError> {
    if !auth.is_enabled() {
        return Ok(());
    }
    for c in &t.compare {
        auth.check(who, &c.key, &c.range_end, Operation::Read)?;
    }
    check_ops(auth, store, who, &t.success)?;
    check_ops(auth, store, who, &t.failure)
}

fn check_ops(auth: &AuthState, store: &Store, who: &AuthInfo, ops: &[RequestOp]) -> Result<(), AuthError> {
    for op in ops {
        match op {
            RequestOp::Range(r) => check_range(auth, who, r)?,
            RequestOp::Put(p) => check_put(auth, store, who, p)?,
            RequestOp::DeleteRange(d) => {
                if d.prev_kv {
                    auth.check(who, &d.key, &d.range_end, Operation::Read)?;
                }
                auth.check(who, &d.key, &d.range_end, Operation::Write)?;
            }
            RequestOp::Txn(t) => check_txn(auth, store, who, t)?,
            RequestOp::Empty => {}
        }
    }
    Ok(())
}

fn check_put(auth: &AuthState, store: &Store, who: &AuthInfo, p: &PutRequest) -> Result<(), AuthError> {
    auth.check(who, &p.key, b"", Operation::Write)?;
    // A user who could not revoke the lease may not attach keys to it.
    check_lease_writes(auth, store, who, p.lease)?;
    if p.prev_kv {
        auth.check(who, &p.key, b"", Operation::Read)?;
    }
    Ok(())
}

/// WRITE on every key attached to `lease` (a lease that does not exist
/// needs nothing): a revoke, a keep-alive, a put that attaches to it.
pub fn check_lease_writes(auth: &AuthState, store: &Store, who: &AuthInfo, lease: i64) -> Result<(), AuthError> {
    let Some(l) = store.lease(lease) else {
        return Ok(());
    };
    if auth.check_admin(who).is_ok() {
        return Ok(());
    }
    for key in &l.keys {
        auth.check(who, key, b"", Operation::Write)?;
    }
    Ok(())
}

/// READ on every key attached to any of `leases`: LeaseTimeToLive with
/// keys, and the lease list.
pub fn check_lease_reads(
    auth: &AuthState,
    store: &Store,
    who: &AuthInfo,
    leases: impl IntoIterator<Item = i64>,
) -> Result<(), AuthError> {
    if auth.check_admin(who).is_ok() {
        return Ok(());
    }
    for id in leases {
        if let Some(l) = store.lease(id) {
            for key in &l.keys {
                auth.check(who, key, b"", Operation::Read)?;
            }
        }
    }
    Ok(())
}
