//! The one mapping from Firebreak's errors to gRPC statuses.
//!
//! Codes and messages are etcd's (its `rpctypes`), since clients match on
//! them: etcd client libraries retry `Unavailable`, and etcdctl prints the
//! message.

use firebreak_mvcc::error::ErrorClass;
use firebreak_mvcc::KvError;
use firebreak_raft::NodeError;
use tonic::{Code, Status};

/// Maps any node error to the status etcd would answer with.
pub fn to_status(err: NodeError) -> Status {
    match err {
        NodeError::Request(e) => kv_status(&e),
        NodeError::Unavailable(u) => Status::new(Code::Unavailable, u.to_string()),
        NodeError::Stopped(_) => Status::new(Code::Unavailable, "etcdserver: server stopped"),
        NodeError::NotLeader => Status::new(Code::FailedPrecondition, err.to_string()),
        NodeError::BadTarget(_) => Status::new(Code::FailedPrecondition, err.to_string()),
        NodeError::Membership(e) => {
            use firebreak_raft::membership::MembershipError as M;
            let code = match e {
                M::NotFound | M::NotAdded(_) => Code::NotFound,
                M::PeerUrlExists | M::IdExists => Code::FailedPrecondition,
                M::NotLearner | M::LearnerNotReady | M::Topology(_) => Code::FailedPrecondition,
                M::BadUrl(_) => Code::InvalidArgument,
                M::Unavailable(_) => Code::Unavailable,
            };
            Status::new(code, e.to_string())
        }
    }
}

fn kv_status(e: &KvError) -> Status {
    let code = match e.class() {
        ErrorClass::InvalidArgument => Code::InvalidArgument,
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::OutOfRange => Code::OutOfRange,
        ErrorClass::FailedPrecondition => Code::FailedPrecondition,
        ErrorClass::ResourceExhausted => Code::ResourceExhausted,
        ErrorClass::PermissionDenied => Code::PermissionDenied,
        ErrorClass::Unauthenticated => Code::Unauthenticated,
        ErrorClass::Unknown => Code::Unknown,
    };
    Status::new(code, e.to_string())
}

/// An auth error as etcd sends it where it does not translate it (the
/// admin checks of Defragment, Snapshot, Hash and HashKV): its internal
/// text, with code Unknown. Any other error maps as [`to_status`] does.
pub fn untranslated(err: NodeError) -> Status {
    match err {
        NodeError::Request(KvError::Auth(e)) => Status::new(Code::Unknown, e.etcd_internal_message()),
        other => to_status(other),
    }
}

/// A request larger than gRPC's receive limit, as grpc-go words it.
pub fn too_large_for_grpc(len: usize) -> Status {
    Status::new(
        Code::ResourceExhausted,
        format!(
            "grpc: received message larger than max ({len} vs. {})",
            crate::GRPC_MAX_RECV_BYTES
        ),
    )
}
