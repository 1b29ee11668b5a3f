//! How a directory request reaches the leader: run here, forwarded to the leader this
//! node knows, or sent through the `--join` seed. [`route`] decides, purely; the rest
//! sends and retries.

use std::time::Duration;

use larder_proto::peer::directory_client::DirectoryClient;
use openraft::ServerState;

use super::Directory;
use crate::peer_wire;
use crate::{DirectoryError, DirectoryRequest, DirectoryResponse, NodeId};

/// A request forwarded more often than this is answered with `NotLeader`, so nodes with
/// stale views of the leader cannot bounce it around.
const FORWARD_HOPS_MAX: u32 = 2;

impl Directory {
    /// Carries out a request at the leader, forwarding it there if this node is not it.
    /// Retries with backoff while there is no reachable leader.
    pub async fn request(
        &self,
        req: DirectoryRequest,
    ) -> Result<DirectoryResponse, DirectoryError> {
        self.request_with_hops(req, 0).await
    }

    pub(crate) async fn request_with_hops(
        &self,
        req: DirectoryRequest,
        hops: u32,
    ) -> Result<DirectoryResponse, DirectoryError> {
        let mut backoff = Duration::from_millis(50);
        let mut last_err = DirectoryError::NoLeader;
        // A forwarded request gets one attempt here: the node that forwarded it owns the
        // retries, so a slow retry loop here cannot outlive its deadline and run twice.
        let attempts = if hops > 0 {
            1
        } else {
            self.inner.config.request_attempts_max
        };
        for _ in 0..attempts {
            let result = match route(&self.route_view(hops)) {
                // Forwarded too often: retrying here would bounce it on.
                Route::NotLeader(leader) => return Err(self.not_leader(leader).await),
                route => self.send(route, &req, hops).await,
            };
            match result {
                Err(err) if err.is_retryable() => {
                    tracing::debug!(request = %req, error = %err, "directory request will be retried");
                    last_err = err;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
        Err(last_err)
    }

    /// What [`route`] decides from, as this node's Raft metrics say now.
    fn route_view(&self, hops: u32) -> RouteView {
        let metrics = self.metrics();
        let me = self.inner.me.id;
        RouteView {
            me,
            leader: metrics.current_leader,
            leading: metrics.state == ServerState::Leader,
            member: metrics
                .membership_config
                .membership()
                .get_node(&me)
                .is_some(),
            hops,
        }
    }

    /// Runs the request here or sends it on, as `route` says.
    async fn send(
        &self,
        route: Route,
        req: &DirectoryRequest,
        hops: u32,
    ) -> Result<DirectoryResponse, DirectoryError> {
        match route {
            Route::Execute => self.execute(req.clone()).await,
            Route::Leader(leader) => match self.peer_addr_of(leader) {
                Some(addr) => self.forward(&addr, req, hops).await,
                None => Err(DirectoryError::NoLeader),
            },
            Route::Seed => match &self.inner.seed {
                Some(seed) => self.forward(seed, req, hops).await,
                None => Err(DirectoryError::NoLeader),
            },
            Route::NotLeader(leader) => Err(self.not_leader(leader).await),
        }
    }

    /// The answer to a request forwarded too often: the leader this node knows, and its
    /// API address so that a client can go there itself.
    async fn not_leader(&self, leader: Option<NodeId>) -> DirectoryError {
        DirectoryError::NotLeader {
            leader,
            leader_api_addr: match leader {
                Some(id) => self.api_addr_of(id).await,
                None => None,
            },
        }
    }

    async fn api_addr_of(&self, id: NodeId) -> Option<String> {
        self.read_local(|state| state.node(id).map(|record| record.spec.api_addr.clone()))
            .await
    }

    async fn forward(
        &self,
        addr: &str,
        req: &DirectoryRequest,
        hops: u32,
    ) -> Result<DirectoryResponse, DirectoryError> {
        let channel = self.inner.channels.channel(addr)?;
        let bytes_max = self.inner.config.peer_message_bytes_max;
        let mut client = DirectoryClient::new(channel)
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max);
        let mut request = tonic::Request::new(peer_wire::DIRECTORY_WIRE.seal(&(hops + 1, req))?);
        request.set_timeout(self.inner.config.peer_rpc_timeout());
        let response =
            client
                .forward(request)
                .await
                .map_err(|status| DirectoryError::Unreachable {
                    peer: addr.to_string(),
                    reason: format!("{}: {}", status.code(), status.message()),
                })?;
        let result: Result<DirectoryResponse, DirectoryError> =
            peer_wire::DIRECTORY_WIRE.open(response.get_ref())?;
        result
    }
}

/// What [`route`] decides from.
struct RouteView {
    me: NodeId,
    /// The leader this node's Raft view names.
    leader: Option<NodeId>,
    /// Whether this node's Raft member is leader now.
    leading: bool,
    /// Whether this node is in the membership (voter or learner).
    member: bool,
    hops: u32,
}

/// Where a directory request goes from this node.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Execute,
    Leader(NodeId),
    /// Through the `--join` seed, if there is one.
    Seed,
    /// Forwarded too often: answer with the leader this node knows.
    NotLeader(Option<NodeId>),
}

/// Only a member hears from the leader. A node outside the membership — new, or removed
/// and coming back on its old data — knows at best a stale leader: the one its log
/// names, or itself, when it led before it was removed (its persisted vote). Asking
/// that one would go on for ever (the nemesis's membership changes found a removed
/// leader that never rejoined); it goes through its seed until a leader adds it.
fn route(view: &RouteView) -> Route {
    let leader = view.leader.filter(|_| view.member);
    match leader {
        Some(leader) if leader == view.me && view.leading => Route::Execute,
        _ if view.hops >= FORWARD_HOPS_MAX => Route::NotLeader(leader),
        Some(leader) if leader != view.me => Route::Leader(leader),
        _ => Route::Seed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(leader: Option<u64>, leading: bool, member: bool, hops: u32) -> RouteView {
        RouteView {
            me: NodeId(2),
            leader: leader.map(NodeId),
            leading,
            member,
            hops,
        }
    }

    #[test]
    fn requests_go_to_the_leader_a_member_knows() {
        assert_eq!(route(&view(Some(2), true, true, 0)), Route::Execute);
        assert_eq!(
            route(&view(Some(1), false, true, 0)),
            Route::Leader(NodeId(1))
        );
        assert_eq!(route(&view(None, false, true, 0)), Route::Seed);
        assert_eq!(
            route(&view(Some(1), false, true, FORWARD_HOPS_MAX)),
            Route::NotLeader(Some(NodeId(1)))
        );
        // Still leader in name only (stepping down): nobody to execute it here.
        assert_eq!(route(&view(Some(2), false, true, 0)), Route::Seed);
    }

    /// Regression (nemesis `members`): node 2 led, removed itself, and restarted with
    /// `--join` on its old data. Its persisted vote named it leader; every registration
    /// was run locally and refused ("not the directory leader"), and it never rejoined.
    #[test]
    fn a_node_outside_the_membership_goes_through_its_seed() {
        assert_eq!(route(&view(Some(2), false, false, 0)), Route::Seed);
        assert_eq!(route(&view(Some(1), false, false, 0)), Route::Seed);
        assert_eq!(route(&view(None, false, false, 0)), Route::Seed);
    }
}
