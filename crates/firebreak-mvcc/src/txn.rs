//! Transactions: compares, branch choice, and the ops of the chosen branch.
//!
//! # Correctness
//! - Every compare of the txn and of the nested txns on the chosen path is
//!   evaluated against the state before the txn's first op, as etcd does.
//! - All checks that can fail (read revisions, `ignore_value` on a missing
//!   key, unknown leases) run before the first write, so a failed txn
//!   changes nothing.
//! - All writes of one txn share one revision, `begin + 1`; the store's
//!   revision moves only if something changed.

use std::cmp::Ordering;

use crate::error::KvError;
use crate::store::Store;
use crate::types::*;

impl Store {
    /// Runs a txn that may write.
    pub(crate) fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        let begin = self.current;
        let mut path = Vec::new();
        self.choose_path(req, &mut path);
        self.check_path(req, &path, begin)?;

        let mut exec = Exec {
            store: self,
            begin,
            changed: false,
        };
        let mut cursor = 0;
        let mut resp = exec.run(req, &path, &mut cursor);
        let changed = exec.changed;
        if changed {
            self.current = begin + 1;
        }
        resp.revision = self.current;
        Ok(resp)
    }

    /// Runs a read-only txn (see [`TxnRequest::is_read_only`]) without
    /// changing anything.
    pub fn txn_read(&self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        assert!(req.is_read_only(), "txn_read takes read-only txns");
        let succeeded = req.compare.iter().all(|c| self.compare(c));
        let ops = if succeeded { &req.success } else { &req.failure };
        // The same checks as in a txn that writes: a read-only txn is not
        // a plain range read (a negative revision is refused here).
        for op in ops {
            self.check_txn_range(op, self.current)?;
        }
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            if let RequestOp::Range(r) = op {
                responses.push(ResponseOp::Range(self.range_at(r, self.current)?));
            }
        }
        Ok(TxnResponse {
            revision: self.current,
            succeeded,
            responses,
        })
    }

    /// Evaluates compares depth first along the branches that will run,
    /// appending one bool per txn (the outer one first).
    fn choose_path(&self, req: &TxnRequest, path: &mut Vec<bool>) {
        let succeeded = req.compare.iter().all(|c| self.compare(c));
        path.push(succeeded);
        let ops = if succeeded { &req.success } else { &req.failure };
        for op in ops {
            if let RequestOp::Txn(nested) = op {
                self.choose_path(nested, path);
            }
        }
    }

    /// Refuses the txn before any write if an op on its path would fail.
    /// Puts are checked before reads, as etcd does.
    fn check_path(&self, req: &TxnRequest, path: &[bool], begin: i64) -> Result<(), KvError> {
        self.walk_path(req, path, &mut 0, &mut |op| match op {
            RequestOp::Put(p) => {
                if (p.ignore_value || p.ignore_lease) && self.latest(&p.key).is_none() {
                    return Err(KvError::KeyNotFound);
                }
                if p.lease != 0 && !self.lease_exists(p.lease) {
                    return Err(KvError::LeaseNotFound);
                }
                Ok(())
            }
            _ => Ok(()),
        })?;
        self.walk_path(req, path, &mut 0, &mut |op| self.check_txn_range(op, begin))
    }

    /// etcd's check of a read in a txn, against the state before the txn.
    /// Unlike a plain range read, a negative revision is not "the current
    /// one" here: only 0 is, and any other revision below the compaction
    /// (-1 before the first) is refused as compacted.
    fn check_txn_range(&self, op: &RequestOp, begin: i64) -> Result<(), KvError> {
        match op {
            RequestOp::Range(r) if r.revision == 0 => Ok(()),
            RequestOp::Range(r) if r.revision > begin => Err(KvError::FutureRevision),
            RequestOp::Range(r) if r.revision < self.compacted => Err(KvError::Compacted),
            _ => Ok(()),
        }
    }

    fn walk_path(
        &self,
        req: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
        check: &mut dyn FnMut(&RequestOp) -> Result<(), KvError>,
    ) -> Result<(), KvError> {
        let ops = if path[*cursor] { &req.success } else { &req.failure };
        *cursor += 1;
        for op in ops {
            match op {
                RequestOp::Txn(nested) => self.walk_path(nested, path, cursor, check)?,
                other => check(other)?,
            }
        }
        Ok(())
    }

    /// Whether every key of the compare's range satisfies it. A missing key
    /// compares as all-zero fields, except that a value compare on a missing
    /// key always fails.
    pub(crate) fn compare(&self, c: &Compare) -> bool {
        let mut any = false;
        for (key, record) in self.live_at(&c.key, &c.range_end, self.current) {
            any = true;
            if !compare_one(c, &crate::store::to_kv(key, record)) {
                return false;
            }
        }
        if any {
            return true;
        }
        if matches!(c.target, CompareTarget::Value(_)) {
            return false;
        }
        compare_one(c, &KeyValue::default())
    }
}

fn compare_one(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value[..].cmp(&v[..]),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// The ops of one txn being applied.
struct Exec<'a> {
    store: &'a mut Store,
    /// Revision before the txn.
    begin: i64,
    /// Whether any op has changed a key yet.
    changed: bool,
}

impl Exec<'_> {
    /// The revision reads inside the txn see: the txn's own once it wrote.
    fn view(&self) -> i64 {
        self.begin + i64::from(self.changed)
    }

    fn run(&mut self, req: &TxnRequest, path: &[bool], cursor: &mut usize) -> TxnResponse {
        let succeeded = path[*cursor];
        *cursor += 1;
        let ops = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let resp = match op {
                RequestOp::Range(r) => {
                    let view = self.view();
                    // Checked before any write: cannot fail here.
                    let resp = self
                        .store
                        .range_at(r, view)
                        .expect("txn reads are checked before the txn runs");
                    ResponseOp::Range(resp)
                }
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete(d)),
                RequestOp::Txn(nested) => {
                    let mut resp = self.run(nested, path, cursor);
                    resp.revision = 0;
                    ResponseOp::Txn(resp)
                }
                RequestOp::Empty => continue,
            };
            responses.push(resp);
        }
        TxnResponse {
            revision: 0,
            succeeded,
            responses,
        }
    }

    fn put(&mut self, p: &PutRequest) -> PutResponse {
        let rev = self.begin + 1;
        // The previous record is looked up (and copied) only when the put
        // needs it; `put_record` finds the key's history on its own.
        let prev = if p.prev_kv || p.ignore_value || p.ignore_lease {
            self.store.latest(&p.key)
        } else {
            None
        };
        let (value, lease) = match &prev {
            Some(prev) if p.ignore_value || p.ignore_lease => (
                if p.ignore_value {
                    prev.value.clone()
                } else {
                    p.value.clone()
                },
                if p.ignore_lease { prev.lease } else { p.lease },
            ),
            _ => (p.value.clone(), p.lease),
        };
        self.store.put_record(&p.key, value, lease, rev);
        self.changed = true;
        PutResponse {
            revision: rev,
            prev_kv: if p.prev_kv { prev } else { None },
        }
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let deleted = self.store.delete_records(&d.key, &d.range_end, self.begin + 1);
        self.changed |= !deleted.is_empty();
        DeleteRangeResponse {
            revision: self.view(),
            deleted: deleted.len() as i64,
            prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
        }
    }
}
