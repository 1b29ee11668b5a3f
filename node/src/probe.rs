//! Is a peer reachable right now? Asked by `status` (with `check_peers`), which must
//! show a node this one cannot reach within about a second — long before the directory
//! marks it down (`node_down_after_ms`), and also when this node is not the leader
//! (only the leader's liveness checks see heartbeats).
//!
//! A probe is a gRPC health check of the peer's api listener with a short deadline: a
//! dead node refuses the connection at once, a paused or cut-off one misses the
//! deadline (a TCP connect alone would succeed against a paused process).

use std::time::Duration;

use futures::StreamExt;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// How long a probe waits for the answer (connecting included).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Probes in flight at once.
const PROBES_IN_FLIGHT_MAX: usize = 64;

/// Whether the node at api address `api_addr` answers a health check in time.
pub async fn reachable(api_addr: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{api_addr}")) else {
        return false;
    };
    let probe = async {
        let channel = endpoint
            .connect_timeout(PROBE_TIMEOUT)
            .connect()
            .await
            .ok()?;
        // Any answer: reachable (a node that is not ready answers NOT_SERVING).
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .ok()?;
        Some(true)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(true))
    )
}

/// [`reachable`] for each address, in order, probed concurrently.
pub async fn reachable_all(api_addrs: Vec<String>) -> Vec<bool> {
    futures::stream::iter(api_addrs)
        .map(|addr| async move { reachable(&addr).await })
        .buffered(PROBES_IN_FLIGHT_MAX)
        .collect()
        .await
}
