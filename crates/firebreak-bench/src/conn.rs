//! One client connection to one endpoint, and the few etcd calls a
//! benchmark makes: put, get, compare-and-set, status.
//!
//! Two implementations, chosen by `--client`:
//! - [`RawKv`] (the default): tonic's `Grpc` over one `Channel` (one HTTP/2
//!   connection), sending etcd's protobuf messages directly. Per request it
//!   costs one message encode, one decode and tonic's own channel hop.
//! - `etcd-client`: the crate applications use. Each `Client` has a
//!   balanced channel (a tower buffer and balancer even for one endpoint),
//!   an auth interceptor and a caller that may retry on expired tokens. It
//!   is here to show what that costs: the load generator shares the CPU
//!   with the servers it measures, so every microsecond it spends per
//!   request is taken from them.

use std::time::Duration;

use etcd_client::proto::{
    PbCompare, PbCompareTarget, PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbStatusRequest,
    PbStatusResponse, PbTargetUnion, PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use crate::args::ClientKind;
use crate::error::BenchError;

/// `Compare.CompareResult.EQUAL` in etcd's protobuf (not re-exported by
/// `etcd-client`).
const COMPARE_EQUAL: i32 = 0;

/// A failed request, by kind: the gRPC code name (`Unavailable`,
/// `DeadlineExceeded`, ...) or a client-side kind (`ClientTimeout`,
/// `Transport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub kind: String,
    pub message: String,
}

impl OpError {
    pub fn client_timeout(after: Duration) -> OpError {
        OpError {
            kind: "ClientTimeout".into(),
            message: format!("no answer within {after:?}"),
        }
    }
}

impl From<tonic::Status> for OpError {
    fn from(status: tonic::Status) -> OpError {
        OpError {
            kind: format!("{:?}", status.code()),
            message: status.message().to_string(),
        }
    }
}

impl From<etcd_client::Error> for OpError {
    fn from(e: etcd_client::Error) -> OpError {
        match e {
            etcd_client::Error::GRpcStatus(status) => status.into(),
            etcd_client::Error::TransportError(t) => OpError {
                kind: "Transport".into(),
                message: t.to_string(),
            },
            other => OpError {
                kind: "Client".into(),
                message: other.to_string(),
            },
        }
    }
}

/// A thin etcd KV client over one tonic channel.
#[derive(Clone)]
pub struct RawKv {
    grpc: tonic::client::Grpc<Channel>,
}

impl RawKv {
    pub async fn connect(url: &str, timeout: Duration) -> Result<RawKv, BenchError> {
        let connect_error = |message: String| BenchError::Connect {
            endpoint: url.to_string(),
            message,
        };
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|e| connect_error(e.to_string()))?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| connect_error(format!("{e} ({e:?})")))?;
        Ok(RawKv {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    async fn unary<Q, A>(&mut self, path: &'static str, req: Q) -> Result<A, OpError>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc.ready().await.map_err(|e| OpError {
            kind: "Transport".into(),
            message: e.to_string(),
        })?;
        let codec = tonic_prost::ProstCodec::<Q, A>::default();
        let resp = self
            .grpc
            .unary(tonic::Request::new(req), PathAndQuery::from_static(path), codec)
            .await?;
        Ok(resp.into_inner())
    }
}

/// One connection of either kind. Cloning shares the connection.
#[derive(Clone)]
pub enum Conn {
    Tonic(RawKv),
    EtcdClient(Box<etcd_client::Client>),
}

impl Conn {
    /// Connects to `url` (`http://host:port`).
    pub async fn connect(kind: ClientKind, url: &str, timeout: Duration) -> Result<Conn, BenchError> {
        match kind {
            ClientKind::Tonic => Ok(Conn::Tonic(RawKv::connect(url, timeout).await?)),
            ClientKind::EtcdClient => {
                let options = etcd_client::ConnectOptions::new().with_connect_timeout(timeout);
                let client =
                    etcd_client::Client::connect([url], Some(options))
                        .await
                        .map_err(|e| BenchError::Connect {
                            endpoint: url.to_string(),
                            message: e.to_string(),
                        })?;
                Ok(Conn::EtcdClient(Box::new(client)))
            }
        }
    }

    pub async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), OpError> {
        match self {
            Conn::Tonic(raw) => {
                let req = PbPutRequest {
                    key,
                    value,
                    ..Default::default()
                };
                raw.unary::<_, PbPutResponse>("/etcdserverpb.KV/Put", req).await?;
            }
            Conn::EtcdClient(client) => {
                client.put(key, value, None).await?;
            }
        }
        Ok(())
    }

    /// Puts `value` under every key, in one txn.
    pub async fn put_batch(&mut self, keys: Vec<Vec<u8>>, value: &[u8]) -> Result<(), OpError> {
        match self {
            Conn::Tonic(raw) => {
                let success = keys
                    .into_iter()
                    .map(|key| PbTxnRequestOp {
                        request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                            key,
                            value: value.to_vec(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let req = PbTxnRequest {
                    success,
                    ..Default::default()
                };
                raw.unary::<_, PbTxnResponse>("/etcdserverpb.KV/Txn", req).await?;
            }
            Conn::EtcdClient(client) => {
                use etcd_client::{Txn, TxnOp};
                let ops: Vec<TxnOp> = keys.into_iter().map(|k| TxnOp::put(k, value, None)).collect();
                client.txn(Txn::new().and_then(ops)).await?;
            }
        }
        Ok(())
    }

    /// The key's mod revision, or `None` if it does not exist.
    pub async fn get(&mut self, key: Vec<u8>, serializable: bool) -> Result<Option<i64>, OpError> {
        match self {
            Conn::Tonic(raw) => {
                let req = PbRangeRequest {
                    key,
                    serializable,
                    ..Default::default()
                };
                let resp: PbRangeResponse = raw.unary("/etcdserverpb.KV/Range", req).await?;
                Ok(resp.kvs.first().map(|kv| kv.mod_revision))
            }
            Conn::EtcdClient(client) => {
                let options = serializable.then(|| etcd_client::GetOptions::new().with_serializable());
                let resp = client.get(key, options).await?;
                Ok(resp.kvs().first().map(|kv| kv.mod_revision()))
            }
        }
    }

    /// Puts `value` if the key's mod revision is still `expected` (0: the
    /// key does not exist). Returns whether the compare held.
    pub async fn compare_and_set(&mut self, key: Vec<u8>, expected: i64, value: Vec<u8>) -> Result<bool, OpError> {
        match self {
            Conn::Tonic(raw) => {
                let req = PbTxnRequest {
                    compare: vec![PbCompare {
                        result: COMPARE_EQUAL,
                        target: PbCompareTarget::Mod as i32,
                        key: key.clone(),
                        range_end: Vec::new(),
                        target_union: Some(PbTargetUnion::ModRevision(expected)),
                    }],
                    success: vec![PbTxnRequestOp {
                        request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                            key,
                            value,
                            ..Default::default()
                        })),
                    }],
                    failure: Vec::new(),
                };
                let resp: PbTxnResponse = raw.unary("/etcdserverpb.KV/Txn", req).await?;
                Ok(resp.succeeded)
            }
            Conn::EtcdClient(client) => {
                use etcd_client::{Compare, CompareOp, Txn, TxnOp};
                let txn = Txn::new()
                    .when([Compare::mod_revision(key.clone(), CompareOp::Equal, expected)])
                    .and_then([TxnOp::put(key, value, None)]);
                Ok(client.txn(txn).await?.succeeded())
            }
        }
    }

    /// `(this member's id, the leader's id as this member sees it, its
    /// Raft term)`.
    pub async fn status(&mut self) -> Result<(u64, u64, u64), OpError> {
        match self {
            Conn::Tonic(raw) => {
                let resp: PbStatusResponse = raw
                    .unary("/etcdserverpb.Maintenance/Status", PbStatusRequest::default())
                    .await?;
                Ok((resp.header.map_or(0, |h| h.member_id), resp.leader, resp.raft_term))
            }
            Conn::EtcdClient(client) => {
                let resp = client.status().await?;
                Ok((
                    resp.header().map_or(0, |h| h.member_id()),
                    resp.leader(),
                    resp.raft_term(),
                ))
            }
        }
    }
}
