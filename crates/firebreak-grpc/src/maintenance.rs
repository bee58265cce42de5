//! `etcdserverpb.Maintenance`: status and alarms (none are raised yet).

use std::sync::Arc;

use etcd_client::proto::*;
use firebreak_raft::Node;
use tonic::{Request, Response, Status};

use crate::convert;

/// The etcd API version Firebreak answers as; clients gate features on it.
pub const ETCD_API_VERSION: &str = "3.5.0";

pub struct MaintenanceService {
    node: Arc<Node>,
}

impl MaintenanceService {
    pub fn new(node: Arc<Node>) -> Self {
        MaintenanceService { node }
    }
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported yet"))
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(&self, r: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        // No alarm is ever raised yet, so GET lists none and there is
        // nothing to activate or deactivate.
        if r.get_ref().action != 0 {
            return Err(unsupported("activating or deactivating alarms"));
        }
        Ok(Response::new(PbAlarmResponse {
            header: convert::header(self.node.current_header()),
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _r: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let s = self.node.status();
        Ok(Response::new(PbStatusResponse {
            header: convert::header(s.header),
            version: ETCD_API_VERSION.into(),
            db_size: s.db_size,
            leader: s.leader.unwrap_or(0),
            raft_index: s.raft_index,
            raft_term: s.header.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: Vec::new(),
            db_size_in_use: s.db_size_in_use,
            is_learner: s.is_learner,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(&self, _r: Request<PbDefragmentRequest>) -> Result<Response<PbDefragmentResponse>, Status> {
        Err(unsupported("Defragment"))
    }

    async fn hash(&self, _r: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(unsupported("Hash"))
    }

    async fn hash_kv(&self, _r: Request<PbHashKvRequest>) -> Result<Response<PbHashKvResponse>, Status> {
        Err(unsupported("HashKV"))
    }

    type SnapshotStream = futures::stream::Empty<Result<PbSnapshotResponse, Status>>;

    async fn snapshot(&self, _r: Request<PbSnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unsupported("Snapshot"))
    }

    async fn move_leader(&self, _r: Request<PbMoveLeaderRequest>) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(unsupported("MoveLeader"))
    }

    async fn downgrade(&self, _r: Request<PbDowngradeRequest>) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(unsupported("Downgrade"))
    }
}
