//! The owner's and the coordinator's side of node-to-node object traffic: offers to
//! replicas (over the replication link), fencing, fetching and dropping copies, and
//! calls forwarded to an object's owner. A request for this node's own copy goes to the
//! local store without a network hop.

use std::sync::Arc;

use larder_base::{ChannelFactory, Epoch, NodeId};
use larder_directory::{NodeStatus, ObjectKey, ObjectPlacement};
use larder_proto::peer::Envelope;
use larder_proto::peer::object_peer_client::ObjectPeerClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::copies::ObjectStore;
use crate::op::Answer;
use crate::peer_messages::{
    CopyError, CopyRequest, CopyResponse, DropRequest, ExecuteRequest, ExecuteResponse,
    FenceRequest, FetchRequest, InstallRequest, OBJECTS_WIRE,
};
use crate::placements::Placements;
use crate::replication_link::{LinkError, ReplicationLinks};
use crate::{ApplyOutcome, ObjectError, ObjectState, ObjectsConfig, ReplicaMeta};

/// Why a request to another node's copy or owner got no answer, or a failed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("node {node} is unknown")]
    UnknownNode { node: NodeId },
    #[error("node {node} unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    #[error("node {node}: {error}")]
    Link { node: NodeId, error: LinkError },
    /// Its answer could not be read (another wire version, a corrupt frame).
    #[error("node {node}: {reason}")]
    Protocol { node: NodeId, reason: String },
    /// It was reached, and its copy failed.
    #[error("node {node}: {error}")]
    Copy { node: NodeId, error: CopyError },
}

impl From<PeerError> for ObjectError {
    fn from(err: PeerError) -> Self {
        ObjectError::Unavailable {
            reason: err.to_string(),
            retry_at: None,
        }
    }
}

/// The unary calls on another node's copy.
enum CopyCall {
    Fence,
    Fetch,
    Drop,
}

/// This node's peer client for objects. Cheap to clone.
#[derive(Clone)]
pub struct Peers {
    inner: Arc<PeersInner>,
}

struct PeersInner {
    placements: Placements,
    /// This node's copies, for requests addressed to itself.
    local: ObjectStore,
    channels: ChannelFactory,
    /// One long-lived replication stream per replica node this node owns objects with.
    links: ReplicationLinks,
    config: Arc<ObjectsConfig>,
}

impl Peers {
    pub(crate) fn new(
        placements: Placements,
        local: ObjectStore,
        channels: ChannelFactory,
        config: Arc<ObjectsConfig>,
    ) -> Peers {
        let links = ReplicationLinks::new(config.peer_rpc_timeout());
        Peers {
            inner: Arc::new(PeersInner {
                placements,
                local,
                channels,
                links,
                config,
            }),
        }
    }

    fn me(&self) -> NodeId {
        self.inner.placements.me()
    }

    /// Offers a write or a state to one replica's copy.
    pub(crate) async fn offer(
        &self,
        replica: NodeId,
        offer: CopyRequest,
    ) -> Result<ApplyOutcome, PeerError> {
        if replica == self.me() {
            return self.local_copy(replica, self.inner.local.take(&offer).await);
        }
        let peer = self.peer_addr(replica).await?;
        let body = seal(replica, &offer)?;
        let streamed = self
            .inner
            .links
            .call(
                &peer,
                || self.client(replica, &peer).map_err(|err| err.to_string()),
                body,
                self.inner.config.peer_rpc_timeout(),
            )
            .await;
        let answer = match streamed {
            Ok(answer) => answer,
            // An older node: the unary calls it serves.
            Err(LinkError::Unsupported { .. }) => self.offer_unary(replica, &peer, offer).await?,
            Err(error) => {
                return Err(PeerError::Link {
                    node: replica,
                    error,
                });
            }
        };
        let result: CopyResponse = open(replica, &answer)?;
        result.map_err(|error| PeerError::Copy {
            node: replica,
            error,
        })
    }

    /// `offer` as one unary call, for peers that do not serve the replication stream.
    async fn offer_unary(
        &self,
        replica: NodeId,
        peer: &str,
        offer: CopyRequest,
    ) -> Result<Envelope, PeerError> {
        let mut client = self.client(replica, peer)?;
        let unreachable = |status: tonic::Status| unreachable(replica, &status);
        let response = match offer {
            CopyRequest::Write(request) => client.replicate(self.call(replica, &request)?).await,
            CopyRequest::State(request) => client.install(self.call(replica, &request)?).await,
        };
        Ok(response.map_err(unreachable)?.into_inner())
    }

    /// Installs `install`'s state on each of `nodes` (one after another); returns how
    /// many took it.
    pub(crate) async fn install_on(&self, nodes: &[NodeId], install: &InstallRequest) -> usize {
        let mut took = 0;
        for node in nodes {
            let outcome = self.offer(*node, CopyRequest::State(install.clone())).await;
            if outcome.is_ok_and(|outcome| outcome.holds()) {
                took += 1;
            }
        }
        took
    }

    /// Fences `replica`'s copy of `key` at `epoch` and returns its progress.
    pub(crate) async fn fence(
        &self,
        replica: NodeId,
        key: &ObjectKey,
        epoch: Epoch,
    ) -> Result<ReplicaMeta, PeerError> {
        if replica == self.me() {
            return self.local_copy(replica, self.inner.local.fence(key, epoch).await);
        }
        let request = FenceRequest {
            key: key.clone(),
            epoch,
        };
        self.ask_copy::<_, ReplicaMeta>(replica, CopyCall::Fence, &request)
            .await
    }

    /// Reads `node`'s copy of `key`.
    pub(crate) async fn fetch(
        &self,
        node: NodeId,
        key: &ObjectKey,
    ) -> Result<(ReplicaMeta, ObjectState), PeerError> {
        if node == self.me() {
            return self.local_copy(node, self.inner.local.load(key));
        }
        let request = FetchRequest { key: key.clone() };
        self.ask_copy::<_, (ReplicaMeta, ObjectState)>(node, CopyCall::Fetch, &request)
            .await
    }

    /// Removes `node`'s copy of `key`, unless it has seen an epoch after `epoch`.
    pub(crate) async fn drop_copy(
        &self,
        node: NodeId,
        key: &ObjectKey,
        epoch: Epoch,
    ) -> Result<bool, PeerError> {
        if node == self.me() {
            return self.local_copy(node, self.inner.local.drop_copy(key, epoch).await);
        }
        let request = DropRequest {
            key: key.clone(),
            epoch,
        };
        self.ask_copy::<_, bool>(node, CopyCall::Drop, &request)
            .await
    }

    /// One unary call to `node`'s copy service; the copy's own failure is `Copy`.
    async fn ask_copy<T: Serialize, R: DeserializeOwned>(
        &self,
        node: NodeId,
        method: CopyCall,
        request: &T,
    ) -> Result<R, PeerError> {
        let mut client = self.client_of(node).await?;
        let call = self.call(node, request)?;
        let response = match method {
            CopyCall::Fence => client.fence(call).await,
            CopyCall::Fetch => client.fetch(call).await,
            CopyCall::Drop => client.drop(call).await,
        }
        .map_err(|status| unreachable(node, &status))?;
        let result: Result<R, CopyError> = open(node, response.get_ref())?;
        result.map_err(|error| PeerError::Copy { node, error })
    }

    /// Runs a call at the object's owner, another node.
    pub(crate) async fn forward(
        &self,
        placement: &ObjectPlacement,
        request: ExecuteRequest,
    ) -> Result<Answer, ObjectError> {
        let owner = placement.owner;
        let key = &placement.key;
        // No redirect to the owner: this node could not reach it either, and a client
        // sent there would fail on its own; it retries here, where the failover shows.
        let unavailable = |reason: String| ObjectError::unavailable(reason);
        let (owner_peer, owner_up) = self
            .inner
            .placements
            .directory()
            .read_local(|s| {
                let record = s.node(owner)?;
                Some((
                    record.spec.peer_addr.clone(),
                    record.status == NodeStatus::Up,
                ))
            })
            .await
            .ok_or_else(|| unavailable(format!("{key}: its owner, node {owner}, is unknown")))?;
        if !owner_up {
            return Err(unavailable(format!(
                "{key}: its owner, node {owner}, is down; it fails over to a replica shortly"
            )));
        }
        let mut client = self.client(owner, &owner_peer)?;
        let mut call = tonic::Request::new(seal(owner, &request)?);
        let config = &self.inner.config;
        call.set_timeout(config.write_timeout() + config.peer_rpc_timeout());
        let response = client.execute(call).await.map_err(|status| {
            unavailable(format!(
                "{key}: its owner, node {owner}, is unreachable from node {}: {}",
                self.inner.placements.me(),
                status.message()
            ))
        })?;
        let result: ExecuteResponse =
            open(owner, response.get_ref()).map_err(|err| unavailable(err.to_string()))?;
        result
    }

    /// A peer client for `node`.
    pub(crate) async fn client_of(
        &self,
        node: NodeId,
    ) -> Result<ObjectPeerClient<Channel>, PeerError> {
        let peer = self.peer_addr(node).await?;
        self.client(node, &peer)
    }

    async fn peer_addr(&self, node: NodeId) -> Result<String, PeerError> {
        self.inner
            .placements
            .peer_addr(node)
            .await
            .ok_or(PeerError::UnknownNode { node })
    }

    fn client(
        &self,
        node: NodeId,
        peer_addr: &str,
    ) -> Result<ObjectPeerClient<Channel>, PeerError> {
        let channel = (self.inner.channels)(peer_addr).map_err(|err| PeerError::Unreachable {
            node,
            reason: err.reason,
        })?;
        let limits = &self.inner.config.limits;
        let bytes_max = limits.value_bytes_max * limits.batch_keys_max + 4 * 1024 * 1024;
        Ok(ObjectPeerClient::new(channel)
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max))
    }

    /// A peer request carrying `value`, with the peer RPC deadline.
    fn call<T: Serialize>(
        &self,
        node: NodeId,
        value: &T,
    ) -> Result<tonic::Request<Envelope>, PeerError> {
        let mut call = tonic::Request::new(seal(node, value)?);
        call.set_timeout(self.inner.config.peer_rpc_timeout());
        Ok(call)
    }

    fn local_copy<T>(
        &self,
        node: NodeId,
        result: Result<T, larder_store::StoreError>,
    ) -> Result<T, PeerError> {
        result.map_err(|err| PeerError::Copy {
            node,
            error: err.into(),
        })
    }
}

fn seal<T: Serialize>(node: NodeId, value: &T) -> Result<Envelope, PeerError> {
    OBJECTS_WIRE.seal(value).map_err(|err| PeerError::Protocol {
        node,
        reason: err.to_string(),
    })
}

pub(crate) fn open<T: DeserializeOwned>(node: NodeId, envelope: &Envelope) -> Result<T, PeerError> {
    OBJECTS_WIRE
        .open(envelope)
        .map_err(|err| PeerError::Protocol {
            node,
            reason: err.to_string(),
        })
}

pub(crate) fn unreachable(node: NodeId, status: &tonic::Status) -> PeerError {
    PeerError::Unreachable {
        node,
        reason: status.message().to_string(),
    }
}
