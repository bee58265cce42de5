//! The etcd v3 gRPC API of Firebreak.
//!
//! Protocol code only: each service method decodes the protobuf message
//! into `firebreak-mvcc`'s plain types ([`convert`]), calls the
//! [`Node`](firebreak_raft::Node), and encodes the answer. Every error
//! reaches the wire through one function, [`status::to_status`].
//!
//! The generated server traits and messages come from the `etcd-client`
//! crate's `build-server` feature.

pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod convert;
pub mod identity;
pub mod kv;
pub mod lease;
pub mod limits;
pub mod listener;
pub mod maintenance;
pub mod metrics;
pub mod status;
pub mod watch;

use std::sync::Arc;

use etcd_client::proto::{PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer};
use firebreak_raft::Node;
pub use listener::ClientListener;

/// etcd's gRPC receive limit: the request limit plus 512 KiB of overhead.
/// tonic refuses a larger message from its length prefix, before reading
/// its body, in etcd's words ([`limits`]); the handlers refuse requests
/// over the request limit but under this one with etcd's own messages.
pub const GRPC_MAX_RECV_BYTES: usize = firebreak_mvcc::MAX_REQUEST_BYTES + 512 * 1024;

/// Serves the etcd API on `listener` until `shutdown` completes.
pub async fn serve(
    node: Arc<Node>,
    listener: ClientListener,
    http: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // The listener sets TCP_NODELAY on the connections it accepts, or
    // responses written in two pieces wait for the client's delayed ACK.
    let identify: fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> = listener::identify;
    // HTTP/1 beside gRPC on the same port, as etcd serves /metrics,
    // /health and /version: `http` answers every path that is not a gRPC
    // service.
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(tonic::service::InterceptorLayer::new(identify))
        .layer(metrics::GrpcMetricsLayer)
        .layer(limits::EtcdLimitsLayer)
        .add_routes(tonic::service::Routes::from(http))
        .add_service(PbKvServer::new(kv::KvService::new(node.clone())).max_decoding_message_size(GRPC_MAX_RECV_BYTES))
        .add_service(
            PbClusterServer::new(cluster::ClusterService::new(node.clone()))
                .max_decoding_message_size(GRPC_MAX_RECV_BYTES),
        )
        .add_service(
            PbMaintenanceServer::new(maintenance::MaintenanceService::new(node.clone()))
                .max_decoding_message_size(GRPC_MAX_RECV_BYTES),
        )
        .add_service(
            PbWatchServer::new(watch::WatchService::new(
                node.clone(),
                std::time::Duration::from_secs(600),
            ))
            .max_decoding_message_size(GRPC_MAX_RECV_BYTES),
        )
        .add_service(
            PbLeaseServer::new(lease::LeaseService::new(node.clone())).max_decoding_message_size(GRPC_MAX_RECV_BYTES),
        )
        .add_service(auth::AuthServer::new(node.clone()))
        .add_service(concurrency::LockServer::new(node.clone()))
        .add_service(concurrency::ElectionServer::new(node))
        .serve_with_incoming_shutdown(listener.incoming(), shutdown)
        .await
}
