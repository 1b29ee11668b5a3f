//! Liveness and readiness, for load balancers and orchestrators: `GET /livez` and
//! `GET /readyz` on the metrics listener, and the same readiness in gRPC health
//! (`grpc.health.v1`) on the api listener.
//!
//! Live: the process serves HTTP. Ready: it can serve its data as the cluster has it —
//! the store has not failed, it was not removed from the cluster, its directory copy
//! knows a leader and is within [`APPLY_LAG_MAX`] entries of what it knows committed,
//! and its KV is not waiting for a full re-sync. A node that is not ready says why.

use std::time::Duration;

use larder_directory::Directory;
use larder_kv::Kv;
use tokio::sync::watch;
use tonic_health::server::HealthReporter;

/// Committed directory entries a ready node may not have applied yet.
pub const APPLY_LAG_MAX: u64 = 1000;
/// How often gRPC health is brought in line with readiness.
const GRPC_HEALTH_EVERY: Duration = Duration::from_secs(1);

/// What readiness is judged from; cheap to clone.
#[derive(Clone)]
pub struct Health {
    pub directory: Directory,
    pub kv: Kv,
    pub removed: watch::Receiver<bool>,
}

impl Health {
    /// Why this node is not ready (empty: ready).
    pub fn not_ready(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(failure) = self.kv.store_failure() {
            reasons.push(format!("storage failed: {failure}"));
        }
        if *self.removed.borrow() {
            reasons.push("this node was removed from the cluster".to_string());
        }
        let view = self.directory.raft_view();
        if view.leader.is_none() {
            reasons.push("the directory has no leader this node knows of".to_string());
        }
        let lag = view.committed_index.saturating_sub(view.applied_index);
        if lag > APPLY_LAG_MAX {
            reasons.push(format!(
                "the directory copy is {lag} entries behind what is committed (at most {APPLY_LAG_MAX})"
            ));
        }
        if self.kv.needs_full_resync() {
            reasons.push("the KV waits for a full re-sync with a peer".to_string());
        }
        reasons
    }

    /// Keeps gRPC health (the server as a whole and each api service) serving exactly
    /// while this node is ready.
    pub async fn follow_in_grpc(
        self,
        reporter: HealthReporter,
        services: Vec<&'static str>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(GRPC_HEALTH_EVERY);
        let mut was_ready = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            let ready = self.not_ready().is_empty();
            if was_ready == Some(ready) {
                continue;
            }
            was_ready = Some(ready);
            for service in std::iter::once("").chain(services.iter().copied()) {
                let status = if ready {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                reporter.set_service_status(service, status).await;
            }
        }
    }
}
