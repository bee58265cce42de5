//! etcd's protobuf descriptors and the HTTP routes their
//! `google.api.http` annotations declare.
//!
//! The descriptors are compiled from the `.proto` files that `etcd-client`
//! ships (see `build.rs`), so the routes are exactly those of etcd's
//! `rpc.proto`, `v3lock.proto` and `v3election.proto`, the
//! `additional_bindings` (`/v3/kv/lease/*`) included. A method without an
//! annotation (`RangeStream`) has no route, as in etcd.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(include_bytes!(concat!(env!("OUT_DIR"), "/etcd.fds")).as_ref())
        .expect("the descriptors compiled by build.rs")
});

/// One gRPC method that the gateway serves.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// The gRPC path, `/etcdserverpb.KV/Range`.
    pub grpc_path: String,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

impl Rpc {
    /// Whether either side streams (the answer is then a stream of
    /// `{"result":…}` lines).
    pub fn streaming(&self) -> bool {
        self.client_streaming || self.server_streaming
    }
}

/// The descriptor of the message `full_name` (`etcdserverpb.PutRequest`).
pub fn message(full_name: &str) -> Option<MessageDescriptor> {
    POOL.get_message_by_name(full_name)
}

/// Every route: the HTTP path (`/v3/kv/range`) and its method.
pub fn routes() -> HashMap<String, Rpc> {
    let http = POOL
        .get_extension_by_name("google.api.http")
        .expect("google/api/annotations.proto is among the descriptors");
    let mut routes = HashMap::new();
    for service in POOL.services() {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&http) {
                continue;
            }
            let rule = options.get_extension(&http);
            let Some(rule) = rule.as_message() else { continue };
            let rpc = Rpc {
                grpc_path: format!("/{}/{}", service.full_name(), method.name()),
                input: method.input(),
                output: method.output(),
                client_streaming: method.is_client_streaming(),
                server_streaming: method.is_server_streaming(),
            };
            let mut paths = Vec::new();
            posts(rule, &mut paths);
            for path in paths {
                routes.insert(path, rpc.clone());
            }
        }
    }
    routes
}

/// The `post` paths of an `HttpRule` and of its additional bindings (etcd
/// declares no other verb).
fn posts(rule: &DynamicMessage, paths: &mut Vec<String>) {
    if let Some(post) = rule.get_field_by_name("post") {
        if let Some(path) = post.as_str().filter(|p| !p.is_empty()) {
            paths.push(path.to_owned());
        }
    }
    if let Some(more) = rule.get_field_by_name("additional_bindings") {
        for binding in more.as_list().unwrap_or_default() {
            if let Value::Message(binding) = binding {
                posts(binding, paths);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_come_from_etcds_annotations() {
        let routes = routes();
        let rpc = |path: &str| routes.get(path).unwrap_or_else(|| panic!("no route {path}"));
        assert_eq!(rpc("/v3/kv/range").grpc_path, "/etcdserverpb.KV/Range");
        assert_eq!(rpc("/v3/kv/range").input.full_name(), "etcdserverpb.RangeRequest");
        assert_eq!(rpc("/v3/kv/compaction").grpc_path, "/etcdserverpb.KV/Compact");
        assert_eq!(rpc("/v3/kv/lease/revoke").grpc_path, "/etcdserverpb.Lease/LeaseRevoke");
        assert_eq!(
            rpc("/v3/kv/lease/timetolive").grpc_path,
            "/etcdserverpb.Lease/LeaseTimeToLive"
        );
        assert_eq!(rpc("/v3/kv/lease/leases").grpc_path, "/etcdserverpb.Lease/LeaseLeases");
        assert_eq!(rpc("/v3/lease/grant").grpc_path, "/etcdserverpb.Lease/LeaseGrant");
        assert_eq!(rpc("/v3/auth/status").grpc_path, "/etcdserverpb.Auth/AuthStatus");
        assert_eq!(
            rpc("/v3/maintenance/transfer-leadership").grpc_path,
            "/etcdserverpb.Maintenance/MoveLeader"
        );
        assert_eq!(rpc("/v3/lock/lock").grpc_path, "/v3lockpb.Lock/Lock");
        assert_eq!(
            rpc("/v3/election/campaign").grpc_path,
            "/v3electionpb.Election/Campaign"
        );
        let watch = rpc("/v3/watch");
        assert!(watch.client_streaming && watch.server_streaming);
        let observe = rpc("/v3/election/observe");
        assert!(!observe.client_streaming && observe.server_streaming);
        assert!(!rpc("/v3/kv/put").streaming());
        // RangeStream has no annotation, so no route.
        assert!(routes.values().all(|r| !r.grpc_path.ends_with("/RangeStream")));
        assert!(routes.keys().all(|p| p.starts_with("/v3/")));
        // KV 5, Watch 1, Lease 5 + 3 aliases, Cluster 5, Maintenance 8,
        // Auth 17, Lock 2, Election 5.
        assert_eq!(routes.len(), 51, "{:?}", routes.keys().collect::<Vec<_>>());
    }
}
