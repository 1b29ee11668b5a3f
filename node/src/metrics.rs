//! Prometheus metrics over HTTP (`GET /metrics`), read from the directory at scrape time,
//! and the liveness and readiness probes (`GET /livez`, `GET /readyz`; `crate::health`).

use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use larder_directory::{Directory, NodeStatus};
use larder_kv::Kv;
use larder_objects::ObjectHost;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::health::Health;

pub fn router(directory: Directory, kv: Kv, objects: ObjectHost, health: Health) -> Router {
    let probes = Router::new()
        .route("/livez", get(|| async { "live\n" }))
        .route("/readyz", get(readyz))
        .with_state(health);
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((directory, kv, objects))
        .merge(probes)
}

/// 200 "ready", or 503 with one reason per line.
async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let reasons = health.not_ready();
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        let mut body = "not ready:\n".to_string();
        for reason in reasons {
            body.push_str(&format!("- {reason}\n"));
        }
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

async fn scrape(
    State((directory, kv, objects)): State<(Directory, Kv, ObjectHost)>,
) -> impl IntoResponse {
    let mut registry = Registry::with_prefix("larder");
    directory_metrics(&mut registry, &directory).await;
    for (name, help, value) in kv.stats().counters() {
        counter(&mut registry, name, help, value);
    }
    objects_metrics(&mut registry, &objects);
    let behind: u64 = kv.lag().values().map(|lag| lag.writes_behind).sum();
    gauge(
        &mut registry,
        "kv_writes_behind",
        "KV writes of other nodes known but not yet received",
        behind,
    );
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            err.to_string(),
        ),
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge<u64, AtomicU64> = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter<u64, AtomicU64> = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// The directory's Raft state and the nodes it records up and down.
async fn directory_metrics(registry: &mut Registry, directory: &Directory) {
    let view = directory.raft_view();
    let (up, nodes) = directory
        .read_local(|state| {
            let up = state.nodes.values().filter(|n| n.status == NodeStatus::Up);
            (up.count() as u64, state.nodes.len() as u64)
        })
        .await;
    gauge(
        registry,
        "raft_term",
        "Current Raft term of the directory",
        view.term,
    );
    gauge(
        registry,
        "raft_is_leader",
        "1 if this node leads the directory",
        u64::from(view.state == "leader"),
    );
    gauge(
        registry,
        "raft_commit_index",
        "Last committed directory log index",
        view.committed_index,
    );
    gauge(
        registry,
        "raft_applied_index",
        "Last applied directory log index",
        view.applied_index,
    );
    gauge(
        registry,
        "raft_voters",
        "Voters in the directory group",
        view.voters.len() as u64,
    );
    gauge(registry, "nodes_up", "Nodes recorded up", up);
    gauge(registry, "nodes_down", "Nodes recorded down", nodes - up);
}

fn objects_metrics(registry: &mut Registry, objects: &ObjectHost) {
    counter(
        registry,
        "objects_copy_writes",
        "Object owners' writes applied to copies on this node",
        objects.copy_writes_applied(),
    );
    gauge(
        registry,
        "objects_active",
        "Objects in memory on this node (owned, with a running actor)",
        objects.active_objects() as u64,
    );
}
