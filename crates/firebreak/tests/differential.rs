//! Differential test: the same seeded random sequence of key-value requests
//! goes to a one-member real etcd and to a three-member Firebreak cluster,
//! and every answer must be the same.
//!
//! Compared: the raw protobuf response (`resp.0`), with only the TOP-LEVEL
//! header's `cluster_id`, `member_id` and `raft_term` zeroed (they name the
//! cluster, not the data); every nested header, revision, key-value field,
//! `more`, `count`, `succeeded` and `deleted` is compared as is. Errors are
//! compared by gRPC code and message.
//!
//! Operations: puts, deletes, ranges (every range form, limits, revisions
//! current, past, compacted, future and negative, every sort, serializable,
//! keys-only, count-only, revision filters), txns (every compare target and
//! result, with ranges, nested txns in both branches, duplicate keys,
//! too many ops), compactions, lease grants and revokes (client-chosen ids,
//! TTLs longer than a run), plus a fixed set of requests at etcd's limits
//! (over 1.5 MiB, over gRPC's 2 MiB, empty keys, contradicting flags),
//! spread over each seed's sequence.
//!
//! Each seed runs on a fresh pair of servers, so a seed is reproducible on
//! its own with the same op count: `DIFF_SEEDS=3 DIFF_OPS=2000 cargo test
//! -p firebreak --test differential`. The Firebreak cluster's startup
//! writes (`__ready`) are replayed on etcd first, so both stores start in
//! the same state.
//!
//! The keyspace is kept at 12 keys at most (`k0`..`k8`, `p/a`, `p/b` and the
//! harness's `__ready`): etcd sorts range results with Go's `sort.Sort`,
//! which is not stable, but for at most 12 elements it is an insertion sort
//! (Go 1.19 and later; Debian's etcd 3.4.23 is built with Go 1.19) and so
//! keeps ties in key order, as Firebreak does. With this keyspace no
//! normalisation of sorted results is needed, and none is done.
//!
//! If `etcd` is not installed the test is skipped, unless `CI` is set, where
//! it fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, Options};
use etcd_client::proto::{
    PbCompactionResponse, PbDeleteResponse, PbKeyValue, PbLeaseGrantResponse, PbLeaseRevokeResponse, PbPutResponse,
    PbRangeResponse, PbResponseHeader, PbTxnOpResponse, PbTxnResponse,
};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, LeaseGrantOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3, 4];
const DEFAULT_OPS: usize = 2000;

/// Keys that puts create. With `__ready` these are all keys that can exist.
const KEYS: &[&[u8]] = &[
    b"k0", b"k1", b"k2", b"k3", b"k4", b"k5", b"k6", b"k7", b"k8", b"p/a", b"p/b",
];
/// Keys that are only read, compared or deleted (some never exist).
const READ_KEYS: &[&[u8]] = &[b"__ready", b"k", b"k9", b"p/", b"p", b"z", b"\0", b"\xff"];
/// Range ends for explicit ranges (some below their start key).
const ENDS: &[&[u8]] = &[
    b"k0", b"k3", b"k5", b"k9", b"k", b"p/", b"p/b", b"p0", b"q", b"z", b"__s", b"\xff",
];
/// Prefixes; the empty prefix becomes "every key" in the client.
const PREFIXES: &[&[u8]] = &[b"k", b"p/", b"k1", b"__", b"", b"x"];
/// Start keys of from-key ranges; the empty key becomes `"\0"` in the client.
const FROM_KEYS: &[&[u8]] = &[b"\0", b"k", b"k5", b"p", b"__ready", b"", b"z"];
const VALUES: &[&[u8]] = &[b"", b"a", b"b", b"v1", b"v2", b"zz"];
/// Lease ids the test grants (chosen by the client, so that both servers
/// use the same ones) and revokes; puts and compares also name leases
/// outside this set, which never exist.
const LEASES: &[i64] = &[0x11, 0x22, 0x33];
/// Lease TTLs, all far longer than a run: no lease expires during the
/// test, so expiry (which is timing, not semantics) never shows.
const LEASE_TTLS: &[i64] = &[600, 3600, 86_400];

/// Over etcd's request limit (1.5 MiB), under gRPC's receive limit (2 MiB).
const BIG: usize = 1_650_000;
/// Over gRPC's receive limit.
const HUGE: usize = 2_200_000;

// ---------------------------------------------------------------------------
// The operations, as plain data (so they print in a failure message).

/// Bytes that print as an escaped string (or as a length when large).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct B(Vec<u8>);

impl B {
    fn of(bytes: &[u8]) -> B {
        B(bytes.to_vec())
    }
}

impl fmt::Debug for B {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 64 {
            write!(f, "<{} bytes>", self.0.len())
        } else {
            write!(f, "\"{}\"", self.0.escape_ascii())
        }
    }
}

#[derive(Debug, Clone)]
enum KeySel {
    Single(B),
    /// `with_range(end)`.
    Range(B, B),
    /// `with_prefix()`.
    Prefix(B),
    /// `with_from_key()`.
    FromKey(B),
}

impl KeySel {
    fn key(&self) -> Vec<u8> {
        match self {
            KeySel::Single(k) | KeySel::Range(k, _) | KeySel::Prefix(k) | KeySel::FromKey(k) => k.0.clone(),
        }
    }

    /// Whether the request goes out with range end `"\0"` (every key from
    /// the start key on), as the client builds it.
    fn is_from_key(&self) -> bool {
        match self {
            KeySel::FromKey(_) => true,
            KeySel::Prefix(k) => k.0.is_empty() || k.0.iter().all(|&b| b == 0xff),
            KeySel::Range(_, end) => end.0 == b"\0",
            KeySel::Single(_) => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Get {
    sel: KeySel,
    limit: i64,
    revision: i64,
    sort: Option<(SortTarget, SortOrder)>,
    serializable: bool,
    keys_only: bool,
    count_only: bool,
    min_mod: i64,
    max_mod: i64,
    min_create: i64,
    max_create: i64,
}

#[derive(Debug, Clone)]
struct Put {
    key: B,
    value: B,
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

#[derive(Debug, Clone)]
struct Delete {
    sel: KeySel,
    prev_kv: bool,
}

#[derive(Debug, Clone)]
enum CmpTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(B),
    Lease(i64),
}

#[derive(Debug, Clone)]
enum CmpRange {
    None,
    Range(B),
    Prefix,
}

#[derive(Debug, Clone)]
struct Cmp {
    key: B,
    range: CmpRange,
    op: CompareOp,
    target: CmpTarget,
}

#[derive(Debug, Clone)]
enum Sub {
    Get(Get),
    Put(Put),
    Delete(Delete),
    Txn(TxnReq),
}

#[derive(Debug, Clone, Default)]
struct TxnReq {
    when: Vec<Cmp>,
    then: Vec<Sub>,
    otherwise: Vec<Sub>,
}

#[derive(Debug, Clone)]
enum Op {
    Get(Get),
    Put(Put),
    Delete(Delete),
    Txn(TxnReq),
    Compact { revision: i64, physical: bool },
    LeaseGrant { id: i64, ttl: i64 },
    LeaseRevoke { id: i64 },
}

// ---------------------------------------------------------------------------
// Running an operation with etcd-client.

fn get_options(g: &Get) -> (Vec<u8>, GetOptions) {
    let mut o = GetOptions::new();
    o = match &g.sel {
        KeySel::Single(_) => o,
        KeySel::Range(_, end) => o.with_range(end.0.clone()),
        KeySel::Prefix(_) => o.with_prefix(),
        KeySel::FromKey(_) => o.with_from_key(),
    };
    o = o.with_limit(g.limit).with_revision(g.revision);
    if let Some((target, order)) = g.sort {
        o = o.with_sort(target, order);
    }
    if g.serializable {
        o = o.with_serializable();
    }
    if g.keys_only {
        o = o.with_keys_only();
    }
    if g.count_only {
        o = o.with_count_only();
    }
    o = o
        .with_min_mod_revision(g.min_mod)
        .with_max_mod_revision(g.max_mod)
        .with_min_create_revision(g.min_create)
        .with_max_create_revision(g.max_create);
    (g.sel.key(), o)
}

fn put_options(p: &Put) -> PutOptions {
    let mut o = PutOptions::new().with_lease(p.lease);
    if p.prev_kv {
        o = o.with_prev_key();
    }
    if p.ignore_value {
        o = o.with_ignore_value();
    }
    if p.ignore_lease {
        o = o.with_ignore_lease();
    }
    o
}

fn delete_options(d: &Delete) -> (Vec<u8>, DeleteOptions) {
    let mut o = DeleteOptions::new();
    o = match &d.sel {
        KeySel::Single(_) => o,
        KeySel::Range(_, end) => o.with_range(end.0.clone()),
        KeySel::Prefix(_) => o.with_prefix(),
        KeySel::FromKey(_) => o.with_from_key(),
    };
    if d.prev_kv {
        o = o.with_prev_key();
    }
    (d.sel.key(), o)
}

fn compare(c: &Cmp) -> Compare {
    let key = c.key.0.clone();
    let cmp = match &c.target {
        CmpTarget::Version(v) => Compare::version(key, c.op, *v),
        CmpTarget::Create(v) => Compare::create_revision(key, c.op, *v),
        CmpTarget::Mod(v) => Compare::mod_revision(key, c.op, *v),
        CmpTarget::Value(v) => Compare::value(key, c.op, v.0.clone()),
        CmpTarget::Lease(v) => Compare::lease(key, c.op, *v),
    };
    match &c.range {
        CmpRange::None => cmp,
        CmpRange::Range(end) => cmp.with_range(end.0.clone()),
        CmpRange::Prefix => cmp.with_prefix(),
    }
}

fn txn_op(op: &Sub) -> TxnOp {
    match op {
        Sub::Get(g) => {
            let (key, o) = get_options(g);
            TxnOp::get(key, Some(o))
        }
        Sub::Put(p) => TxnOp::put(p.key.0.clone(), p.value.0.clone(), Some(put_options(p))),
        Sub::Delete(d) => {
            let (key, o) = delete_options(d);
            TxnOp::delete(key, Some(o))
        }
        Sub::Txn(t) => TxnOp::txn(txn(t)),
    }
}

fn txn(t: &TxnReq) -> Txn {
    Txn::new()
        .when(t.when.iter().map(compare).collect::<Vec<_>>())
        .and_then(t.then.iter().map(txn_op).collect::<Vec<_>>())
        .or_else(t.otherwise.iter().map(txn_op).collect::<Vec<_>>())
}

/// One server's answer to one operation.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Range(PbRangeResponse),
    Put(PbPutResponse),
    Delete(PbDeleteResponse),
    Txn(PbTxnResponse),
    Compact(PbCompactionResponse),
    LeaseGrant(PbLeaseGrantResponse),
    LeaseRevoke(PbLeaseRevokeResponse),
    /// A gRPC status: code and message.
    Status(String, String),
    /// Anything else (transport trouble): never expected.
    Broken(String),
}

impl Answer {
    fn revision(&self) -> Option<i64> {
        let h = match self {
            Answer::Range(r) => &r.header,
            Answer::Put(r) => &r.header,
            Answer::Delete(r) => &r.header,
            Answer::Txn(r) => &r.header,
            Answer::Compact(r) => &r.header,
            Answer::LeaseGrant(r) => &r.header,
            Answer::LeaseRevoke(r) => &r.header,
            Answer::Status(..) | Answer::Broken(_) => return None,
        };
        h.as_ref().map(|h| h.revision)
    }

    /// A short name for the statistics.
    fn kind(&self) -> String {
        match self {
            Answer::Range(_) => "range".into(),
            Answer::Put(_) => "put".into(),
            Answer::Delete(r) if r.deleted > 0 => "delete (deleted some)".into(),
            Answer::Delete(_) => "delete (deleted none)".into(),
            Answer::Txn(r) if r.succeeded => "txn (succeeded)".into(),
            Answer::Txn(_) => "txn (failed)".into(),
            Answer::Compact(_) => "compact".into(),
            Answer::LeaseGrant(_) => "lease grant".into(),
            Answer::LeaseRevoke(_) => "lease revoke".into(),
            Answer::Status(code, message) => format!("error {code}: {message}"),
            Answer::Broken(e) => format!("broken: {e}"),
        }
    }
}

/// Zeroes what names the server rather than the data, in the top-level
/// header only.
fn normalise(h: &mut Option<PbResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

fn answer<T>(result: Result<T, etcd_client::Error>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match result {
        Ok(t) => ok(t),
        Err(etcd_client::Error::GRpcStatus(s)) => Answer::Status(format!("{:?}", s.code()), s.message().to_string()),
        Err(e) => Answer::Broken(e.to_string()),
    }
}

async fn execute(client: &mut Client, op: &Op) -> Answer {
    match op {
        Op::Get(g) => {
            let (key, o) = get_options(g);
            answer(client.get(key, Some(o)).await, |mut r| {
                normalise(&mut r.0.header);
                Answer::Range(r.0)
            })
        }
        Op::Put(p) => answer(
            client
                .put(p.key.0.clone(), p.value.0.clone(), Some(put_options(p)))
                .await,
            |mut r| {
                normalise(&mut r.0.header);
                Answer::Put(r.0)
            },
        ),
        Op::Delete(d) => {
            let (key, o) = delete_options(d);
            answer(client.delete(key, Some(o)).await, |mut r| {
                normalise(&mut r.0.header);
                Answer::Delete(r.0)
            })
        }
        Op::Txn(t) => answer(client.txn(txn(t)).await, |mut r| {
            normalise(&mut r.0.header);
            Answer::Txn(r.0)
        }),
        Op::Compact { revision, physical } => {
            let mut o = CompactionOptions::new();
            if *physical {
                o = o.with_physical();
            }
            answer(client.compact(*revision, Some(o)).await, |mut r| {
                normalise(&mut r.0.header);
                Answer::Compact(r.0)
            })
        }
        Op::LeaseGrant { id, ttl } => answer(
            client
                .lease_grant(*ttl, Some(LeaseGrantOptions::new().with_id(*id)))
                .await,
            |mut r| {
                normalise(&mut r.0.header);
                Answer::LeaseGrant(r.0)
            },
        ),
        Op::LeaseRevoke { id } => answer(client.lease_revoke(*id).await, |mut r| {
            normalise(&mut r.0.header);
            Answer::LeaseRevoke(r.0)
        }),
    }
}

// ---------------------------------------------------------------------------
// Readable answers for failure messages.

fn show_header(h: &Option<PbResponseHeader>) -> String {
    match h {
        None => "header: None".into(),
        Some(h) => format!(
            "header: {{cluster {} member {} rev {} term {}}}",
            h.cluster_id, h.member_id, h.revision, h.raft_term
        ),
    }
}

fn show_kv(kv: &PbKeyValue) -> String {
    format!(
        "{:?}={:?} (create {} mod {} ver {} lease {})",
        B(kv.key.clone()),
        B(kv.value.clone()),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease
    )
}

fn show_kvs(kvs: &[PbKeyValue], indent: &str) -> String {
    kvs.iter().map(|kv| format!("\n{indent}  {}", show_kv(kv))).collect()
}

fn show_txn(r: &PbTxnResponse, indent: &str) -> String {
    let mut s = format!("txn {} succeeded {}", show_header(&r.header), r.succeeded);
    let inner = format!("{indent}    ");
    for op in &r.responses {
        let line = match &op.response {
            None => "None".to_string(),
            Some(PbTxnOpResponse::ResponseRange(r)) => show_range(r, &inner),
            Some(PbTxnOpResponse::ResponsePut(r)) => show_put(r),
            Some(PbTxnOpResponse::ResponseDeleteRange(r)) => show_delete(r, &inner),
            Some(PbTxnOpResponse::ResponseTxn(r)) => show_txn(r, &inner),
        };
        s.push_str(&format!("\n{indent}  - {line}"));
    }
    s
}

fn show_range(r: &PbRangeResponse, indent: &str) -> String {
    format!(
        "range {} count {} more {}{}",
        show_header(&r.header),
        r.count,
        r.more,
        show_kvs(&r.kvs, indent)
    )
}

fn show_put(r: &PbPutResponse) -> String {
    let prev = r.prev_kv.as_ref().map_or("None".to_string(), show_kv);
    format!("put {} prev_kv {prev}", show_header(&r.header))
}

fn show_delete(r: &PbDeleteResponse, indent: &str) -> String {
    format!(
        "delete {} deleted {}{}",
        show_header(&r.header),
        r.deleted,
        show_kvs(&r.prev_kvs, indent)
    )
}

fn show(a: &Answer) -> String {
    match a {
        Answer::Range(r) => show_range(r, ""),
        Answer::Put(r) => show_put(r),
        Answer::Delete(r) => show_delete(r, ""),
        Answer::Txn(r) => show_txn(r, ""),
        Answer::Compact(r) => format!("compact {}", show_header(&r.header)),
        Answer::LeaseGrant(r) => format!(
            "lease grant {} id {} ttl {} error {:?}",
            show_header(&r.header),
            r.id,
            r.ttl,
            r.error
        ),
        Answer::LeaseRevoke(r) => format!("lease revoke {}", show_header(&r.header)),
        Answer::Status(code, message) => format!("status {code}: {message:?}"),
        Answer::Broken(e) => format!("broken: {e}"),
    }
}

// ---------------------------------------------------------------------------
// The generator. It knows the current and compacted revisions from etcd's
// answers (the same as Firebreak's, or the test has already failed).

struct Gen {
    rng: StdRng,
    /// Current revision.
    rev: i64,
    /// Last compaction, -1 before the first.
    compacted: i64,
}

const SORT_TARGETS: &[SortTarget] = &[
    SortTarget::Key,
    SortTarget::Version,
    SortTarget::Create,
    SortTarget::Mod,
    SortTarget::Value,
];
const SORT_ORDERS: &[SortOrder] = &[SortOrder::None, SortOrder::Ascend, SortOrder::Descend];
const COMPARE_OPS: &[CompareOp] = &[
    CompareOp::Equal,
    CompareOp::Greater,
    CompareOp::Less,
    CompareOp::NotEqual,
];

impl Gen {
    fn pick(&mut self, from: &[&[u8]]) -> B {
        B::of(from.choose(&mut self.rng).expect("non-empty"))
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// A key that may exist; rarely the empty key.
    fn any_key(&mut self) -> B {
        match self.rng.gen_range(0..100) {
            0 => B(Vec::new()),
            1..=74 => self.pick(KEYS),
            _ => self.pick(READ_KEYS),
        }
    }

    fn key_sel(&mut self) -> KeySel {
        match self.rng.gen_range(0..100) {
            0..=39 => KeySel::Single(self.any_key()),
            40..=59 => {
                let key = if self.chance(0.7) {
                    self.pick(KEYS)
                } else {
                    self.pick(READ_KEYS)
                };
                KeySel::Range(key, self.pick(ENDS))
            }
            60..=79 => KeySel::Prefix(self.pick(PREFIXES)),
            _ => KeySel::FromKey(self.pick(FROM_KEYS)),
        }
    }

    /// A revision in the recent past, around the current one.
    fn recent(&mut self) -> i64 {
        let lo = (self.rev - 15).max(1);
        self.rng.gen_range(lo..=self.rev + 1)
    }

    /// A revision to read at: current, past, compacted, future, negative.
    fn read_revision(&mut self) -> i64 {
        let floor = self.compacted.max(1);
        match self.rng.gen_range(0..100) {
            0..=54 => 0,
            55..=74 => self.rng.gen_range(floor..=self.rev),
            75..=82 => self.compacted.max(0),
            83..=89 if self.compacted > 1 => self.rng.gen_range(1..self.compacted),
            83..=89 => self.rng.gen_range(floor..=self.rev),
            90..=96 => self.rev + self.rng.gen_range(1..=3),
            _ => -self.rng.gen_range(1..=3),
        }
    }

    fn filter_revision(&mut self) -> i64 {
        if self.chance(0.1) {
            self.recent()
        } else {
            0
        }
    }

    fn get(&mut self) -> Get {
        let sel = self.key_sel();
        let limit = match self.rng.gen_range(0..100) {
            0..=69 => 0,
            70..=94 => self.rng.gen_range(1..=6),
            _ => -1,
        };
        let revision = self.read_revision();
        let sort = if self.chance(0.5) {
            Some((
                *SORT_TARGETS.choose(&mut self.rng).unwrap(),
                *SORT_ORDERS.choose(&mut self.rng).unwrap(),
            ))
        } else {
            None
        };
        Get {
            sel,
            limit,
            revision,
            sort,
            serializable: self.chance(0.3),
            keys_only: self.chance(0.15),
            count_only: self.chance(0.1),
            min_mod: self.filter_revision(),
            max_mod: self.filter_revision(),
            min_create: self.filter_revision(),
            max_create: self.filter_revision(),
        }
    }

    fn put_key(&mut self, avoid: &BTreeSet<B>) -> B {
        if self.chance(0.01) {
            return B(Vec::new());
        }
        for _ in 0..20 {
            let k = self.pick(KEYS);
            if !avoid.contains(&k) {
                return k;
            }
        }
        self.pick(KEYS)
    }

    fn put(&mut self, avoid: &BTreeSet<B>) -> Put {
        let key = self.put_key(avoid);
        let ignore_value = self.chance(0.1);
        let ignore_lease = self.chance(0.1);
        let value = if ignore_value && self.chance(0.85) {
            B(Vec::new())
        } else {
            self.pick(VALUES)
        };
        let lease = match self.rng.gen_range(0..100) {
            0..=9 if ignore_lease => self.lease(),
            _ if ignore_lease => 0,
            0..=24 => self.lease(),
            _ => 0,
        };
        Put {
            key,
            value,
            lease,
            prev_kv: self.chance(0.4),
            ignore_value,
            ignore_lease,
        }
    }

    /// A lease id: mostly one the test grants, sometimes one never granted.
    fn lease(&mut self) -> i64 {
        if self.chance(0.85) {
            *LEASES.choose(&mut self.rng).unwrap()
        } else {
            self.rng.gen_range(1..1_000_000_000)
        }
    }

    fn delete(&mut self) -> Delete {
        Delete {
            sel: self.key_sel(),
            prev_kv: self.chance(0.5),
        }
    }

    fn cmp(&mut self) -> Cmp {
        let key = self.any_key();
        let range = match self.rng.gen_range(0..100) {
            0..=64 => CmpRange::None,
            65..=79 => CmpRange::Range(self.pick(ENDS)),
            80..=89 => CmpRange::Prefix,
            _ => CmpRange::Range(B::of(b"\0")),
        };
        let target = match self.rng.gen_range(0..5) {
            0 => CmpTarget::Version(self.rng.gen_range(0..=4)),
            1 => CmpTarget::Create(if self.chance(0.2) { 0 } else { self.recent() }),
            2 => CmpTarget::Mod(if self.chance(0.2) { 0 } else { self.recent() }),
            3 => CmpTarget::Value(self.pick(VALUES)),
            _ => CmpTarget::Lease(if self.chance(0.4) { 0 } else { self.lease() }),
        };
        Cmp {
            key,
            range,
            op: *COMPARE_OPS.choose(&mut self.rng).unwrap(),
            target,
        }
    }

    fn branch(&mut self, depth: u32) -> Vec<Sub> {
        let n = self.rng.gen_range(0..=4);
        let mut puts = BTreeSet::new();
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            let op = match self.rng.gen_range(0..100) {
                0..=34 => Sub::Get(self.get()),
                35..=69 => {
                    // Mostly distinct keys, so that most txns are valid.
                    let avoid = if self.chance(0.9) {
                        puts.clone()
                    } else {
                        BTreeSet::new()
                    };
                    let p = self.put(&avoid);
                    puts.insert(p.key.clone());
                    Sub::Put(p)
                }
                70..=87 => {
                    let mut d = self.delete();
                    if self.chance(0.7) {
                        let avoid = puts.clone();
                        d.sel = KeySel::Single(self.put_key(&avoid));
                    }
                    Sub::Delete(d)
                }
                _ if depth < 2 => Sub::Txn(self.txn(depth + 1)),
                _ => Sub::Get(self.get()),
            };
            ops.push(op);
        }
        ops
    }

    fn txn(&mut self, depth: u32) -> TxnReq {
        let n = self.rng.gen_range(0..=3);
        TxnReq {
            when: (0..n).map(|_| self.cmp()).collect(),
            then: self.branch(depth),
            otherwise: self.branch(depth),
        }
    }

    fn op(&mut self) -> Op {
        match self.rng.gen_range(0..1000) {
            0..=349 => Op::Get(self.get()),
            350..=649 => Op::Put(self.put(&BTreeSet::new())),
            650..=749 => Op::Delete(self.delete()),
            750..=959 => {
                let mut t = self.txn(0);
                avoid_etcd_panic(&mut t);
                Op::Txn(t)
            }
            960..=971 => Op::LeaseGrant {
                id: self.lease(),
                ttl: *LEASE_TTLS.choose(&mut self.rng).unwrap(),
            },
            972..=979 => Op::LeaseRevoke { id: self.lease() },
            _ => Op::Compact {
                revision: self.compact_revision(),
                physical: self.chance(0.3),
            },
        }
    }

    fn compact_revision(&mut self) -> i64 {
        match self.rng.gen_range(0..100) {
            // Valid: above the last compaction, at most the current revision.
            0..=59 if self.rev > self.compacted => {
                let lo = (self.compacted + 1).max(self.rev - 30).max(1);
                self.rng.gen_range(lo..=self.rev)
            }
            0..=59 => self.rev,
            // Already compacted.
            60..=79 => self.compacted.max(1) - self.rng.gen_range(0..=1),
            // Future.
            80..=94 => self.rev + self.rng.gen_range(1..=5),
            // Zero or negative.
            _ => -self.rng.gen_range(0..=1),
        }
    }

    fn observe(&mut self, op: &Op, a: &Answer) {
        if let Some(rev) = a.revision() {
            self.rev = rev;
            if let Op::Compact { revision, .. } = op {
                self.compacted = *revision;
            }
        }
    }
}

/// etcd 3.4 checks "duplicate key" with intervals in which a from-key delete
/// (range end `"\0"`) covers no key; so such a delete followed by an
/// `ignore_value`/`ignore_lease` put of a key it deleted passes every check
/// and then fails inside the applier, which panics the etcd server. That is
/// a crash of the reference, not a semantic to compare, so such txns are not
/// generated: a txn with a from-key delete anywhere has no ignore flags.
fn avoid_etcd_panic(t: &mut TxnReq) {
    fn has_from_key_delete(ops: &[Sub]) -> bool {
        ops.iter().any(|op| match op {
            Sub::Delete(d) => d.sel.is_from_key(),
            Sub::Txn(t) => has_from_key_delete(&t.then) || has_from_key_delete(&t.otherwise),
            _ => false,
        })
    }
    fn strip(ops: &mut [Sub]) {
        for op in ops {
            match op {
                Sub::Put(p) => {
                    p.ignore_value = false;
                    p.ignore_lease = false;
                }
                Sub::Txn(t) => {
                    strip(&mut t.then);
                    strip(&mut t.otherwise);
                }
                _ => {}
            }
        }
    }
    if has_from_key_delete(&t.then) || has_from_key_delete(&t.otherwise) {
        strip(&mut t.then);
        strip(&mut t.otherwise);
    }
}

fn plain_get(key: &[u8]) -> Get {
    Get {
        sel: KeySel::Single(B::of(key)),
        limit: 0,
        revision: 0,
        sort: None,
        serializable: false,
        keys_only: false,
        count_only: false,
        min_mod: 0,
        max_mod: 0,
        min_create: 0,
        max_create: 0,
    }
}

fn plain_put(key: &[u8], value: Vec<u8>) -> Put {
    Put {
        key: B::of(key),
        value: B(value),
        lease: 0,
        prev_kv: false,
        ignore_value: false,
        ignore_lease: false,
    }
}

/// Requests at etcd's limits and its validation rules, run once per seed
/// each, spread over the sequence.
fn specials() -> Vec<Op> {
    let big = || vec![b'x'; BIG];
    let gets = |n: usize| {
        (0..n)
            .map(|i| Sub::Get(plain_get(KEYS[i % KEYS.len()])))
            .collect::<Vec<_>>()
    };
    let cmp_version = |key: &[u8]| Cmp {
        key: B::of(key),
        range: CmpRange::None,
        op: CompareOp::Greater,
        target: CmpTarget::Version(0),
    };
    vec![
        // Too large for etcd's request limit.
        Op::Put(plain_put(b"k1", big())),
        // Validation comes before the size limit.
        Op::Put(plain_put(b"", big())),
        Op::Put(Put {
            ignore_value: true,
            ..plain_put(b"k1", big())
        }),
        // The size limit comes before the lease lookup.
        Op::Put(Put {
            lease: 7,
            ..plain_put(b"k2", big())
        }),
        // Too large for gRPC itself.
        Op::Put(plain_put(b"k1", vec![b'y'; HUGE])),
        // A large write txn.
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![Sub::Put(plain_put(b"k3", big()))],
            otherwise: vec![],
        }),
        // A large read-only txn: served without the log in etcd.
        Op::Txn(TxnReq {
            when: vec![Cmp {
                key: B::of(b"k1"),
                range: CmpRange::None,
                op: CompareOp::NotEqual,
                target: CmpTarget::Value(B(big())),
            }],
            then: gets(2),
            otherwise: gets(1),
        }),
        // A large delete and a large read.
        Op::Delete(Delete {
            sel: KeySel::Single(B(big())),
            prev_kv: false,
        }),
        Op::Get(plain_get(&big())),
        Op::Get(plain_get(&vec![b'z'; HUGE])),
        // Empty keys.
        Op::Get(plain_get(b"")),
        Op::Put(plain_put(b"", b"v".to_vec())),
        Op::Delete(Delete {
            sel: KeySel::Single(B(Vec::new())),
            prev_kv: true,
        }),
        Op::Get(Get {
            sel: KeySel::Range(B(Vec::new()), B::of(b"k5")),
            ..plain_get(b"")
        }),
        Op::Txn(TxnReq {
            when: vec![cmp_version(b"")],
            then: gets(1),
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![Sub::Put(plain_put(b"k1", b"a".to_vec()))],
            otherwise: vec![Sub::Delete(Delete {
                sel: KeySel::Single(B(Vec::new())),
                prev_kv: false,
            })],
        }),
        // Flags that contradict the request.
        Op::Put(Put {
            ignore_lease: true,
            lease: 5,
            ..plain_put(b"k1", Vec::new())
        }),
        Op::Put(Put {
            ignore_value: true,
            ..plain_put(b"k1", b"v".to_vec())
        }),
        Op::Put(Put {
            lease: 42,
            prev_kv: true,
            ..plain_put(b"k1", b"v".to_vec())
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![Sub::Put(Put {
                lease: 42,
                ..plain_put(b"k2", b"v".to_vec())
            })],
            otherwise: vec![],
        }),
        // Leases: a TTL above etcd's maximum, id 0 on revoke, and a lease
        // granted, used, revoked (deleting its keys in one revision).
        Op::LeaseGrant {
            id: 0x44,
            ttl: 9_000_000_001,
        },
        Op::LeaseRevoke { id: 0 },
        Op::LeaseGrant { id: 0x55, ttl: 3600 },
        Op::LeaseGrant { id: 0x55, ttl: 600 },
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Put(Put {
                    lease: 0x55,
                    prev_kv: true,
                    ..plain_put(b"k8", b"leased".to_vec())
                }),
                Sub::Put(Put {
                    lease: 0x55,
                    ..plain_put(b"p/a", b"leased".to_vec())
                }),
            ],
            otherwise: vec![],
        }),
        Op::Put(Put {
            ignore_lease: true,
            prev_kv: true,
            ..plain_put(b"k8", b"still leased".to_vec())
        }),
        Op::LeaseRevoke { id: 0x55 },
        Op::LeaseRevoke { id: 0x55 },
        // Duplicate keys.
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Put(plain_put(b"k1", b"a".to_vec())),
                Sub::Put(plain_put(b"k1", b"b".to_vec())),
            ],
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Delete(Delete {
                    sel: KeySel::Prefix(B::of(b"k")),
                    prev_kv: false,
                }),
                Sub::Put(plain_put(b"k4", b"b".to_vec())),
            ],
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Put(plain_put(b"k1", b"a".to_vec())),
                Sub::Txn(TxnReq {
                    when: vec![],
                    then: vec![Sub::Put(plain_put(b"k1", b"c".to_vec()))],
                    otherwise: vec![],
                }),
            ],
            otherwise: vec![],
        }),
        // A from-key delete (range end "\0") is no interval in etcd's
        // duplicate-key check, so a put of a key it deletes is allowed,
        // before or after it.
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Delete(Delete {
                    sel: KeySel::FromKey(B::of(b"k")),
                    prev_kv: true,
                }),
                Sub::Put(Put {
                    prev_kv: true,
                    ..plain_put(b"k5", b"v1".to_vec())
                }),
                Sub::Get(Get {
                    sel: KeySel::Prefix(B::of(b"k")),
                    ..plain_get(b"k")
                }),
            ],
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Put(plain_put(b"k6", b"v2".to_vec())),
                Sub::Delete(Delete {
                    sel: KeySel::FromKey(B::of(b"k6")),
                    prev_kv: true,
                }),
                Sub::Get(Get {
                    sel: KeySel::FromKey(B::of(b"\0")),
                    ..plain_get(b"k")
                }),
            ],
            otherwise: vec![],
        }),
        // Puts and deletes of one key in sibling nested txns: only a
        // delete before the put is a duplicate.
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Txn(TxnReq {
                    when: vec![],
                    then: vec![Sub::Put(plain_put(b"k7", b"a".to_vec()))],
                    otherwise: vec![],
                }),
                Sub::Txn(TxnReq {
                    when: vec![],
                    then: vec![Sub::Delete(Delete {
                        sel: KeySel::Single(B::of(b"k7")),
                        prev_kv: true,
                    })],
                    otherwise: vec![],
                }),
            ],
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: vec![
                Sub::Txn(TxnReq {
                    when: vec![],
                    then: vec![Sub::Delete(Delete {
                        sel: KeySel::Single(B::of(b"k7")),
                        prev_kv: true,
                    })],
                    otherwise: vec![],
                }),
                Sub::Txn(TxnReq {
                    when: vec![],
                    then: vec![Sub::Put(plain_put(b"k7", b"a".to_vec()))],
                    otherwise: vec![],
                }),
            ],
            otherwise: vec![],
        }),
        // Too many operations, in each place etcd counts them.
        Op::Txn(TxnReq {
            when: vec![],
            then: gets(129),
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: (0..129).map(|_| cmp_version(b"k1")).collect(),
            then: vec![],
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: gets(128),
            otherwise: gets(128),
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: {
                let mut ops = gets(100);
                ops.push(Sub::Txn(TxnReq {
                    when: vec![],
                    then: gets(29),
                    otherwise: vec![],
                }));
                ops
            },
            otherwise: vec![],
        }),
        Op::Txn(TxnReq {
            when: vec![],
            then: {
                let mut ops = gets(99);
                ops.push(Sub::Txn(TxnReq {
                    when: vec![],
                    then: gets(28),
                    otherwise: vec![],
                }));
                ops
            },
            otherwise: vec![],
        }),
    ]
}

// ---------------------------------------------------------------------------
// The real etcd.

/// Whether `name` is an executable file in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// A one-member etcd on loopback, killed when dropped.
struct Etcd {
    endpoint: String,
    log: PathBuf,
    process: Option<Child>,
    // Dropped after the process is killed (fields drop after `drop`).
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let client = common::free_port();
        let peer = common::free_port();
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = dir.path().join("etcd.log");
        let out = std::fs::File::create(&log).unwrap();
        let process = Command::new("etcd")
            .arg("--name")
            .arg("d")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("d={peer_url}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start etcd");
        Etcd {
            endpoint: client_url,
            log,
            process: Some(process),
            _dir: dir,
        }
    }

    /// Waits until etcd answers a linearizable read, and connects.
    async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let mut c = common::connect(std::slice::from_ref(&self.endpoint)).await;
                c.get("__probe", None).await.map(|_| c)
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(c)) => return c,
                _ if Instant::now() > deadline => panic!(
                    "etcd does not answer after 30s; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The test.

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Brings etcd to the state the harness left Firebreak in: `__ready`
/// written once per member start (normally three puts), nothing else.
async fn align(etcd: &mut Client, firebreak: &mut Client) {
    let ready = firebreak.get("__ready", None).await.expect("read __ready");
    let kv = ready.kvs().first().expect("the harness wrote __ready");
    for i in 1..kv.version() {
        etcd.put("__ready", format!("m{i}"), None).await.expect("put __ready");
    }
    etcd.put("__ready", kv.value(), None).await.expect("put __ready");

    let everything = Op::Get(Get {
        sel: KeySel::FromKey(B::of(b"\0")),
        ..plain_get(b"")
    });
    let (a, b) = tokio::join!(execute(etcd, &everything), execute(firebreak, &everything));
    assert_eq!(
        a,
        b,
        "the stores differ before the first operation:\netcd:      {}\nfirebreak: {}",
        show(&a),
        show(&b)
    );
}

async fn run_seed(
    seed: u64,
    ops: usize,
    etcd: &mut Client,
    firebreak: &mut Client,
    cluster: &Cluster,
    leader: usize,
) -> BTreeMap<String, usize> {
    let start = execute(etcd, &Op::Get(plain_get(b"__ready"))).await;
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        rev: start.revision().expect("etcd answers"),
        compacted: -1,
    };
    let specials = specials();
    let every = (ops / (specials.len() + 1)).max(1);
    let mut history: Vec<String> = Vec::new();
    let mut stats = BTreeMap::new();
    let mut busy = (Duration::ZERO, Duration::ZERO);
    for i in 0..ops {
        let op = match (i % every == every / 2).then(|| specials.get(i / every)).flatten() {
            Some(special) => special.clone(),
            None => gen.op(),
        };
        let (a, b) = tokio::join!(timed(execute(etcd, &op)), timed(execute(firebreak, &op)));
        let ((a, etcd_time), (b, firebreak_time)) = (a, b);
        busy.0 += etcd_time;
        busy.1 += firebreak_time;
        if a != b || matches!(a, Answer::Broken(_)) {
            // Serializable reads go to the member that was leader at the
            // start; if leadership moved, a stale one is no bug.
            let now = cluster.leader().await;
            panic!(
                "seed {seed}, op #{i}: etcd and Firebreak differ\n\
                 op: {op:#?}\n\
                 etcd:      {}\n\
                 firebreak: {}\n\
                 (raw etcd: {a:?})\n(raw firebreak: {b:?})\n\
                 Firebreak's leader: m{} at the start, m{} now\n\
                 previous ops, oldest first:\n{}",
                show(&a),
                show(&b),
                leader + 1,
                now + 1,
                history.join("\n")
            );
        }
        gen.observe(&op, &a);
        *stats.entry(a.kind()).or_insert(0) += 1;
        history.push(format!(
            "  #{i}: {op:?}\n      -> {}",
            show(&a).replace('\n', "\n      ")
        ));
        if history.len() > 6 {
            history.remove(0);
        }
    }
    println!(
        "seed {seed}: etcd answered in {:.1?} in all, Firebreak in {:.1?}",
        busy.0, busy.1
    );
    stats
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_as_etcd() {
    if !on_path("etcd") {
        if std::env::var_os("CI").is_some() {
            panic!("etcd is not installed, and CI must run the differential test (apt-get install etcd-server)");
        }
        println!("skipping: etcd not installed (apt-get install etcd-server)");
        return;
    }
    let seeds: Vec<u64> = match std::env::var("DIFF_SEEDS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().parse().expect("DIFF_SEEDS: numbers"))
            .collect(),
        Err(_) => DEFAULT_SEEDS.to_vec(),
    };
    let ops = env_or("DIFF_OPS", DEFAULT_OPS);

    for seed in seeds {
        let started = Instant::now();
        // A fresh pair per seed, so that each seed is reproducible alone.
        let etcd = Etcd::start();
        let cluster = Cluster::start(Options::default()).await;
        let mut etcd_client = etcd.client().await;
        let leader = cluster.leader().await;
        // The leader's client: serializable reads on a follower may lag
        // behind the last write, legitimately, which would make the
        // comparison flaky. On the leader they see every applied write.
        let mut firebreak = cluster.client_of(leader).await;
        align(&mut etcd_client, &mut firebreak).await;
        let stats = run_seed(seed, ops, &mut etcd_client, &mut firebreak, &cluster, leader).await;
        println!("seed {seed}: {ops} ops agree in {:.1?}", started.elapsed());
        for (kind, n) in stats {
            println!("  {n:6}  {kind}");
        }
        drop(cluster);
        drop(etcd);
    }
}
