//! The key-value requests of the differential tests as plain data (so that
//! they print in a failure message), how they go out with etcd-client, how
//! an answer comes back, and readable answers for failure messages.
//!
//! Each test has an answer type of its own (its `Answer`, with the
//! responses of the calls it makes beyond these), made a [`KvAnswer`] so
//! that the requests here can answer in it.

use std::fmt;

use etcd_client::proto::{
    PbCompactionResponse, PbDeleteResponse, PbKeyValue, PbPutResponse, PbRangeResponse, PbResponseHeader,
    PbTxnOpResponse, PbTxnResponse,
};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, WatchOptions,
};

// ---------------------------------------------------------------------------
// The requests.

/// Bytes that print as an escaped string (or as a length when large).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct B(pub Vec<u8>);

impl B {
    pub fn of(bytes: &[u8]) -> B {
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
pub enum KeySel {
    Single(B),
    /// `with_range(end)`.
    Range(B, B),
    /// `with_prefix()`.
    Prefix(B),
    /// `with_from_key()`.
    FromKey(B),
}

impl KeySel {
    pub fn key(&self) -> Vec<u8> {
        match self {
            KeySel::Single(k) | KeySel::Range(k, _) | KeySel::Prefix(k) | KeySel::FromKey(k) => k.0.clone(),
        }
    }

    /// Whether the request goes out with range end `"\0"` (every key from
    /// the start key on), as the client builds it.
    pub fn is_from_key(&self) -> bool {
        match self {
            KeySel::FromKey(_) => true,
            KeySel::Prefix(k) => k.0.is_empty() || k.0.iter().all(|&b| b == 0xff),
            KeySel::Range(_, end) => end.0 == b"\0",
            KeySel::Single(_) => false,
        }
    }
}

/// The etcd-client options that select keys as a [`KeySel`] does.
pub trait WithKeySel {
    /// These options with `sel`'s range end (its key goes with the call).
    fn with_key_sel(self, sel: &KeySel) -> Self;
}

macro_rules! with_key_sel {
    ($($options:ty),*) => {$(
        impl WithKeySel for $options {
            fn with_key_sel(self, sel: &KeySel) -> Self {
                match sel {
                    KeySel::Single(_) => self,
                    KeySel::Range(_, end) => self.with_range(end.0.clone()),
                    KeySel::Prefix(_) => self.with_prefix(),
                    KeySel::FromKey(_) => self.with_from_key(),
                }
            }
        }
    )*};
}

with_key_sel!(GetOptions, DeleteOptions, WatchOptions);

#[derive(Debug, Clone)]
pub struct Get {
    pub sel: KeySel,
    pub limit: i64,
    pub revision: i64,
    pub sort: Option<(SortTarget, SortOrder)>,
    pub serializable: bool,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod: i64,
    pub max_mod: i64,
    pub min_create: i64,
    pub max_create: i64,
}

#[derive(Debug, Clone)]
pub struct Put {
    pub key: B,
    pub value: B,
    pub lease: i64,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

#[derive(Debug, Clone)]
pub struct Delete {
    pub sel: KeySel,
    pub prev_kv: bool,
}

#[derive(Debug, Clone)]
pub enum CmpTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(B),
    Lease(i64),
}

#[derive(Debug, Clone)]
pub enum CmpRange {
    /// The key alone.
    None,
    /// `with_range(end)`.
    Range(B),
    /// `with_prefix()`.
    Prefix,
}

#[derive(Debug, Clone)]
pub struct Cmp {
    pub key: B,
    pub range: CmpRange,
    pub op: CompareOp,
    pub target: CmpTarget,
}

#[derive(Debug, Clone)]
pub enum Sub {
    Get(Get),
    Put(Put),
    Delete(Delete),
    Txn(TxnReq),
}

#[derive(Debug, Clone, Default)]
pub struct TxnReq {
    pub when: Vec<Cmp>,
    pub then: Vec<Sub>,
    pub otherwise: Vec<Sub>,
}

impl Get {
    /// A read of `sel` with every option at its default.
    pub fn of(sel: KeySel) -> Get {
        Get {
            sel,
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
}

impl Put {
    /// A put of `value` at `key` with every option at its default.
    pub fn of(key: B, value: B) -> Put {
        Put {
            key,
            value,
            lease: 0,
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
        }
    }
}

/// A read of `key` alone, with every option at its default.
pub fn plain_get(key: &[u8]) -> Get {
    Get::of(KeySel::Single(B::of(key)))
}

/// A put of `value` at `key`, with every option at its default.
pub fn plain_put(key: &[u8], value: Vec<u8>) -> Put {
    Put::of(B::of(key), B(value))
}

// ---------------------------------------------------------------------------
// Building the requests with etcd-client.

pub fn get_options(g: &Get) -> (Vec<u8>, GetOptions) {
    let mut o = GetOptions::new()
        .with_key_sel(&g.sel)
        .with_limit(g.limit)
        .with_revision(g.revision);
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

pub fn put_options(p: &Put) -> PutOptions {
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

pub fn delete_options(d: &Delete) -> (Vec<u8>, DeleteOptions) {
    let mut o = DeleteOptions::new().with_key_sel(&d.sel);
    if d.prev_kv {
        o = o.with_prev_key();
    }
    (d.sel.key(), o)
}

pub fn compare(c: &Cmp) -> Compare {
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

pub fn txn_op(op: &Sub) -> TxnOp {
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

pub fn txn(t: &TxnReq) -> Txn {
    Txn::new()
        .when(t.when.iter().map(compare).collect::<Vec<_>>())
        .and_then(t.then.iter().map(txn_op).collect::<Vec<_>>())
        .or_else(t.otherwise.iter().map(txn_op).collect::<Vec<_>>())
}

// ---------------------------------------------------------------------------
// Answers.

/// One server's answer to one call, as a test compares it: the raw
/// protobuf response (top-level header normalised), or the error.
pub trait KvAnswer: Sized {
    fn range(r: PbRangeResponse) -> Self;
    fn put(r: PbPutResponse) -> Self;
    fn delete(r: PbDeleteResponse) -> Self;
    fn txn(r: PbTxnResponse) -> Self;
    fn compact(r: PbCompactionResponse) -> Self;
    /// A gRPC status: code and message.
    fn status(code: String, message: String) -> Self;
    /// Anything else (transport trouble): never expected.
    fn broken(error: String) -> Self;

    /// The answer for a failure message, if it is one of the above.
    fn show_kv_answer(&self) -> Option<String>;

    /// The top-level header; `None` for an error.
    fn header(&self) -> Option<&Option<PbResponseHeader>>;
    fn header_mut(&mut self) -> Option<&mut Option<PbResponseHeader>>;

    /// Zeroes what names the server rather than the data.
    fn normalise(&mut self) {
        if let Some(h) = self.header_mut() {
            normalise_header(h);
        }
    }

    /// The KV revision in the header.
    fn revision(&self) -> Option<i64> {
        self.header()?.as_ref().map(|h| h.revision)
    }
}

/// Makes a test's answer type a [`KvAnswer`]: an enum with the variants
/// `Range`, `Put`, `Delete`, `Txn` and `Compact` (of those responses),
/// `Status(String, String)` and `Broken(String)`, and the variants of more
/// responses, each with a top-level `header`, named in braces; then those
/// without one, if any, named after `without header`.
#[allow(unused_macros)]
macro_rules! impl_kv_answer {
    ($answer:ident { $($more:ident),* $(,)? } $(without header { $($headerless:ident),* $(,)? })?) => {
        impl $crate::common::kv_model::KvAnswer for $answer {
            fn range(r: etcd_client::proto::PbRangeResponse) -> Self {
                $answer::Range(r)
            }
            fn put(r: etcd_client::proto::PbPutResponse) -> Self {
                $answer::Put(r)
            }
            fn delete(r: etcd_client::proto::PbDeleteResponse) -> Self {
                $answer::Delete(r)
            }
            fn txn(r: etcd_client::proto::PbTxnResponse) -> Self {
                $answer::Txn(r)
            }
            fn compact(r: etcd_client::proto::PbCompactionResponse) -> Self {
                $answer::Compact(r)
            }
            fn status(code: String, message: String) -> Self {
                $answer::Status(code, message)
            }
            fn broken(error: String) -> Self {
                $answer::Broken(error)
            }
            fn show_kv_answer(&self) -> Option<String> {
                use $crate::common::kv_model::{show_delete, show_header, show_put, show_range, show_txn};
                Some(match self {
                    $answer::Range(r) => show_range(r, ""),
                    $answer::Put(r) => show_put(r),
                    $answer::Delete(r) => show_delete(r, ""),
                    $answer::Txn(r) => show_txn(r, ""),
                    $answer::Compact(r) => format!("compact {}", show_header(&r.header)),
                    $answer::Status(code, message) => format!("status {code}: {message:?}"),
                    $answer::Broken(e) => format!("broken: {e}"),
                    _ => return None,
                })
            }
            fn header(&self) -> Option<&Option<etcd_client::proto::PbResponseHeader>> {
                Some(match self {
                    $answer::Range(r) => &r.header,
                    $answer::Put(r) => &r.header,
                    $answer::Delete(r) => &r.header,
                    $answer::Txn(r) => &r.header,
                    $answer::Compact(r) => &r.header,
                    $($answer::$more(r) => &r.header,)*
                    $answer::Status(..) | $answer::Broken(_) $($(| $answer::$headerless)*)? => return None,
                })
            }
            fn header_mut(&mut self) -> Option<&mut Option<etcd_client::proto::PbResponseHeader>> {
                Some(match self {
                    $answer::Range(r) => &mut r.header,
                    $answer::Put(r) => &mut r.header,
                    $answer::Delete(r) => &mut r.header,
                    $answer::Txn(r) => &mut r.header,
                    $answer::Compact(r) => &mut r.header,
                    $($answer::$more(r) => &mut r.header,)*
                    $answer::Status(..) | $answer::Broken(_) $($(| $answer::$headerless)*)? => return None,
                })
            }
        }
    };
}

#[allow(unused_imports)]
pub(crate) use impl_kv_answer;

/// Zeroes what names the server rather than the data, in `h` only (not in
/// the headers nested in it).
pub fn normalise_header(h: &mut Option<PbResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

/// A call's result as an answer (`ok` for a response), normalised.
pub fn answer<T, A: KvAnswer>(result: Result<T, etcd_client::Error>, ok: impl FnOnce(T) -> A) -> A {
    let mut a = match result {
        Ok(t) => ok(t),
        Err(etcd_client::Error::GRpcStatus(s)) => A::status(format!("{:?}", s.code()), s.message().to_string()),
        Err(e) => A::broken(e.to_string()),
    };
    a.normalise();
    a
}

impl Get {
    pub async fn send<A: KvAnswer>(&self, client: &mut Client) -> A {
        let (key, o) = get_options(self);
        answer(client.get(key, Some(o)).await, |r| A::range(r.0))
    }
}

impl Put {
    pub async fn send<A: KvAnswer>(&self, client: &mut Client) -> A {
        let result = client
            .put(self.key.0.clone(), self.value.0.clone(), Some(put_options(self)))
            .await;
        answer(result, |r| A::put(r.0))
    }
}

impl Delete {
    pub async fn send<A: KvAnswer>(&self, client: &mut Client) -> A {
        let (key, o) = delete_options(self);
        answer(client.delete(key, Some(o)).await, |r| A::delete(r.0))
    }
}

impl TxnReq {
    pub async fn send<A: KvAnswer>(&self, client: &mut Client) -> A {
        answer(client.txn(txn(self)).await, |r| A::txn(r.0))
    }
}

/// A compaction to `revision`, physical or not.
pub async fn compact<A: KvAnswer>(client: &mut Client, revision: i64, physical: bool) -> A {
    let mut o = CompactionOptions::new();
    if physical {
        o = o.with_physical();
    }
    answer(client.compact(revision, Some(o)).await, |r| A::compact(r.0))
}

/// Brings etcd to the state the harness left Firebreak in: `__ready`
/// written once per member start (normally three puts), nothing else;
/// then checks that both hold the same keys.
pub async fn align<A>(etcd: &mut Client, firebreak: &mut Client, show: fn(&A) -> String)
where
    A: KvAnswer + PartialEq + fmt::Debug,
{
    let ready = firebreak.get("__ready", None).await.expect("read __ready");
    let kv = ready.kvs().first().expect("the harness wrote __ready");
    for i in 1..kv.version() {
        etcd.put("__ready", format!("m{i}"), None).await.expect("put __ready");
    }
    etcd.put("__ready", kv.value(), None).await.expect("put __ready");

    let everything = Get::of(KeySel::FromKey(B::of(b"\0")));
    let (a, b): (A, A) = tokio::join!(everything.send(etcd), everything.send(firebreak));
    assert_eq!(
        a,
        b,
        "the stores differ before the first operation:\netcd:      {}\nfirebreak: {}",
        show(&a),
        show(&b)
    );
}

// ---------------------------------------------------------------------------
// Readable answers for failure messages.

pub fn show_header(h: &Option<PbResponseHeader>) -> String {
    match h {
        None => "header: None".into(),
        Some(h) => format!(
            "header: {{cluster {} member {} rev {} term {}}}",
            h.cluster_id, h.member_id, h.revision, h.raft_term
        ),
    }
}

pub fn show_kv(kv: &PbKeyValue) -> String {
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

pub fn show_kvs(kvs: &[PbKeyValue], indent: &str) -> String {
    kvs.iter().map(|kv| format!("\n{indent}  {}", show_kv(kv))).collect()
}

pub fn show_txn(r: &PbTxnResponse, indent: &str) -> String {
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

pub fn show_range(r: &PbRangeResponse, indent: &str) -> String {
    format!(
        "range {} count {} more {}{}",
        show_header(&r.header),
        r.count,
        r.more,
        show_kvs(&r.kvs, indent)
    )
}

pub fn show_put(r: &PbPutResponse) -> String {
    let prev = r.prev_kv.as_ref().map_or("None".to_string(), show_kv);
    format!("put {} prev_kv {prev}", show_header(&r.header))
}

pub fn show_delete(r: &PbDeleteResponse, indent: &str) -> String {
    format!(
        "delete {} deleted {}{}",
        show_header(&r.header),
        r.deleted,
        show_kvs(&r.prev_kvs, indent)
    )
}
