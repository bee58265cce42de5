//! The etcd v3 gRPC API of Firebreak.
//!
//! Protocol code only: each service method decodes the protobuf message
//! into `firebreak-mvcc`'s plain types ([`convert`]), calls the
//! [`Node`](firebreak_raft::Node), and encodes the answer. Every error
//! reaches the wire through one function, [`status::to_status`].
//!
//! The generated server traits and messages come from the `etcd-client`
//! crate's `build-server` feature.

pub mod cluster;
pub mod concurrency;
pub mod convert;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod status;
pub mod watch;

use std::sync::Arc;

use etcd_client::proto::{PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer};
use firebreak_raft::Node;

/// etcd's gRPC receive limit: the request limit plus 512 KiB of overhead.
/// Requests are let through tonic up to a larger size so that the
/// handlers can refuse them with etcd's own messages.
pub const GRPC_MAX_RECV_BYTES: usize = firebreak_mvcc::MAX_REQUEST_BYTES + 512 * 1024;

/// What tonic lets through before the handlers look at a request.
const TONIC_DECODE_LIMIT: usize = 64 << 20;

/// Serves the etcd API on `listener` until `shutdown` completes.
pub async fn serve(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // `Server::tcp_nodelay` applies only to listeners tonic binds itself:
    // set it on the accepted connections, or responses written in two
    // pieces wait for the client's delayed ACK (40 ms).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(PbKvServer::new(kv::KvService::new(node.clone())).max_decoding_message_size(TONIC_DECODE_LIMIT))
        .add_service(PbClusterServer::new(cluster::ClusterService::new(node.clone())))
        .add_service(PbMaintenanceServer::new(maintenance::MaintenanceService::new(
            node.clone(),
        )))
        .add_service(PbWatchServer::new(watch::WatchService::new(
            node.clone(),
            std::time::Duration::from_secs(600),
        )))
        .add_service(PbLeaseServer::new(lease::LeaseService::new(node.clone())))
        .add_service(concurrency::LockServer::new(node.clone()))
        .add_service(concurrency::ElectionServer::new(node))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
