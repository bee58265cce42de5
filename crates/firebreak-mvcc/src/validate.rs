//! Checks etcd makes on a request before proposing it.
//!
//! A request refused here never reaches the log. The rules and their order
//! are etcd's, so that a client gets the same error for the same request.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::error::KvError;
use crate::types::*;
use crate::MAX_TXN_OPS;

pub fn check_range(r: &RangeRequest) -> Result<(), KvError> {
    if r.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), KvError> {
    if r.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(KvError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(KvError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), KvError> {
    if r.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    Ok(())
}

/// Checks a txn: sizes, empty keys, then keys written twice.
pub fn check_txn(r: &TxnRequest) -> Result<(), KvError> {
    check_txn_ops(r, MAX_TXN_OPS)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, max_ops: usize) -> Result<(), KvError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(KvError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(KvError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_op(op, max_ops - ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: usize) -> Result<(), KvError> {
    match op {
        RequestOp::Range(r) => check_range(r),
        RequestOp::Put(r) => check_put(r),
        RequestOp::DeleteRange(r) => check_delete(r),
        RequestOp::Txn(r) => check_txn_ops(r, max_ops),
        RequestOp::Empty => Err(KvError::KeyNotFound),
    }
}

/// A key range a txn deletes, as etcd's affine interval `[start, end)`:
/// a single key `k` is `[k, k + "\0")`, and ends compare as plain byte
/// strings (so a `"\0"` range end, "to the end of the keyspace" for the
/// delete itself, covers no key here, exactly as in etcd).
#[derive(Debug, Clone)]
struct Deleted {
    start: Bytes,
    end: Bytes,
}

impl Deleted {
    fn of(d: &DeleteRangeRequest) -> Deleted {
        let end = if d.range_end.is_empty() {
            let mut point = d.key.to_vec();
            point.push(0);
            Bytes::from(point)
        } else {
            d.range_end.clone()
        };
        Deleted {
            start: d.key.clone(),
            end,
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.start.as_ref() <= key && key < self.end.as_ref()
    }
}

/// etcd's rule: within one branch (with its nested txns), no key is put
/// twice and no put falls in a range the branch deletes. Puts in the two
/// branches of one nested txn may overlap, as only one branch runs.
fn check_intervals(ops: &[RequestOp]) -> Result<(BTreeSet<Bytes>, Vec<Deleted>), KvError> {
    let mut dels: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(Deleted::of(d)),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Deleted], key: &[u8]| dels.iter().any(|d| d.contains(key));

    let mut puts: BTreeSet<Bytes> = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(nested) = op else { continue };
        let (puts_then, dels_then) = check_intervals(&nested.success)?;
        let (puts_else, dels_else) = check_intervals(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deleted(&dels, key) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(key.clone());
        }
        for key in &puts_else {
            if puts.contains(key) && !puts_then.contains(key) {
                return Err(KvError::DuplicateKey);
            }
            if deleted(&dels, key) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(key.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }

    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(KvError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
