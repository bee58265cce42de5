//! `etcdserverpb.KV`.

use std::sync::Arc;

use etcd_client::proto::*;
use firebreak_mvcc::{validate, KvError, MAX_REQUEST_BYTES};
use firebreak_raft::{Node, NodeError};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::auth::{caller, Credentials};
use crate::convert;
use crate::status::{to_status, too_large_for_grpc};

pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    pub fn new(node: Arc<Node>) -> Self {
        KvService { node }
    }
}

/// Refuses a request gRPC itself would not let through: etcd's server
/// never sees it, so this comes before any other check.
fn check_grpc_size(len: usize) -> Result<(), Status> {
    if len > crate::GRPC_MAX_RECV_BYTES {
        return Err(too_large_for_grpc(len));
    }
    Ok(())
}

/// Refuses a write over etcd's request limit. etcd checks the size only
/// when it proposes a request to Raft, so after the request's own
/// validation (an invalid request is refused as invalid however large it
/// is), and never for what it serves without the log (reads, read-only
/// txns).
fn check_request_size(len: usize) -> Result<(), Status> {
    if len > MAX_REQUEST_BYTES {
        return Err(to_status(NodeError::Request(KvError::RequestTooLarge)));
    }
    Ok(())
}

/// A validation error as the client sees it.
fn invalid(e: KvError) -> Status {
    to_status(NodeError::Request(e))
}

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(&self, request: Request<PbRangeRequest>) -> Result<Response<PbRangeResponse>, Status> {
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        check_grpc_size(req.encoded_len())?;
        let req = convert::range_request(req);
        validate::check_range(&req).map_err(invalid)?;
        // Credentials are resolved once the request is known valid, as
        // etcd does.
        let who = caller(&self.node, &creds).await?;
        let resp = self.node.range(req, &who).await.map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::range_response(resp, Some(header))))
    }

    type RangeStreamStream = futures::stream::Empty<Result<PbRangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("RangeStream is not supported; use Range"))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        let len = req.encoded_len();
        check_grpc_size(len)?;
        let req = convert::put_request(req);
        validate::check_put(&req).map_err(invalid)?;
        check_request_size(len)?;
        let who = caller(&self.node, &creds).await?;
        let resp = self.node.put(req, &who).await.map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::put_response(resp, Some(header))))
    }

    async fn delete_range(&self, request: Request<PbDeleteRequest>) -> Result<Response<PbDeleteResponse>, Status> {
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        let len = req.encoded_len();
        check_grpc_size(len)?;
        let req = convert::delete_request(req);
        validate::check_delete(&req).map_err(invalid)?;
        check_request_size(len)?;
        let who = caller(&self.node, &creds).await?;
        let resp = self.node.delete_range(req, &who).await.map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::delete_response(resp, Some(header))))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        let len = req.encoded_len();
        check_grpc_size(len)?;
        let req = convert::txn_request(req);
        validate::check_txn(&req).map_err(invalid)?;
        if !req.is_read_only() {
            check_request_size(len)?;
        }
        let who = caller(&self.node, &creds).await?;
        let resp = self.node.txn(req, &who).await.map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::txn_response(resp, Some(header))))
    }

    async fn compact(&self, request: Request<PbCompactionRequest>) -> Result<Response<PbCompactionResponse>, Status> {
        let creds = Credentials::of(&request);
        let req = request.into_inner();
        check_grpc_size(req.encoded_len())?;
        let who = caller(&self.node, &creds).await?;
        let resp = self
            .node
            .compact(convert::compact_request(req), &who)
            .await
            .map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(PbCompactionResponse {
            header: convert::header(header),
        }))
    }
}
