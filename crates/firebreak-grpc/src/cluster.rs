//! `etcdserverpb.Cluster`: the member list. Membership changes at run time
//! are not served yet.

use std::sync::Arc;

use etcd_client::proto::*;
use firebreak_raft::Node;
use tonic::{Request, Response, Status};

use crate::convert;

pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        ClusterService { node }
    }
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported yet"))
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(&self, _r: Request<PbMemberAddRequest>) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(unsupported("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _r: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(unsupported("MemberRemove"))
    }

    async fn member_update(
        &self,
        _r: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(unsupported("MemberUpdate"))
    }

    async fn member_list(&self, _r: Request<PbMemberListRequest>) -> Result<Response<PbMemberListResponse>, Status> {
        let members = self
            .node
            .members()
            .into_iter()
            .map(|m| PbMember {
                id: m.id,
                name: m.member.name,
                peer_ur_ls: vec![m.member.peer_url],
                client_ur_ls: vec![m.member.client_url],
                is_learner: m.is_learner,
            })
            .collect();
        Ok(Response::new(PbMemberListResponse {
            header: convert::header(self.node.current_header()),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _r: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(unsupported("MemberPromote"))
    }
}
