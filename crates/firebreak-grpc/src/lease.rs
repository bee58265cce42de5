//! `etcdserverpb.Lease`.

use std::sync::Arc;

use etcd_client::proto::*;
use firebreak_raft::Node;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{caller, caller_of, Credentials};
use crate::convert;
use crate::status::to_status;

pub struct LeaseService {
    node: Arc<Node>,
}

impl LeaseService {
    pub fn new(node: Arc<Node>) -> Self {
        LeaseService { node }
    }
}

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(&self, r: Request<PbLeaseGrantRequest>) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        let r = r.into_inner();
        let resp = self.node.lease_grant(r.ttl, r.id, &who).await.map_err(to_status)?;
        Ok(Response::new(PbLeaseGrantResponse {
            header: convert::header(self.node.header(resp.revision)),
            id: resp.id,
            ttl: resp.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(&self, r: Request<PbLeaseRevokeRequest>) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        let resp = self
            .node
            .lease_revoke(r.into_inner().id, &who)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbLeaseRevokeResponse {
            header: convert::header(self.node.header(resp.revision)),
        }))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<PbLeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        r: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let creds = Credentials::of(&r);
        let mut inbound = r.into_inner();
        let node = self.node.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(Ok(req)) = inbound.next().await {
                // Judged for every renewal, as etcd does: a token may
                // expire, or permissions change, while the stream lives.
                let renewed = match caller(&node, &creds).await {
                    Ok(who) => node.lease_keep_alive(req.id, &who).await.map_err(to_status),
                    Err(e) => Err(e),
                };
                let answer = match renewed {
                    Ok(ttl) => Ok(PbLeaseKeepAliveResponse {
                        header: convert::header(node.current_header()),
                        id: req.id,
                        ttl,
                    }),
                    Err(e) => Err(e),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        r: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        let r = r.into_inner();
        let ttl = self
            .node
            .lease_time_to_live(r.id, r.keys, &who)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbLeaseTimeToLiveResponse {
            header: convert::header(self.node.current_header()),
            id: r.id,
            ttl: ttl.ttl,
            granted_ttl: ttl.granted_ttl,
            keys: ttl.keys.into_iter().map(|k| k.to_vec()).collect(),
        }))
    }

    async fn lease_leases(&self, r: Request<PbLeaseLeasesRequest>) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        let ids = self.node.lease_ids(&who).await.map_err(to_status)?;
        Ok(Response::new(PbLeaseLeasesResponse {
            header: convert::header(self.node.current_header()),
            leases: ids.into_iter().map(|id| PbLeaseStatus { id }).collect(),
        }))
    }
}
