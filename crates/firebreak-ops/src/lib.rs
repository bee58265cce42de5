//! The operations plane that every member carries: HTTP beside gRPC on the
//! client port, as etcd serves it.
//!
//! | path | answer |
//! | --- | --- |
//! | `/metrics` | Prometheus text format, with etcd's names ([`firebreak_metrics`]) |
//! | `/health` | etcd's `{"health":"true","reason":""}`; 503 without a leader, with an alarm, or when a linearizable read fails |
//! | `/livez` | `ok` while the process serves |
//! | `/readyz` | `ok` once the member knows a leader that has a quorum, 503 before |
//! | `/version` | etcd's `{"etcdserver":..,"etcdcluster":..}` |
//! | `/api/status` | this member's own report ([`firebreak_raft::report::MemberReport`]) |
//! | `/api/cluster` | the cluster as this member sees it ([`view::ClusterView`]), the risk included |
//! | `/dashboard` | the live dashboard, served from the binary |
//!
//! Nothing here needs another member: with the others dead, a member
//! still answers every path and says what it cannot see.

pub mod risk;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use firebreak_raft::report::{MemberReport, Role};
use firebreak_raft::Node;
use serde::Serialize;

/// The dashboard page: HTML, CSS and script in one file, no network.
const DASHBOARD: &str = include_str!("../assets/dashboard.html");

/// How long `/health` waits for its linearizable read.
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP routes of `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/api/status", get(status))
        .route("/api/cluster", get(cluster))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/", get(dashboard))
        .with_state(node)
}

/// Whether the member knows a leader it can rely on: itself with a
/// quorum, or another member it follows.
fn has_leader(report: &MemberReport) -> bool {
    match report.role {
        Role::Leader => report.leader_has_quorum == Some(true),
        Role::Follower | Role::Learner => report.leader.is_some(),
        Role::Candidate | Role::Stopped => false,
    }
}

/// Sets the gauges that describe state, from the member's report.
async fn refresh(node: &Arc<Node>) {
    let m = firebreak_metrics::metrics();
    let own = node.report();
    let status = node.status();
    m.has_leader.set(has_leader(&own) as i64);
    // etcd's leader steps down once it has not heard from a quorum within
    // an election timeout (CheckQuorum); openraft's keeps its role, so a
    // leader without a quorum is not counted as one, lest the isolated old
    // leader and the new one both say 1.
    m.is_leader.set((own.role == Role::Leader && has_leader(&own)) as i64);
    m.is_learner.set((own.role == Role::Learner) as i64);
    m.proposals_committed.set(own.commit_index as i64);
    m.proposals_applied.set(own.applied_index as i64);
    m.db_total_size.set(status.db_size);
    m.db_total_size_debugging.set(status.db_size);
    m.db_total_size_in_use.set(status.db_size_in_use);
    m.quota_backend_bytes.set(status.db_size_quota);
    m.server_version.reset();
    m.server_version
        .with_label_values(&[firebreak_metrics::ETCD_VERSION])
        .set(1);
    m.server_id.reset();
    m.server_id
        .with_label_values(&[&firebreak_metrics::member_label(own.id)])
        .set(1);
    m.member_info.reset();
    let d = &own.domains;
    m.member_info
        .with_label_values(&[
            &firebreak_metrics::member_label(own.id),
            &own.name,
            &d.datacenter,
            d.room.as_deref().unwrap_or(""),
            d.rack.as_deref().unwrap_or(""),
            d.host.as_deref().unwrap_or(""),
        ])
        .set(1);

    m.follower_lag_entries.reset();
    m.follower_lag_seconds.reset();
    for p in own.replication.iter().flatten() {
        let Some(member) = own.members.iter().find(|c| c.id == p.id) else {
            continue;
        };
        let labels = [member.name.as_str(), member.domains.datacenter.as_str()];
        if let Some(entries) = p.lag_entries {
            m.follower_lag_entries.with_label_values(&labels).set(entries as i64);
        }
        if let Some(seconds) = p.lag_seconds {
            m.follower_lag_seconds.with_label_values(&labels).set(seconds);
        }
    }

    // The risk needs the leader's report: this member's own, or asked.
    let members = own.members.clone();
    let leader_report = match own.leader {
        Some(id) if id == own.id => Some(own.clone()),
        Some(id) => node.peer_report(id, view::PEER_REPORT_TIMEOUT).await.ok(),
        None => None,
    };
    let reachable = std::iter::once(own.id).collect();
    let risk = risk::assess(&members, leader_report.as_ref(), &reachable);
    m.risk_known.set(risk.known as i64);
    m.newest_write_held_in.reset();
    if let Some(w) = &risk.newest_write {
        for dc in risk.datacenters.keys() {
            m.newest_write_held_in
                .with_label_values(&[dc])
                .set(w.held_durably_in.contains(dc) as i64);
        }
    }
    m.loss_loses_writes.reset();
    m.loss_keeps_quorum.reset();
    m.loss_recovery_seconds.reset();
    for (dc, loss) in &risk.datacenters {
        if let Some(loses) = loss.loses_acknowledged_writes {
            m.loss_loses_writes.with_label_values(&[dc]).set(loses as i64);
        }
        m.loss_keeps_quorum
            .with_label_values(&[dc])
            .set(loss.keeps_quorum as i64);
        if let Some(ms) = loss.predicted_recovery_ms {
            m.loss_recovery_seconds.with_label_values(&[dc]).set(ms as f64 / 1000.0);
        }
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    refresh(&node).await;
    (
        [(header::CONTENT_TYPE, firebreak_metrics::TEXT_FORMAT)],
        firebreak_metrics::metrics().gather(),
    )
        .into_response()
}

/// etcd's `/health` answer.
#[derive(Serialize)]
struct Health {
    health: &'static str,
    reason: String,
}

async fn health(State(node): State<Arc<Node>>) -> Response {
    let own = node.report();
    let reason = if !has_leader(&own) {
        Some("RAFT NO LEADER".to_string())
    } else if let Some(alarm) = own.alarms.first() {
        Some(format!("ALARM {alarm}"))
    } else {
        match tokio::time::timeout(HEALTH_READ_TIMEOUT, node.read_barrier()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("QGET ERROR: {e}")),
            Err(_) => Some("QGET ERROR: timed out".to_string()),
        }
    };
    let (code, body) = match reason {
        None => (
            StatusCode::OK,
            Health {
                health: "true",
                reason: String::new(),
            },
        ),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                health: "false",
                reason,
            },
        ),
    };
    (code, Json(body)).into_response()
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(node): State<Arc<Node>>) -> Response {
    if has_leader(&node.report()) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: no leader\n").into_response()
    }
}

async fn version() -> Json<BTreeMap<&'static str, &'static str>> {
    Json(BTreeMap::from([
        ("etcdserver", firebreak_metrics::ETCD_VERSION),
        ("etcdcluster", firebreak_metrics::ETCD_CLUSTER_VERSION),
    ]))
}

async fn status(State(node): State<Arc<Node>>) -> Json<MemberReport> {
    Json(node.report())
}

async fn cluster(State(node): State<Arc<Node>>) -> Json<view::ClusterView> {
    Json(view::gather(&node).await)
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD,
    )
        .into_response()
}
