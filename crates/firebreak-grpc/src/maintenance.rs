//! `etcdserverpb.Maintenance`.

use std::sync::Arc;

use etcd_client::proto::*;
use firebreak_auth::AuthError;
use firebreak_mvcc::{AlarmAction, AlarmType, KvError};
use firebreak_raft::{Node, NodeError};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::caller_of;
use crate::convert;
use crate::status::{to_status, untranslated};

/// The etcd API version Firebreak answers as; clients gate features on it.
pub const ETCD_API_VERSION: &str = firebreak_metrics::ETCD_VERSION;

/// Bytes per message of a snapshot stream.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

pub struct MaintenanceService {
    node: Arc<Node>,
}

impl MaintenanceService {
    pub fn new(node: Arc<Node>) -> Self {
        MaintenanceService { node }
    }

    /// etcd's admin check of Defragment, Snapshot, Hash and HashKV, whose
    /// errors etcd sends untranslated.
    async fn require_root<T>(&self, r: &Request<T>) -> Result<(), Status> {
        let who = caller_of(&self.node, r).await.map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => Status::unknown(AuthError::InvalidAuthToken.etcd_internal_message()),
            _ => s,
        })?;
        self.node.check_admin(&who).map_err(untranslated)
    }
}

fn alarm_type(code: i32) -> Option<AlarmType> {
    match code {
        1 => Some(AlarmType::NoSpace),
        2 => Some(AlarmType::Corrupt),
        _ => None,
    }
}

fn alarm_code(alarm: AlarmType) -> i32 {
    match alarm {
        AlarmType::NoSpace => 1,
        AlarmType::Corrupt => 2,
    }
}

fn alarm_members(alarms: impl IntoIterator<Item = firebreak_mvcc::AlarmMember>) -> Vec<PbAlarmMember> {
    alarms
        .into_iter()
        .map(|a| PbAlarmMember {
            member_id: a.member_id,
            alarm: alarm_code(a.alarm),
        })
        .collect()
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(&self, r: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        // Listing needs credentials, changing needs root (etcd 3.5).
        match r.get_ref().action {
            0 => self.node.require_auth_info(&who),
            _ => self.node.check_admin(&who),
        }
        .map_err(to_status)?;
        let r = r.into_inner();
        let alarms = match (r.action, alarm_type(r.alarm)) {
            // GET lists every alarm (of the given type, unless NONE).
            (0, wanted) => {
                let all = self.node.alarms().await.map_err(to_status)?;
                alarm_members(all.into_iter().filter(|a| wanted.is_none_or(|w| a.alarm == w)))
            }
            (1 | 2, None) => Vec::new(),
            (1 | 2, Some(alarm)) => {
                let action = r.action;
                let action = if action == 1 {
                    AlarmAction::Activate
                } else {
                    AlarmAction::Deactivate
                };
                let resp = self.node.alarm(action, r.member_id, alarm).await.map_err(to_status)?;
                alarm_members(resp.alarms)
            }
            (other, _) => return Err(Status::invalid_argument(format!("unknown alarm action {other}"))),
        };
        Ok(Response::new(PbAlarmResponse {
            header: convert::header(self.node.current_header()),
            alarms,
        }))
    }

    async fn status(&self, r: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        self.node.require_auth_info(&who).map_err(to_status)?;
        let s = self.node.status();
        Ok(Response::new(PbStatusResponse {
            header: convert::header(s.header),
            version: ETCD_API_VERSION.into(),
            db_size: s.db_size,
            leader: s.leader.unwrap_or(0),
            raft_index: s.raft_index,
            raft_term: s.header.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: s.errors,
            db_size_in_use: s.db_size_in_use,
            is_learner: s.is_learner,
            storage_version: String::new(),
            db_size_quota: s.db_size_quota,
            downgrade_info: None,
        }))
    }

    /// The store lives in memory and its snapshot is rewritten whole, so
    /// there is nothing to defragment: success, as etcd answers.
    async fn defragment(&self, r: Request<PbDefragmentRequest>) -> Result<Response<PbDefragmentResponse>, Status> {
        self.require_root(&r).await?;
        self.node.defragment();
        // etcd answers a defragmentation with an empty message, no header.
        Ok(Response::new(PbDefragmentResponse { header: None }))
    }

    async fn hash(&self, r: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        self.require_root(&r).await?;
        let (hash, revision) = self.node.hash();
        Ok(Response::new(PbHashResponse {
            header: convert::header(self.node.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(&self, r: Request<PbHashKvRequest>) -> Result<Response<PbHashKvResponse>, Status> {
        self.require_root(&r).await?;
        let h = self
            .node
            .hash_kv(r.into_inner().revision)
            .map_err(|e: KvError| to_status(NodeError::Request(e)))?;
        Ok(Response::new(PbHashKvResponse {
            header: convert::header(self.node.current_header()),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.revision,
        }))
    }

    type SnapshotStream = ReceiverStream<Result<PbSnapshotResponse, Status>>;

    async fn snapshot(&self, r: Request<PbSnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        self.require_root(&r).await?;
        // A backup holds every write acknowledged before it was asked for.
        self.node.read_barrier().await.map_err(to_status)?;
        // etcd's format (a bbolt database and its SHA-256); laying it out
        // is CPU work, kept off the async threads.
        let node = self.node.clone();
        let bytes = tokio::task::spawn_blocking(move || node.backup())
            .await
            .map_err(|e| Status::internal(format!("snapshot failed: {e}")))?;
        let header = convert::header(self.node.current_header());
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut sent = 0;
            for chunk in bytes.chunks(SNAPSHOT_CHUNK) {
                sent += chunk.len();
                let resp = PbSnapshotResponse {
                    header,
                    remaining_bytes: (bytes.len() - sent) as u64,
                    blob: chunk.to_vec(),
                    version: ETCD_API_VERSION.into(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn move_leader(&self, r: Request<PbMoveLeaderRequest>) -> Result<Response<PbMoveLeaderResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        self.node.check_admin(&who).map_err(to_status)?;
        self.node
            .move_leader(r.into_inner().target_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbMoveLeaderResponse {
            header: convert::header(self.node.current_header()),
        }))
    }

    async fn downgrade(&self, r: Request<PbDowngradeRequest>) -> Result<Response<PbDowngradeResponse>, Status> {
        let who = caller_of(&self.node, &r).await?;
        self.node.check_admin(&who).map_err(to_status)?;
        Err(Status::unimplemented("Downgrade is not supported"))
    }
}
