//! `etcdserverpb.KV`.

use std::sync::Arc;

use etcd_client::proto::*;
use firebreak_mvcc::{KvError, MAX_REQUEST_BYTES};
use firebreak_raft::{Node, NodeError};
use prost::Message;
use tonic::{Request, Response, Status};

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

/// Refuses a write request over etcd's limits before it is proposed.
fn check_size(len: usize) -> Result<(), Status> {
    if len > crate::GRPC_MAX_RECV_BYTES {
        return Err(too_large_for_grpc(len));
    }
    if len > MAX_REQUEST_BYTES {
        return Err(to_status(NodeError::Request(KvError::RequestTooLarge)));
    }
    Ok(())
}

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(&self, request: Request<PbRangeRequest>) -> Result<Response<PbRangeResponse>, Status> {
        let req = convert::range_request(request.into_inner());
        let resp = self.node.range(req).await.map_err(to_status)?;
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
        let req = request.into_inner();
        check_size(req.encoded_len())?;
        let resp = self.node.put(convert::put_request(req)).await.map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::put_response(resp, Some(header))))
    }

    async fn delete_range(&self, request: Request<PbDeleteRequest>) -> Result<Response<PbDeleteResponse>, Status> {
        let req = request.into_inner();
        check_size(req.encoded_len())?;
        let resp = self
            .node
            .delete_range(convert::delete_request(req))
            .await
            .map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::delete_response(resp, Some(header))))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let req = request.into_inner();
        check_size(req.encoded_len())?;
        let resp = self.node.txn(convert::txn_request(req)).await.map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(convert::txn_response(resp, Some(header))))
    }

    async fn compact(&self, request: Request<PbCompactionRequest>) -> Result<Response<PbCompactionResponse>, Status> {
        let req = request.into_inner();
        let resp = self
            .node
            .compact(convert::compact_request(req))
            .await
            .map_err(to_status)?;
        let header = self.node.header(resp.revision);
        Ok(Response::new(PbCompactionResponse {
            header: convert::header(header),
        }))
    }
}
