//! Firebreak's Prometheus metrics: one registry per process, with etcd's
//! metric names and labels wherever etcd has the same fact, so the
//! dashboards and alert rules teams already run for etcd work unchanged.
//! Firebreak's own facts are under `firebreak_`.
//!
//! Counters and histograms are updated where the event happens (an fsync,
//! a peer message, a gRPC call). Gauges that describe state (the leader,
//! the indexes, sizes, lag, risk) are set from the member's state when the
//! metrics are gathered ([`Metrics::gather`] callers refresh them first),
//! so they are never stale and cost nothing on the write path.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The version of etcd's API whose semantics Firebreak implements, as
/// `/version` and `etcd_server_version` report it.
pub const ETCD_VERSION: &str = "3.5.0";
/// The version of etcd's cluster protocol reported by `/version`.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";

/// Every metric of this process.
pub struct Metrics {
    registry: Registry,
    // Raft, as etcd's server package names it.
    pub has_leader: IntGauge,
    pub is_leader: IntGauge,
    pub is_learner: IntGauge,
    pub leader_changes_seen: IntCounter,
    pub proposals_committed: IntGauge,
    pub proposals_applied: IntGauge,
    pub proposals_pending: IntGauge,
    pub proposals_failed: IntCounter,
    pub server_version: IntGaugeVec,
    pub server_id: IntGaugeVec,
    pub quota_backend_bytes: IntGauge,
    // Disk.
    pub wal_fsync_duration: Histogram,
    pub backend_commit_duration: Histogram,
    pub snapshot_save_total_duration: Histogram,
    // Storage.
    pub db_total_size: IntGauge,
    pub db_total_size_in_use: IntGauge,
    /// `etcd_mvcc_db_total_size_in_bytes` under its name before etcd 3.4,
    /// which etcd 3.4 still exports and older etcd dashboards graph.
    pub db_total_size_debugging: IntGauge,
    // Peers.
    pub peer_round_trip_time: HistogramVec,
    pub peer_sent_failures: IntCounterVec,
    pub peer_sent_bytes: IntCounterVec,
    pub peer_received_bytes: IntCounterVec,
    // gRPC, as go-grpc-prometheus names it.
    pub grpc_started: IntCounterVec,
    pub grpc_handled: IntCounterVec,
    pub grpc_handling_seconds: HistogramVec,
    // Client traffic, as etcd counts it (its dashboards graph these).
    pub client_grpc_sent_bytes: IntCounter,
    pub client_grpc_received_bytes: IntCounter,
    // Firebreak's own.
    pub member_info: IntGaugeVec,
    pub follower_lag_entries: IntGaugeVec,
    pub follower_lag_seconds: prometheus::GaugeVec,
    pub newest_write_held_in: IntGaugeVec,
    pub loss_loses_writes: IntGaugeVec,
    pub loss_keeps_quorum: IntGaugeVec,
    pub loss_recovery_seconds: prometheus::GaugeVec,
    pub risk_known: IntGauge,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definition");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric definition");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn float_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
    let g = prometheus::GaugeVec::new(Opts::new(name, help), labels).expect("metric definition");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric definition");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("metric definition");
    registry.register(Box::new(h.clone())).expect("metric registered once");
    h
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("metric definition");
    registry.register(Box::new(h.clone())).expect("metric registered once");
    h
}

/// etcd's disk latency buckets: 1 ms to 8 s, doubling.
fn disk_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 14).expect("bucket definition")
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process collector registered once");
        Metrics {
            has_leader: gauge(&r, "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not."),
            is_leader: gauge(&r, "etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise."),
            is_learner: gauge(&r, "etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise."),
            leader_changes_seen: counter(
                &r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            proposals_committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                &r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                &r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                &r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            server_version: gauge_vec(
                &r,
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                &["server_version"],
            ),
            server_id: gauge_vec(
                &r,
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                &["server_id"],
            ),
            quota_backend_bytes: gauge(&r, "etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes."),
            wal_fsync_duration: histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                disk_buckets(),
            ),
            backend_commit_duration: histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                disk_buckets(),
            ),
            snapshot_save_total_duration: histogram(
                &r,
                "etcd_debugging_snap_save_total_duration_seconds",
                "The total latency distributions of save called by snapshot.",
                disk_buckets(),
            ),
            db_total_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_total_size_in_use: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            db_total_size_debugging: gauge(
                &r,
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes. Use etcd_mvcc_db_total_size_in_bytes",
            ),
            peer_round_trip_time: histogram_vec(
                &r,
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
                &["To"],
                exponential_buckets(0.0001, 2.0, 16).expect("bucket definition"),
            ),
            peer_sent_failures: counter_vec(
                &r,
                "etcd_network_peer_sent_failures_total",
                "The total number of send failures from peers.",
                &["To"],
            ),
            peer_sent_bytes: counter_vec(
                &r,
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                &["To"],
            ),
            peer_received_bytes: counter_vec(
                &r,
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                &["From"],
            ),
            grpc_started: counter_vec(
                &r,
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &["grpc_type", "grpc_service", "grpc_method"],
            ),
            grpc_handled: counter_vec(
                &r,
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            grpc_handling_seconds: histogram_vec(
                &r,
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                &["grpc_type", "grpc_service", "grpc_method"],
                prometheus::DEFAULT_BUCKETS.to_vec(),
            ),
            client_grpc_sent_bytes: counter(
                &r,
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            client_grpc_received_bytes: counter(
                &r,
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            member_info: gauge_vec(
                &r,
                "firebreak_member_info",
                "This member and its failure domains; always 1.",
                &["member_id", "name", "datacenter", "room", "rack", "host"],
            ),
            follower_lag_entries: gauge_vec(
                &r,
                "firebreak_follower_lag_entries",
                "On the leader: log entries the follower has not yet stored durably.",
                &["follower", "datacenter"],
            ),
            follower_lag_seconds: float_gauge_vec(
                &r,
                "firebreak_follower_lag_seconds",
                "On the leader: age of the oldest log entry the follower has not yet stored durably (0 if caught up).",
                &["follower", "datacenter"],
            ),
            newest_write_held_in: gauge_vec(
                &r,
                "firebreak_newest_write_durable_in",
                "Whether the datacenter holds the newest acknowledged write durably (1) or not (0).",
                &["datacenter"],
            ),
            loss_loses_writes: gauge_vec(
                &r,
                "firebreak_datacenter_loss_loses_writes",
                "1 if losing the datacenter now would lose an acknowledged write.",
                &["datacenter"],
            ),
            loss_keeps_quorum: gauge_vec(
                &r,
                "firebreak_datacenter_loss_keeps_quorum",
                "1 if the members outside the datacenter would still hold a quorum.",
                &["datacenter"],
            ),
            loss_recovery_seconds: float_gauge_vec(
                &r,
                "firebreak_datacenter_loss_recovery_seconds",
                "Predicted time until writes are served again if the datacenter is lost now.",
                &["datacenter"],
            ),
            risk_known: gauge(
                &r,
                "firebreak_risk_known",
                "1 if this member knows the replication state (it leads or reached the leader), else 0.",
            ),
            registry: r,
        }
    }

    /// Every metric in Prometheus's text format.
    pub fn gather(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// A histogram in a few numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    /// Mean of the samples, in the histogram's unit.
    pub mean: Option<f64>,
    /// Upper bound of the bucket that holds the 99th percentile.
    pub p99_bound: Option<f64>,
}

/// Summarizes `h` from its buckets.
pub fn summarize(h: &Histogram) -> Summary {
    let count = h.get_sample_count();
    if count == 0 {
        return Summary {
            count,
            mean: None,
            p99_bound: None,
        };
    }
    let target = (count as f64 * 0.99).ceil() as u64;
    let p99_bound = prometheus::core::Collector::collect(h)
        .first()
        .and_then(|f| f.get_metric().first())
        .and_then(|m| {
            m.get_histogram()
                .get_bucket()
                .iter()
                .find(|b| b.cumulative_count() >= target)
                .map(|b| b.upper_bound())
        });
    Summary {
        count,
        mean: Some(h.get_sample_sum() / count as f64),
        p99_bound,
    }
}

/// The content type of [`Metrics::gather`]'s output.
pub const TEXT_FORMAT: &str = prometheus::TEXT_FORMAT;

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// A member id as etcd labels it: lowercase hexadecimal.
pub fn member_label(id: u64) -> String {
    format!("{id:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_etcds_names_and_labels() {
        let m = metrics();
        m.has_leader.set(1);
        m.wal_fsync_duration.observe(0.003);
        m.peer_sent_bytes.with_label_values(&["2a"]).inc_by(10);
        let text = m.gather();
        assert!(text.contains("etcd_server_has_leader 1"), "{text}");
        assert!(
            text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("etcd_network_peer_sent_bytes_total{To=\"2a\"} 10"),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
