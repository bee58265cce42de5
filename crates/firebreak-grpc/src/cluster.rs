//! `etcdserverpb.Cluster`: the member list and membership changes.
//!
//! A new member's name and failure domains are given as query parameters
//! of its peer URL (`?name=dc4-a&datacenter=dc4`), since etcd's MemberAdd
//! has no field for them (see `firebreak_raft::membership`).

use std::sync::Arc;

use etcd_client::proto::*;
use firebreak_raft::membership::MembershipChange;
use firebreak_raft::{MemberInfo, Node};
use tonic::{Request, Response, Status};

use crate::auth::caller_of;
use crate::convert;
use crate::status::to_status;

pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        ClusterService { node }
    }

    fn header(&self) -> Option<PbResponseHeader> {
        convert::header(self.node.current_header())
    }

    /// Membership changes are `root`'s while auth is enabled (etcd 3.5).
    async fn require_root<T>(&self, r: &Request<T>) -> Result<(), Status> {
        let who = caller_of(&self.node, r).await?;
        self.node.check_admin(&who).map_err(to_status)
    }
}

fn member(m: MemberInfo) -> PbMember {
    PbMember {
        id: m.id,
        name: m.member.name,
        peer_ur_ls: vec![m.member.peer_url],
        client_ur_ls: if m.member.client_url.is_empty() {
            Vec::new()
        } else {
            vec![m.member.client_url]
        },
        is_learner: m.is_learner,
    }
}

fn one_url(urls: Vec<String>) -> Result<String, Status> {
    match <[String; 1]>::try_from(urls) {
        Ok([url]) => Ok(url),
        Err(_) => Err(Status::invalid_argument(
            "etcdserver: give exactly one peer URL per member",
        )),
    }
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(&self, r: Request<PbMemberAddRequest>) -> Result<Response<PbMemberAddResponse>, Status> {
        self.require_root(&r).await?;
        let r = r.into_inner();
        let change = MembershipChange::Add {
            peer_url: one_url(r.peer_ur_ls)?,
            learner: r.is_learner,
        };
        let (id, members) = self.node.change_members(change).await.map_err(to_status)?;
        let added = members.iter().find(|m| m.id == id).cloned().map(member);
        Ok(Response::new(PbMemberAddResponse {
            header: self.header(),
            member: added,
            members: members.into_iter().map(member).collect(),
        }))
    }

    async fn member_remove(
        &self,
        r: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        self.require_root(&r).await?;
        let change = MembershipChange::Remove { id: r.into_inner().id };
        let (_, members) = self.node.change_members(change).await.map_err(to_status)?;
        Ok(Response::new(PbMemberRemoveResponse {
            header: self.header(),
            members: members.into_iter().map(member).collect(),
        }))
    }

    async fn member_update(
        &self,
        r: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        self.require_root(&r).await?;
        let r = r.into_inner();
        let change = MembershipChange::Update {
            id: r.id,
            peer_url: one_url(r.peer_ur_ls)?,
        };
        let (_, members) = self.node.change_members(change).await.map_err(to_status)?;
        Ok(Response::new(PbMemberUpdateResponse {
            header: self.header(),
            members: members.into_iter().map(member).collect(),
        }))
    }

    async fn member_list(&self, r: Request<PbMemberListRequest>) -> Result<Response<PbMemberListResponse>, Status> {
        if r.get_ref().linearizable {
            // etcd waits for a linearizable read first: the list then holds
            // every membership change acknowledged before the request.
            self.node.read_barrier().await.map_err(to_status)?;
        }
        Ok(Response::new(PbMemberListResponse {
            header: self.header(),
            members: self.node.members().into_iter().map(member).collect(),
        }))
    }

    async fn member_promote(
        &self,
        r: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        self.require_root(&r).await?;
        let change = MembershipChange::Promote { id: r.into_inner().id };
        let (_, members) = self.node.change_members(change).await.map_err(to_status)?;
        Ok(Response::new(PbMemberPromoteResponse {
            header: self.header(),
            members: members.into_iter().map(member).collect(),
        }))
    }
}
