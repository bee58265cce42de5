//! `v3lockpb.Lock` and `v3electionpb.Election`.
//!
//! `etcd-client` generates the messages and servers of these two services
//! but does not export them, so the messages are declared here from the
//! wire format of etcd's `v3lock.proto` and `v3election.proto` (field
//! numbers and types), and the services are routed by hand in the shape
//! tonic's generated servers have. The logic lives in
//! `firebreak_services::concurrency`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use etcd_client::proto::{PbKeyValue, PbResponseHeader};
use firebreak_mvcc::KvError;
use firebreak_raft::{Node, NodeError};
use firebreak_services::concurrency::{self, ConcurrencyError, LeaderKey};
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, ServerStreamingService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::auth::{caller, Credentials};
use crate::convert;
use crate::status::to_status;

#[derive(Clone, PartialEq, prost::Message)]
pub struct LockRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub lease: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LockResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UnlockRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderOnly {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CampaignRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub lease: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PbLeaderKey {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub rev: i64,
    #[prost(int64, tag = "4")]
    pub lease: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CampaignResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(message, optional, tag = "2")]
    pub leader: Option<PbLeaderKey>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProclaimRequest {
    #[prost(message, optional, tag = "1")]
    pub leader: Option<PbLeaderKey>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaderRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaderResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(message, optional, tag = "2")]
    pub kv: Option<PbKeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResignRequest {
    #[prost(message, optional, tag = "1")]
    pub leader: Option<PbLeaderKey>,
}

fn status(e: ConcurrencyError) -> Status {
    match e {
        // etcd's lock and election services call its KV through an
        // in-process client, which loses the code of an auth error and
        // keeps its message (clients match the message).
        ConcurrencyError::Node(NodeError::Request(KvError::Auth(e))) => Status::unknown(e.to_string()),
        ConcurrencyError::Node(e) => to_status(e),
        ConcurrencyError::SessionExpired => Status::not_found(e.to_string()),
        // Plain Go errors in etcd's election service: gRPC's Unknown.
        ConcurrencyError::NotLeader | ConcurrencyError::NoLeader => Status::unknown(e.to_string()),
    }
}

fn leader_key(k: Option<PbLeaderKey>) -> Result<LeaderKey, Status> {
    let k = k.ok_or_else(|| Status::unknown("\"leader\" field must be provided"))?;
    Ok(LeaderKey {
        name: k.name.into(),
        key: k.key.into(),
        rev: k.rev,
        lease: k.lease,
    })
}

/// A unary method: a closure from the request and its credentials to
/// the response.
struct Unary<F>(Arc<F>);

impl<Req, Resp, F, Fut> UnaryService<Req> for Unary<F>
where
    F: Fn(Req, Credentials) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Resp, Status>> + Send + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<Response<Resp>, Status>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        let f = self.0.clone();
        let creds = Credentials::of(&request);
        Box::pin(async move { f(request.into_inner(), creds).await.map(Response::new) })
    }
}

pub(crate) fn unimplemented() -> http::Response<Body> {
    let mut response = http::Response::new(Body::default());
    let headers = response.headers_mut();
    headers.insert(Status::GRPC_STATUS, (tonic::Code::Unimplemented as i32).into());
    headers.insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
    response
}

pub(crate) fn unary<Req, Resp, F, Fut, B>(f: F, req: http::Request<B>) -> BoxFuture<http::Response<Body>, Infallible>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: Fn(Req, Credentials) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Resp, Status>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc =
            Grpc::new(ProstCodec::<Resp, Req>::default()).max_decoding_message_size(crate::GRPC_MAX_RECV_BYTES);
        Ok(grpc.unary(Unary(Arc::new(f)), req).await)
    })
}

/// `v3lockpb.Lock`.
#[derive(Clone)]
pub struct LockServer {
    node: Arc<Node>,
}

impl LockServer {
    pub fn new(node: Arc<Node>) -> Self {
        LockServer { node }
    }
}

impl NamedService for LockServer {
    const NAME: &'static str = "v3lockpb.Lock";
}

impl<B> Service<http::Request<B>> for LockServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let node = self.node.clone();
        match req.uri().path() {
            "/v3lockpb.Lock/Lock" => unary(
                move |r: LockRequest, creds| {
                    let node = node.clone();
                    async move {
                        let who = caller(&node, &creds).await?;
                        let (key, revision) = concurrency::lock(&node, &r.name, r.lease, &who).await.map_err(status)?;
                        Ok(LockResponse {
                            header: convert::header(node.header(revision)),
                            key: key.to_vec(),
                        })
                    }
                },
                req,
            ),
            "/v3lockpb.Lock/Unlock" => unary(
                move |r: UnlockRequest, creds| {
                    let node = node.clone();
                    async move {
                        let who = caller(&node, &creds).await?;
                        let revision = concurrency::unlock(&node, r.key.into(), &who)
                            .await
                            .map_err(|e| status(ConcurrencyError::Node(e)))?;
                        Ok(HeaderOnly {
                            header: convert::header(node.header(revision)),
                        })
                    }
                },
                req,
            ),
            _ => Box::pin(async { Ok(unimplemented()) }),
        }
    }
}

/// `v3electionpb.Election`.
#[derive(Clone)]
pub struct ElectionServer {
    node: Arc<Node>,
}

impl ElectionServer {
    pub fn new(node: Arc<Node>) -> Self {
        ElectionServer { node }
    }
}

impl NamedService for ElectionServer {
    const NAME: &'static str = "v3electionpb.Election";
}

/// Observe: streams the leader of an election each time it changes.
struct Observe(Arc<Node>);

impl ServerStreamingService<LeaderRequest> for Observe {
    type Response = LeaderResponse;
    type ResponseStream = tokio_stream::wrappers::ReceiverStream<Result<LeaderResponse, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<LeaderRequest>) -> Self::Future {
        let node = self.0.clone();
        let creds = Credentials::of(&request);
        let name = Bytes::from(request.into_inner().name);
        Box::pin(async move {
            let who = caller(&node, &creds).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            tokio::spawn(async move {
                let mut revisions = node.revisions();
                let mut last: Option<(Bytes, i64)> = None;
                loop {
                    if let Ok((kv, revision)) = concurrency::election_leader(&node, &name, &who).await {
                        let seen = (kv.key.clone(), kv.mod_revision);
                        if last.as_ref() != Some(&seen) {
                            last = Some(seen);
                            let resp = LeaderResponse {
                                header: convert::header(node.header(revision)),
                                kv: Some(convert::key_value(kv)),
                            };
                            if tx.send(Ok(resp)).await.is_err() {
                                return;
                            }
                        }
                    }
                    tokio::select! {
                        changed = revisions.changed() => if changed.is_err() { return },
                        _ = tx.closed() => return,
                    }
                }
            });
            Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
        })
    }
}

impl<B> Service<http::Request<B>> for ElectionServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let node = self.node.clone();
        match req.uri().path() {
            "/v3electionpb.Election/Campaign" => unary(
                move |r: CampaignRequest, creds| {
                    let node = node.clone();
                    async move {
                        let who = caller(&node, &creds).await?;
                        let (leader, revision) = concurrency::campaign(&node, &r.name, r.lease, r.value.into(), &who)
                            .await
                            .map_err(status)?;
                        Ok(CampaignResponse {
                            header: convert::header(node.header(revision)),
                            leader: Some(PbLeaderKey {
                                name: leader.name.to_vec(),
                                key: leader.key.to_vec(),
                                rev: leader.rev,
                                lease: leader.lease,
                            }),
                        })
                    }
                },
                req,
            ),
            "/v3electionpb.Election/Proclaim" => unary(
                move |r: ProclaimRequest, creds| {
                    let node = node.clone();
                    async move {
                        let leader = leader_key(r.leader)?;
                        let who = caller(&node, &creds).await?;
                        let revision = concurrency::proclaim(&node, &leader, r.value.into(), &who)
                            .await
                            .map_err(status)?;
                        Ok(HeaderOnly {
                            header: convert::header(node.header(revision)),
                        })
                    }
                },
                req,
            ),
            "/v3electionpb.Election/Leader" => unary(
                move |r: LeaderRequest, creds| {
                    let node = node.clone();
                    async move {
                        let who = caller(&node, &creds).await?;
                        let (kv, revision) = concurrency::election_leader(&node, &r.name, &who)
                            .await
                            .map_err(status)?;
                        Ok(LeaderResponse {
                            header: convert::header(node.header(revision)),
                            kv: Some(convert::key_value(kv)),
                        })
                    }
                },
                req,
            ),
            "/v3electionpb.Election/Resign" => unary(
                move |r: ResignRequest, creds| {
                    let node = node.clone();
                    async move {
                        let leader = leader_key(r.leader)?;
                        let who = caller(&node, &creds).await?;
                        let revision = concurrency::resign(&node, &leader, &who).await.map_err(status)?;
                        Ok(HeaderOnly {
                            header: convert::header(node.header(revision)),
                        })
                    }
                },
                req,
            ),
            "/v3electionpb.Election/Observe" => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<LeaderResponse, LeaderRequest>::default())
                    .max_decoding_message_size(crate::GRPC_MAX_RECV_BYTES);
                Ok(grpc.server_streaming(Observe(node), req).await)
            }),
            _ => Box::pin(async { Ok(unimplemented()) }),
        }
    }
}
