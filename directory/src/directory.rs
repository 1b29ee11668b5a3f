use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use larder_base::{SharedClock, SystemClock};
use larder_proto::peer::directory_client::DirectoryClient;
use larder_store::Store;
use openraft::rt::WatchReceiver;
use openraft::{ChangeMembers, Raft, ReadPolicy, ServerState};
use tokio::sync::watch;

use crate::peer_channels::PeerConnector;
use crate::peer_wire;
use crate::raft_types::{DirectoryRaftConfig as C, RaftMetrics};
use crate::{
    Command, CommandOutcome, DirectoryConfig, DirectoryError, DirectoryReader, DirectoryRequest,
    DirectoryResponse, DirectoryState, Jurisdiction, MembershipView, NodeId, NodeSpec, ObjectKey,
    ObjectPlacement, PeerChannels, PeerNode, RegionId, SledLogStore, SledStateMachine,
    TonicNetworkFactory, choose_replicas,
};

pub type DirectoryRaft = Raft<C, SledStateMachine>;

/// A request forwarded more often than this is answered with `NotLeader`, so nodes with
/// stale views of the leader cannot bounce it around.
const FORWARD_HOPS_MAX: u32 = 2;

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
}

/// Role of a node in the directory's Raft membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftRole {
    None,
    Learner,
    Voter,
}

/// A view of the Raft group from this node.
#[derive(Debug, Clone)]
pub struct RaftView {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub state: &'static str,
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl RaftView {
    pub fn role(&self, id: NodeId) -> RaftRole {
        if self.voters.contains(&id) {
            RaftRole::Voter
        } else if self.learners.contains(&id) {
            RaftRole::Learner
        } else {
            RaftRole::None
        }
    }
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
            inner: Arc::new(Inner {
                me,
                raft,
                reader,
                channels,
                config,
                seed,
                clock,
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

    /// The directory as applied on this node (may trail the leader).
    pub async fn local_state(&self) -> DirectoryState {
        self.inner.reader.snapshot().await
    }

    /// The directory including every change committed before this call.
    pub async fn linearizable_state(&self) -> Result<DirectoryState, DirectoryError> {
        self.read_linearizable(DirectoryState::clone).await
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
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        RaftView {
            leader: metrics.current_leader,
            term: metrics.current_term,
            committed_index: metrics.local_committed.map_or(0, |id| id.index),
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            state: match metrics.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            },
            voters,
            learners,
        }
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

    async fn api_addr_of(&self, id: NodeId) -> Option<String> {
        self.local_state()
            .await
            .node(id)
            .map(|record| record.spec.api_addr.clone())
    }

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
            let metrics = self.metrics();
            let me = self.inner.me.id;
            let view = RouteView {
                me,
                leader: metrics.current_leader,
                leading: metrics.state == ServerState::Leader,
                member: metrics
                    .membership_config
                    .membership()
                    .get_node(&me)
                    .is_some(),
                hops,
            };
            let result = match route(&view) {
                Route::Execute => self.execute(req.clone()).await,
                Route::NotLeader(leader) => {
                    return Err(DirectoryError::NotLeader {
                        leader,
                        leader_api_addr: match leader {
                            Some(id) => self.api_addr_of(id).await,
                            None => None,
                        },
                    });
                }
                Route::Leader(leader) => match self.peer_addr_of(leader) {
                    Some(addr) => self.forward(&addr, &req, hops).await,
                    None => Err(DirectoryError::NoLeader),
                },
                Route::Seed => match &self.inner.seed {
                    Some(seed) => self.forward(seed, &req, hops).await,
                    None => Err(DirectoryError::NoLeader),
                },
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

    /// Runs a request on this node, which believes it is the leader.
    async fn execute(&self, req: DirectoryRequest) -> Result<DirectoryResponse, DirectoryError> {
        let raft = &self.inner.raft;
        match req {
            DirectoryRequest::Write(command) => self.write(command).await,
            DirectoryRequest::Join(spec) => {
                let id = spec.id;
                let peer_addr = spec.peer_addr.clone();
                let written = self
                    .write(Command::RegisterNode {
                        spec,
                        at_ms: self.now_ms(),
                    })
                    .await?;
                match self.peer_addr_of(id) {
                    Some(known) if known == peer_addr => Ok(written),
                    Some(_) => {
                        // The node came back on another address: update it in place.
                        let nodes = BTreeMap::from([(id, PeerNode { peer_addr })]);
                        let resp = raft
                            .change_membership(ChangeMembers::SetNodes(nodes), true)
                            .await
                            .map_err(map_write_error)?;
                        Ok(DirectoryResponse::Membership(
                            self.membership_view(resp.log_id.index),
                        ))
                    }
                    None => {
                        let resp = raft
                            .add_learner(id, PeerNode { peer_addr }, false)
                            .await
                            .map_err(map_write_error)?;
                        Ok(DirectoryResponse::Membership(
                            self.membership_view(resp.log_id.index),
                        ))
                    }
                }
            }
            DirectoryRequest::AddLearner { id, peer_addr } => {
                let peer_addr = match peer_addr {
                    Some(addr) => addr,
                    None => self
                        .local_state()
                        .await
                        .node(id)
                        .map(|record| record.spec.peer_addr.clone())
                        .ok_or(DirectoryError::NodeNotFound(id))?,
                };
                let resp = raft
                    .add_learner(id, PeerNode { peer_addr }, true)
                    .await
                    .map_err(map_write_error)?;
                Ok(DirectoryResponse::Membership(
                    self.membership_view(resp.log_id.index),
                ))
            }
            DirectoryRequest::AddVoter(id) => {
                match self.raft_view().role(id) {
                    RaftRole::Voter => {
                        let index = self.raft_view().committed_index;
                        return Ok(DirectoryResponse::Membership(self.membership_view(index)));
                    }
                    RaftRole::None => return Err(DirectoryError::NotALearner(id)),
                    RaftRole::Learner => {}
                }
                let resp = raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(map_write_error)?;
                Ok(DirectoryResponse::Membership(
                    self.membership_view(resp.log_id.index),
                ))
            }
            DirectoryRequest::RemoveVoter(id) => {
                let view = self.raft_view();
                if !view.voters.contains(&id) {
                    return Err(DirectoryError::NotAVoter(id));
                }
                if view.voters.len() == 1 {
                    return Err(DirectoryError::LastVoter(id));
                }
                let resp = raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
                    .await
                    .map_err(map_write_error)?;
                Ok(DirectoryResponse::Membership(
                    self.membership_view(resp.log_id.index),
                ))
            }
            DirectoryRequest::RemoveNode(id) => self.remove_node(id).await,
            DirectoryRequest::TransferLeader(id) => self.transfer_leader(id).await,
            DirectoryRequest::ReadIndex => {
                let read = raft
                    .ensure_linearizable(ReadPolicy::ReadIndex)
                    .await
                    .map_err(map_read_index_error)?;
                Ok(DirectoryResponse::ReadIndex(read.index()))
            }
        }
    }

    /// Proposes `command` through this node's own Raft member, which must lead: never
    /// forwarded and never retried, for commands whose meaning depends on the proposer's
    /// own view (liveness marks). A node that no longer leads gets `NotLeader`.
    pub async fn propose_as_leader(
        &self,
        command: Command,
    ) -> Result<CommandOutcome, DirectoryError> {
        let resp = self
            .inner
            .raft
            .client_write(command)
            .await
            .map_err(map_write_error)?;
        Ok(resp.data)
    }

    async fn write(&self, command: Command) -> Result<DirectoryResponse, DirectoryError> {
        let resp = self
            .inner
            .raft
            .client_write(command)
            .await
            .map_err(map_write_error)?;
        Ok(DirectoryResponse::Outcome {
            outcome: resp.data,
            log_index: resp.log_id.index,
        })
    }

    async fn remove_node(&self, id: NodeId) -> Result<DirectoryResponse, DirectoryError> {
        let raft = &self.inner.raft;
        let view = self.raft_view();
        let known = self.local_state().await.node(id).is_some();
        match view.role(id) {
            RaftRole::Voter => {
                if view.voters.len() == 1 {
                    return Err(DirectoryError::LastVoter(id));
                }
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await
                    .map_err(map_write_error)?;
            }
            RaftRole::Learner => {
                raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await
                    .map_err(map_write_error)?;
            }
            RaftRole::None if !known => return Err(DirectoryError::NodeNotFound(id)),
            RaftRole::None => {}
        }
        let log_index = if known {
            match self.write(Command::RemoveNode { id }).await? {
                DirectoryResponse::Outcome { log_index, .. } => log_index,
                _ => 0,
            }
        } else {
            self.raft_view().committed_index
        };
        Ok(DirectoryResponse::Membership(
            self.membership_view(log_index),
        ))
    }

    async fn transfer_leader(&self, id: NodeId) -> Result<DirectoryResponse, DirectoryError> {
        let view = self.raft_view();
        if !view.voters.contains(&id) {
            return Err(DirectoryError::NotAVoter(id));
        }
        if view.leader == Some(id) {
            return Ok(DirectoryResponse::Membership(
                self.membership_view(view.committed_index),
            ));
        }
        self.inner
            .raft
            .trigger()
            .transfer_leader(id)
            .await
            .map_err(|err| DirectoryError::Rejected(err.to_string()))?;
        let timeout = Duration::from_millis(self.inner.config.election_timeout_max_ms * 2);
        self.inner
            .raft
            .wait(Some(timeout))
            .current_leader(id, "leadership transfer")
            .await
            .map_err(|_| DirectoryError::Timeout {
                what: format!("node {id} to take over leadership"),
                ms: timeout.as_millis() as u64,
            })?;
        Ok(DirectoryResponse::Membership(
            self.membership_view(self.raft_view().committed_index),
        ))
    }

    fn membership_view(&self, log_index: u64) -> MembershipView {
        let view = self.raft_view();
        MembershipView {
            voters: view.voters.into_iter().collect(),
            learners: view.learners.into_iter().collect(),
            log_index,
        }
    }

    /// The placement of an object, placing it first if it has none: owner and replicas
    /// chosen among the up nodes of `region` (with `jurisdiction`), `preferred` owning it
    /// when eligible. Racing callers all get the one placement the log kept first.
    pub async fn place_object(
        &self,
        key: ObjectKey,
        region: RegionId,
        jurisdiction: Option<Jurisdiction>,
        replication_factor: usize,
        preferred: Option<NodeId>,
    ) -> Result<ObjectPlacement, DirectoryError> {
        let state = self.local_state().await;
        if let Some(existing) = state.placement(&key) {
            return Ok(existing.clone());
        }
        let replicas = choose_replicas(
            &state,
            &key,
            &region,
            jurisdiction.as_ref(),
            replication_factor,
            preferred,
        )
        .map_err(DirectoryError::Rejected)?;
        let placement = ObjectPlacement {
            key,
            region,
            jurisdiction,
            owner: replicas[0],
            replicas,
            epoch: crate::Epoch::FIRST,
            placed_at_ms: self.now_ms(),
        };
        match self
            .request(DirectoryRequest::Write(Command::PlaceObject(placement)))
            .await?
        {
            DirectoryResponse::Outcome {
                outcome: CommandOutcome::Placed(placement),
                ..
            } => Ok(*placement),
            other => Err(DirectoryError::Protocol(format!(
                "placement answered with {other:?}"
            ))),
        }
    }

    /// Registers this node in the directory (retrying until a leader accepts it), so
    /// every node learns its region and addresses.
    pub async fn register_self(&self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let req = DirectoryRequest::Join(self.inner.me.clone());
            let result = tokio::select! {
                result = self.request(req) => result,
                _ = shutdown.changed() => return,
            };
            match result {
                Ok(_) => {
                    tracing::info!(node_id = %self.inner.me.id, region = %self.inner.me.region, "registered in the directory");
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

/// A leader that cannot confirm its leadership with a quorum (cut off, a partition, a
/// crash of the others) is a passing state like having no leader: retryable, never a
/// refusal. (The nemesis saw an object call answered `FAILED_PRECONDITION` for it.)
fn map_read_index_error(
    err: openraft::error::RaftError<C, openraft::error::LinearizableReadError<C>>,
) -> DirectoryError {
    use openraft::error::{LinearizableReadError, RaftError};
    match err {
        RaftError::APIError(
            LinearizableReadError::ForwardToLeader(_) | LinearizableReadError::QuorumNotEnough(_),
        ) => DirectoryError::NoLeader,
        RaftError::Fatal(fatal) => DirectoryError::Storage(fatal.to_string()),
    }
}

fn map_write_error<E>(err: openraft::error::RaftError<C, E>) -> DirectoryError
where
    E: std::error::Error + openraft::TryAsRef<openraft::error::ForwardToLeader<C>>,
{
    match err.forward_to_leader() {
        Some(forward) => DirectoryError::NotLeader {
            leader: forward.leader_id,
            leader_api_addr: None,
        },
        None => match err {
            openraft::error::RaftError::APIError(api) => DirectoryError::Rejected(api.to_string()),
            openraft::error::RaftError::Fatal(fatal) => DirectoryError::Storage(fatal.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::error::{LinearizableReadError, QuorumNotEnough, RaftError};

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

    #[test]
    fn a_read_index_without_a_quorum_is_retried_not_refused() {
        let err = RaftError::APIError(LinearizableReadError::QuorumNotEnough(QuorumNotEnough {
            cluster: "voters 1,2,3".into(),
            got: BTreeSet::from([NodeId(1)]),
        }));
        let mapped = map_read_index_error(err);
        assert!(mapped.is_retryable(), "{mapped:?}");
    }
}
