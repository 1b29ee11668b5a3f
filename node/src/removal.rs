//! A node removed from the cluster learns it and stops serving.
//!
//! The leader records a removal before it changes the membership, so a removed node
//! that is up receives the record in its own copy of the directory. One that was down
//! or cut off then is told by the leader: at start (its registration is refused) and by
//! a check every [`CHECK_INTERVAL`]. From then on the api refuses every call but
//! `Status` with `FAILED_PRECONDITION`, and `Status` says `removed` (see
//! [`RefuseWhenRemoved`]). The removal is durable in the directory's state: a restart
//! does not bring the node back, only an explicit join (`--join`) does.

use std::time::Duration;

use std::task::Poll;

use futures::future::{Either, Ready, ready};
use larder_directory::{Directory, DirectoryError, DirectoryRequest, NodeId};
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;

/// How often a node asks the leader whether it is still a member.
const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Starts watching for this node's removal; the receiver turns true once removed.
pub fn spawn(
    directory: Directory,
    shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    (rx, tokio::spawn(run(directory, tx, shutdown)))
}

async fn run(
    directory: Directory,
    removed: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let me = directory.me().id;
    let mut applied = directory.reader().subscribe();
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The leader's last answer: removed or not (none yet).
    let mut leader_says_removed = false;
    loop {
        let here = directory
            .read_local(|s| s.removed_nodes.contains(&me))
            .await;
        // Not a latch: a node removed, then started again with --join, is taken back.
        let now = here || leader_says_removed;
        let was = removed.send_replace(now);
        if now && !was {
            tracing::error!(node_id = %me, "this node was removed from the cluster: it serves nothing from now on; to take it back, start it with --join (or add a new node with a new id)");
        } else if was && !now {
            tracing::info!(node_id = %me, "this node is a member of the cluster again");
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = ticker.tick() => {
                // Raced with shutdown: with no leader, a request retries for seconds.
                let asked = tokio::select! {
                    asked = directory.request(DirectoryRequest::StillMember(me)) => asked,
                    _ = shutdown.changed() => return,
                };
                match asked {
                    Err(DirectoryError::NodeRemoved(_)) => leader_says_removed = true,
                    Ok(_) => leader_says_removed = false,
                    // No leader reachable: keep what we knew.
                    Err(_) => {}
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The api layer that, once this node is removed, answers every call but `Admin.Status`
/// (and gRPC's own health and reflection) with `FAILED_PRECONDITION`, saying so.
#[derive(Clone)]
pub struct RefuseWhenRemoved {
    removed: watch::Receiver<bool>,
    me: NodeId,
}

impl RefuseWhenRemoved {
    pub fn new(removed: watch::Receiver<bool>, me: NodeId) -> RefuseWhenRemoved {
        RefuseWhenRemoved { removed, me }
    }
}

impl<S> tower::Layer<S> for RefuseWhenRemoved {
    type Service = Refusing<S>;

    fn layer(&self, inner: S) -> Refusing<S> {
        Refusing {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`RefuseWhenRemoved`].
#[derive(Clone)]
pub struct Refusing<S> {
    inner: S,
    layer: RefuseWhenRemoved,
}

/// Paths a removed node still serves.
fn still_served(path: &str) -> bool {
    path == "/larder.v1.Admin/Status" || path.starts_with("/grpc.")
}

impl<S, B> tower::Service<http::Request<B>> for Refusing<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<http::Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if *self.layer.removed.borrow() && !still_served(request.uri().path()) {
            let status = Status::failed_precondition(format!(
                "node {} was removed from the cluster and serves nothing; call another node",
                self.layer.me
            ));
            return Either::Left(ready(Ok(status.into_http())));
        }
        Either::Right(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::still_served;

    #[test]
    fn a_removed_node_still_answers_status_health_and_reflection() {
        assert!(still_served("/larder.v1.Admin/Status"));
        assert!(still_served("/grpc.health.v1.Health/Check"));
        assert!(still_served(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!still_served("/larder.v1.Kv/Get"));
        assert!(!still_served("/larder.v1.Admin/RemoveNode"));
    }
}
