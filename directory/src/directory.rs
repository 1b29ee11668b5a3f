//! [`Directory`], this node's handle on the directory: start, accessors, local and
//! linearizable reads, placing objects, registering this node. How requests reach the
//! leader is in [`route`]; what the leader does with them, in [`leader`].

mod leader;
mod placing;
mod route;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use larder_base::{SharedClock, SystemClock};
use larder_store::Store;
use openraft::Raft;
use openraft::rt::WatchReceiver;
use tokio::sync::{mpsc, oneshot, watch};

use crate::peer_channels::PeerConnector;
use crate::raft_types::{DirectoryRaftConfig as C, RaftMetrics};
use crate::{
    DirectoryConfig, DirectoryError, DirectoryReader, DirectoryRequest, DirectoryResponse,
    DirectoryState, Jurisdiction, NodeId, NodeSpec, ObjectKey, ObjectPlacement, PeerChannels,
    PeerNode, RaftView, RegionId, SledLogStore, SledStateMachine, TonicNetworkFactory,
};

pub type DirectoryRaft = Raft<C, SledStateMachine>;

/// This node's handle on the directory: its Raft member, its local copy and the way to
/// the leader.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    me: NodeSpec,
    raft: DirectoryRaft,
    reader: DirectoryReader,
    channels: PeerChannels,
    config: DirectoryConfig,
    /// Peer address of a node to send requests to while no leader is known (`--join`).
    seed: Option<String>,
    /// Stamps records (node status changes, placements); never a decision.
    clock: SharedClock,
    /// New objects waiting to be placed in the next batch.
    placing: mpsc::Sender<placing::PlaceRequest>,
}

impl Directory {
    /// Opens the directory's storage in `store` and starts this node's Raft member.
    pub async fn start(
        me: NodeSpec,
        store: Store,
        config: DirectoryConfig,
        seed: Option<String>,
    ) -> Result<Directory, DirectoryError> {
        Directory::start_with_connector(me, store, config, seed, None).await
    }

    /// [`Directory::start`], with every peer connection of this node (directory and all
    /// other peer traffic sharing its channels) opened by `connector` when one is given:
    /// simulation tests pass their simulated network.
    pub async fn start_with_connector(
        me: NodeSpec,
        store: Store,
        config: DirectoryConfig,
        seed: Option<String>,
        connector: Option<PeerConnector>,
    ) -> Result<Directory, DirectoryError> {
        Directory::start_with(me, store, config, seed, connector, SystemClock::shared()).await
    }

    /// [`Directory::start_with_connector`], with the wall clock that stamps the
    /// directory's records (a simulation's clock in simulation tests).
    pub async fn start_with(
        me: NodeSpec,
        store: Store,
        config: DirectoryConfig,
        seed: Option<String>,
        connector: Option<PeerConnector>,
        clock: SharedClock,
    ) -> Result<Directory, DirectoryError> {
        config
            .validate()
            .map_err(|err| DirectoryError::InvalidRequest(err.to_string()))?;
        let raft_config = config
            .raft_config()
            .map_err(|err| DirectoryError::InvalidRequest(err.to_string()))?;
        let log = SledLogStore::open(store.clone())?;
        let (sm, reader) = SledStateMachine::open(store)?;
        let channels = PeerChannels::new(config.peer_rpc_timeout(), config.peer_source_ip)
            .with_connector(connector);
        let network = TonicNetworkFactory::new(channels.clone(), config.peer_message_bytes_max);
        let raft = Raft::new(me.id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|err| DirectoryError::Storage(err.to_string()))?;
        Ok(Directory {
            inner: Arc::new_cyclic(|inner| Inner {
                me,
                raft,
                reader,
                channels,
                config,
                seed,
                clock,
                placing: placing::spawn(inner.clone()),
            }),
        })
    }

    pub fn me(&self) -> &NodeSpec {
        &self.inner.me
    }

    pub fn config(&self) -> &DirectoryConfig {
        &self.inner.config
    }

    /// Wall-clock Unix milliseconds, from the clock the directory was started with.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub fn raft(&self) -> &DirectoryRaft {
        &self.inner.raft
    }

    pub fn reader(&self) -> &DirectoryReader {
        &self.inner.reader
    }

    /// The cached peer channels, for other peer traffic of this node to share.
    pub fn channels(&self) -> &PeerChannels {
        &self.inner.channels
    }

    /// Makes the given voters the first membership, unless this node's log already has
    /// one (a restart, or another voter got there first and replicated it).
    pub async fn bootstrap(
        &self,
        voters: BTreeMap<NodeId, PeerNode>,
    ) -> Result<(), DirectoryError> {
        let initialized = self
            .inner
            .raft
            .is_initialized()
            .await
            .map_err(|err| DirectoryError::Storage(err.to_string()))?;
        if initialized {
            return Ok(());
        }
        match self.inner.raft.initialize(voters).await {
            Ok(()) => {
                tracing::info!(node_id = %self.inner.me.id, "directory initialized");
                Ok(())
            }
            Err(err) if err.api_error().is_some() => {
                // Another voter initialized first; its membership reaches us by replication.
                tracing::info!(node_id = %self.inner.me.id, error = %err, "directory already initialized");
                Ok(())
            }
            Err(err) => Err(DirectoryError::Storage(err.to_string())),
        }
    }

    /// Reads the local directory without copying it.
    pub async fn read_local<T>(&self, f: impl FnOnce(&DirectoryState) -> T) -> T {
        self.inner.reader.read(f).await
    }

    /// A copy of the directory as applied on this node (may trail the leader), every
    /// placement included: for tests and one-off tools, never for a path that runs per
    /// request, per change or per tick (use [`Directory::read_local`]).
    pub async fn local_state(&self) -> DirectoryState {
        self.inner.reader.snapshot().await
    }

    /// Reads the directory including every change committed before this call, in place
    /// (no copy of the whole directory).
    pub async fn read_linearizable<T>(
        &self,
        f: impl FnOnce(&DirectoryState) -> T,
    ) -> Result<T, DirectoryError> {
        let index = match self.request(DirectoryRequest::ReadIndex).await? {
            DirectoryResponse::ReadIndex(index) => index,
            other => {
                return Err(DirectoryError::Protocol(format!(
                    "read-index answered with {other:?}"
                )));
            }
        };
        self.wait_applied(index, self.inner.config.peer_rpc_timeout())
            .await?;
        Ok(self.read_local(f).await)
    }

    /// Waits until this node has applied the log up to `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), DirectoryError> {
        let mut changes = self.inner.reader.subscribe();
        let wait = async {
            loop {
                if *changes.borrow_and_update() >= index {
                    return Ok(());
                }
                if changes.changed().await.is_err() {
                    return Err(DirectoryError::ShuttingDown);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| DirectoryError::Timeout {
                what: format!("the local directory to apply index {index}"),
                ms: timeout.as_millis() as u64,
            })?
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.inner.raft.metrics().borrow_watched().clone()
    }

    /// Raft state as seen from this node.
    pub fn raft_view(&self) -> RaftView {
        RaftView::from_metrics(&self.metrics())
    }

    fn peer_addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.peer_addr.clone())
    }

    /// The placement of an object, placing it first if it has none: owner and replicas
    /// chosen among the up nodes of `region` (with `jurisdiction`), `preferred` (the node
    /// the call came in at) owning it when eligible and not much more loaded than the
    /// least-loaded ([`crate::Owner::Near`]). Racing callers all get the one placement the log
    /// kept first. Placed in a batch with whatever else this node is placing.
    pub async fn place_object(
        &self,
        key: ObjectKey,
        region: RegionId,
        jurisdiction: Option<Jurisdiction>,
        replication_factor: usize,
        preferred: Option<NodeId>,
    ) -> Result<ObjectPlacement, DirectoryError> {
        if let Some(existing) = self.read_local(|s| s.placement(&key).cloned()).await {
            return Ok(existing);
        }
        let (answer, answered) = oneshot::channel();
        let request = placing::PlaceRequest {
            key,
            region,
            jurisdiction,
            replication_factor,
            preferred,
            answer,
        };
        self.inner
            .placing
            .send(request)
            .await
            .map_err(|_| DirectoryError::ShuttingDown)?;
        answered.await.map_err(|_| DirectoryError::ShuttingDown)?
    }

    /// Registers this node in the directory (retrying until a leader accepts it), so
    /// every node learns its region and addresses.
    pub async fn register_self(&self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            // Started with --join: an explicit join, which takes back a removed node.
            let req = if self.inner.seed.is_some() {
                DirectoryRequest::Rejoin(self.inner.me.clone())
            } else {
                DirectoryRequest::Join(self.inner.me.clone())
            };
            let result = tokio::select! {
                result = self.request(req) => result,
                _ = shutdown.changed() => return,
            };
            match result {
                Ok(_) => {
                    tracing::info!(node_id = %self.inner.me.id, region = %self.inner.me.region, "registered in the directory");
                    return;
                }
                Err(DirectoryError::NodeRemoved(_)) => {
                    // The removal watch says so and stops the api; nothing to retry.
                    return;
                }
                Err(err) => {
                    tracing::info!(node_id = %self.inner.me.id, error = %err, "registration not accepted yet");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Stops the Raft member. Storage was flushed at every step, so nothing is pending.
    pub async fn shutdown(&self) {
        if let Err(err) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %err, "directory Raft shutdown failed");
        }
    }
}
