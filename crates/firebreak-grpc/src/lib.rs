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
pub mod gateway;
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
    // One stack of layers (identify outermost, then metrics, then limits),
    // for the network and for the HTTP/JSON gateway's calls in process.
    let layers = tower_layer::Stack::new(
        limits::EtcdLimitsLayer,
        tower_layer::Stack::new(
            metrics::GrpcMetricsLayer,
            tonic::service::InterceptorLayer::new(identify),
        ),
    );
    let kv = PbKvServer::new(kv::KvService::new(node.clone())).max_decoding_message_size(GRPC_MAX_RECV_BYTES);
    let cluster =
        PbClusterServer::new(cluster::ClusterService::new(node.clone())).max_decoding_message_size(GRPC_MAX_RECV_BYTES);
    let maintenance = PbMaintenanceServer::new(maintenance::MaintenanceService::new(node.clone()))
        .max_decoding_message_size(GRPC_MAX_RECV_BYTES);
    let watch = PbWatchServer::new(watch::WatchService::new(
        node.clone(),
        std::time::Duration::from_secs(600),
    ))
    .max_decoding_message_size(GRPC_MAX_RECV_BYTES);
    let lease =
        PbLeaseServer::new(lease::LeaseService::new(node.clone())).max_decoding_message_size(GRPC_MAX_RECV_BYTES);
    let auth = auth::AuthServer::new(node.clone());
    let lock = concurrency::LockServer::new(node.clone());
    let election = concurrency::ElectionServer::new(node);
    let services = |routes: tonic::service::Routes| {
        routes
            .add_service(kv.clone())
            .add_service(cluster.clone())
            .add_service(maintenance.clone())
            .add_service(watch.clone())
            .add_service(lease.clone())
            .add_service(auth.clone())
            .add_service(lock.clone())
            .add_service(election.clone())
    };
    // etcd's HTTP/JSON gateway (/v3/...) calls the very same services.
    let in_process = tower_layer::Layer::layer(&layers, services(tonic::service::Routes::default()).prepare());
    let gateway = firebreak_gateway::router(in_process, gateway::carry);
    // HTTP/1 beside gRPC on the same port, as etcd serves /metrics,
    // /health and /version: `http` and the gateway answer every path that
    // is not a gRPC service.
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(layers)
        .add_routes(services(tonic::service::Routes::from(http.merge(gateway))))
        .serve_with_incoming_shutdown(listener.incoming(), shutdown)
        .await
}
