//! Locks and elections on top of the key-value API, with the semantics of
//! etcd's `v3lock` and `v3election` services (themselves built on its
//! client-side `concurrency` package).
//!
//! A lock or a campaign for `name` creates the key `name/<lease id in hex>`
//! attached to the caller's lease; the owner is the key with the lowest
//! create revision under `name/`. A waiter owns the lock once every key
//! created before its own is gone (released, or its lease expired).
//!
//! # Correctness
//! - Ownership is decided by create revisions, which the log orders
//!   totally: at most one key under a prefix is the oldest.
//! - Every check is a linearizable read or a txn, so a waiter never acts
//!   on a stale view; it re-checks after every applied revision.
//! - A waiter whose own key disappears (its lease expired) gives up.
//! - Every read and write is made as the caller ([`AuthInfo`]), so it is
//!   judged by the caller's permissions, as etcd's lock and election
//!   services make theirs through a client with the caller's token.

use bytes::Bytes;
use firebreak_auth::AuthInfo;
use firebreak_mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest, RequestOp,
    SortOrder, SortTarget, TxnRequest, TxnResponse,
};

use firebreak_raft::{Node, NodeError};

/// Why a lock or election call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConcurrencyError {
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The caller's key vanished while it waited (its lease ended).
    #[error("etcdserver: requested lease not found")]
    SessionExpired,
    #[error("election: not leader")]
    NotLeader,
    #[error("election: no leader")]
    NoLeader,
}

/// A held campaign (etcd's LeaderKey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderKey {
    pub name: Bytes,
    pub key: Bytes,
    /// Create revision of the key.
    pub rev: i64,
    pub lease: i64,
}

fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

/// The TTL of the session lease made for a lock or a campaign that names
/// none: etcd's `concurrency.NewSession` default.
pub const SESSION_TTL: i64 = 60;

fn own_key(name: &[u8], lease: i64) -> Bytes {
    let mut key = name.to_vec();
    key.push(b'/');
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    Bytes::from(key)
}

/// Creates `key` with `value` on `lease` unless it exists; returns its
/// create revision and the txn's revision.
async fn create_own_key(
    node: &Node,
    key: &Bytes,
    value: &Bytes,
    lease: i64,
    who: &AuthInfo,
) -> Result<(KeyValue, i64), NodeError> {
    let get = RequestOp::Range(RangeRequest {
        key: key.clone(),
        ..Default::default()
    });
    let txn = TxnRequest {
        compare: vec![Compare {
            key: key.clone(),
            range_end: Bytes::new(),
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
        }],
        success: vec![
            RequestOp::Put(PutRequest {
                key: key.clone(),
                value: value.clone(),
                lease,
                ..Default::default()
            }),
            get.clone(),
        ],
        failure: vec![get],
    };
    let resp = node.txn(txn, who).await?;
    let kv = resp
        .responses
        .iter()
        .find_map(|r| match r {
            firebreak_mvcc::ResponseOp::Range(r) => r.kvs.first().cloned(),
            _ => None,
        })
        .unwrap_or_default();
    Ok((kv, resp.revision))
}

/// Waits until no key under `prefix` was created before `my_rev`, and
/// `my_key` still exists.
async fn wait_turn(
    node: &Node,
    prefix: &Bytes,
    my_key: &Bytes,
    my_rev: i64,
    who: &AuthInfo,
) -> Result<i64, ConcurrencyError> {
    let mut revisions = node.revisions();
    loop {
        let older = node
            .range(
                RangeRequest {
                    key: prefix.clone(),
                    range_end: prefix_end(prefix),
                    // Not count_only: etcd's count ignores the revision
                    // filters, and so does ours.
                    max_create_revision: my_rev - 1,
                    keys_only: true,
                    limit: 1,
                    ..Default::default()
                },
                who,
            )
            .await?;
        let mine = node
            .range(
                RangeRequest {
                    key: my_key.clone(),
                    ..Default::default()
                },
                who,
            )
            .await?;
        if mine.kvs.first().is_none_or(|kv| kv.create_revision != my_rev) {
            return Err(ConcurrencyError::SessionExpired);
        }
        if older.kvs.is_empty() {
            return Ok(mine.revision);
        }
        if revisions.changed().await.is_err() {
            return Err(NodeError::Stopped("shutting down".into()).into());
        }
    }
}

/// The prefix `name/`, the caller's own key under it and its lease.
/// A lease the caller names is looked up after a read barrier: a member
/// that lags never answers "lease not found" for a lease granted
/// before. Lease 0 gets a session lease of its own, as etcd's lock and
/// election services make one ([`SESSION_TTL`] seconds, not kept
/// alive: the lock or leadership ends with it unless released first).
async fn session_keys(
    node: &Node,
    name: &[u8],
    lease: i64,
    who: &AuthInfo,
) -> Result<(Bytes, Bytes, i64), ConcurrencyError> {
    let lease = if lease == 0 {
        node.lease_grant(SESSION_TTL, 0, who).await?.id
    } else {
        node.read_barrier().await?;
        if !node.has_lease(lease) {
            return Err(ConcurrencyError::SessionExpired);
        }
        lease
    };
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    Ok((Bytes::from(prefix), own_key(name, lease), lease))
}

/// Acquires the lock `name` for `lease`; returns the lock's key and the
/// revision at which it was acquired. A caller that gives up (drops the
/// future) leaves its key behind, as etcd's server does; it goes with
/// the lease.
/// Every read and write is made as `who`, with its permissions.
pub async fn lock(node: &Node, name: &[u8], lease: i64, who: &AuthInfo) -> Result<(Bytes, i64), ConcurrencyError> {
    let (prefix, key, lease) = session_keys(node, name, lease, who).await?;
    let (kv, _) = create_own_key(node, &key, &Bytes::new(), lease, who).await?;
    let revision = wait_turn(node, &prefix, &key, kv.create_revision, who).await?;
    Ok((key, revision))
}

/// Releases a lock (or any key): deletes it.
pub async fn unlock(node: &Node, key: Bytes, who: &AuthInfo) -> Result<i64, NodeError> {
    Ok(node
        .delete_range(
            DeleteRangeRequest {
                key,
                ..Default::default()
            },
            who,
        )
        .await?
        .revision)
}

/// Campaigns for leadership of `name` with `value`; returns once this
/// caller leads.
pub async fn campaign(
    node: &Node,
    name: &[u8],
    lease: i64,
    value: Bytes,
    who: &AuthInfo,
) -> Result<(LeaderKey, i64), ConcurrencyError> {
    let (prefix, key, lease) = session_keys(node, name, lease, who).await?;
    let (kv, _) = create_own_key(node, &key, &value, lease, who).await?;
    let leader = LeaderKey {
        name: Bytes::copy_from_slice(name),
        key: key.clone(),
        rev: kv.create_revision,
        lease,
    };
    if kv.value != value {
        proclaim(node, &leader, value, who).await?;
    }
    let revision = wait_turn(node, &prefix, &key, kv.create_revision, who).await?;
    Ok((leader, revision))
}

/// Runs `op` in a txn guarded by `leader` still holding its key (the
/// key's create revision unchanged).
async fn as_leader(node: &Node, leader: &LeaderKey, op: RequestOp, who: &AuthInfo) -> Result<TxnResponse, NodeError> {
    node.txn(
        TxnRequest {
            compare: vec![Compare {
                key: leader.key.clone(),
                range_end: Bytes::new(),
                result: CompareResult::Equal,
                target: CompareTarget::Create(leader.rev),
            }],
            success: vec![op],
            failure: vec![],
        },
        who,
    )
    .await
}

/// Updates the leader's value, if `leader` still leads.
pub async fn proclaim(node: &Node, leader: &LeaderKey, value: Bytes, who: &AuthInfo) -> Result<i64, ConcurrencyError> {
    let put = RequestOp::Put(PutRequest {
        key: leader.key.clone(),
        value,
        lease: leader.lease,
        ..Default::default()
    });
    let resp = as_leader(node, leader, put, who).await?;
    if !resp.succeeded {
        return Err(ConcurrencyError::NotLeader);
    }
    Ok(resp.revision)
}

/// Gives up leadership (deletes the leader key if it is still ours).
pub async fn resign(node: &Node, leader: &LeaderKey, who: &AuthInfo) -> Result<i64, ConcurrencyError> {
    let delete = RequestOp::DeleteRange(DeleteRangeRequest {
        key: leader.key.clone(),
        ..Default::default()
    });
    Ok(as_leader(node, leader, delete, who).await?.revision)
}

/// The current leader's key-value of election `name`.
pub async fn election_leader(node: &Node, name: &[u8], who: &AuthInfo) -> Result<(KeyValue, i64), ConcurrencyError> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    let resp = node
        .range(
            RangeRequest {
                range_end: prefix_end(&prefix),
                key: Bytes::from(prefix),
                sort_order: SortOrder::Ascend,
                sort_target: SortTarget::Create,
                limit: 1,
                ..Default::default()
            },
            who,
        )
        .await?;
    match resp.kvs.into_iter().next() {
        Some(kv) => Ok((kv, resp.revision)),
        None => Err(ConcurrencyError::NoLeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_every_prefixed_key() {
        assert_eq!(prefix_end(b"a/"), Bytes::from_static(b"a0"));
        assert_eq!(prefix_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"\xff"), Bytes::from_static(b"\0"));
        assert_eq!(own_key(b"job", 255), Bytes::from_static(b"job/ff"));
    }
}
