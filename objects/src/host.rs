//! The node side of objects: finds (or makes) an object's placement, runs calls for the
//! objects this node owns in one actor each, forwards the others to their owner, and
//! serves its copies to owners elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use larder_directory::{Directory, Jurisdiction, NodeId, ObjectKey, ObjectPlacement, RegionId};
use larder_proto::peer::object_peer_client::ObjectPeerClient;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::actor::{Actor, Call};
use crate::events::EventHub;
use crate::op::{Answer, Op};
use crate::peer_messages::{
    self, CopyResponse, DropRequest, DropResponse, ExecuteRequest, ExecuteResponse, FenceRequest,
    FenceResponse, FetchRequest, FetchResponse, InstallRequest, ReplicateRequest,
};
use crate::replication_link::{LinkError, ReplicationLinks};
use crate::{ApplyOutcome, ObjectError, ObjectId, ObjectStore, ObjectsConfig};

/// Returns the cached channel to a peer address (shared with all of the node's peer traffic).
pub type ChannelFactory = Arc<dyn Fn(&str) -> Result<Channel, String> + Send + Sync>;

/// This node's object runtime. Cheap to clone.
#[derive(Clone)]
pub struct ObjectHost {
    inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub directory: Directory,
    pub copies: ObjectStore,
    pub config: ObjectsConfig,
    pub channels: ChannelFactory,
    pub events: EventHub,
    /// One long-lived replication stream per replica node this node owns objects with.
    links: ReplicationLinks,
    actors: Mutex<HashMap<ObjectKey, mpsc::Sender<Call>>>,
    /// Objects this process activated as owner, with the epoch, whose own copy took
    /// every write offered since: that copy is at least as far as any replica, so a
    /// cold start in that epoch needs no state transfer (see `Actor::try_activate`).
    settled: Mutex<HashMap<ObjectKey, u64>>,
}

/// Objects remembered as settled; past it the memory is dropped, which only costs the
/// next activation of each a new epoch.
const SETTLED_TRACKED_MAX: usize = 100_000;

impl ObjectHost {
    pub fn new(
        directory: Directory,
        copies: ObjectStore,
        config: ObjectsConfig,
        channels: ChannelFactory,
    ) -> ObjectHost {
        let links = ReplicationLinks::new(config.peer_rpc_timeout());
        ObjectHost {
            inner: Arc::new(HostInner {
                directory,
                copies,
                config,
                channels,
                events: EventHub::default(),
                links,
                actors: Mutex::new(HashMap::new()),
                settled: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn me(&self) -> NodeId {
        self.inner.directory.me().id
    }

    /// Runs `op` on the object, wherever its owner is; a write with a `request_id` the
    /// object remembers is answered without applying it again.
    pub async fn call(
        &self,
        namespace: &str,
        id: &ObjectId,
        location_hint: Option<&str>,
        op: Op,
        request_id: Option<String>,
    ) -> Result<Answer, ObjectError> {
        let key = ObjectKey {
            namespace: namespace.to_string(),
            id: id.as_str().to_string(),
        };
        let mut placement = self.placement(&key, location_hint).await?;
        let mut refreshed = false;
        loop {
            let result = if placement.owner == self.me() {
                self.call_local(&key, op.clone(), request_id.clone()).await
            } else {
                let request = ExecuteRequest {
                    key: key.clone(),
                    location_hint: location_hint.map(str::to_string),
                    op: op.clone(),
                    request_id: request_id.clone(),
                };
                self.forward(&placement, request).await
            };
            match result {
                // This node's view of the placement may trail a move or failover that
                // just committed: look again through the leader, once. A write is only
                // sent again when it carries a request id (an earlier owner may have
                // applied it; the id makes the new owner answer instead of re-applying).
                Err(ObjectError::Unavailable { .. } | ObjectError::Superseded { .. })
                    if !refreshed && (!op.is_write() || request_id.is_some()) =>
                {
                    refreshed = true;
                    let state = self.inner.directory.linearizable_state().await?;
                    match state.placement(&key) {
                        Some(current) if current.epoch != placement.epoch => {
                            placement = current.clone()
                        }
                        _ => return result,
                    }
                }
                other => return other,
            }
        }
    }

    /// Serves a call forwarded by another node: runs it only if this node owns the object.
    pub async fn execute_forwarded(&self, request: ExecuteRequest) -> ExecuteResponse {
        let mut placement = self
            .placement(&request.key, request.location_hint.as_deref())
            .await?;
        if placement.owner != self.me() {
            // The forwarder may have seen a move or failover this node has not applied
            // yet: catch up with the log before refusing.
            let state = self.inner.directory.linearizable_state().await?;
            if let Some(current) = state.placement(&request.key) {
                placement = current.clone();
            }
        }
        if placement.owner != self.me() {
            return Err(ObjectError::Unavailable {
                reason: format!(
                    "node {} does not own {} (owner: node {})",
                    self.me(),
                    request.key,
                    placement.owner
                ),
                retry_at: self.api_addr(placement.owner).await,
            });
        }
        self.call_local(&request.key, request.op, request.request_id)
            .await
    }

    pub async fn replicate(&self, request: ReplicateRequest) -> CopyResponse {
        self.inner
            .copies
            .apply(
                &request.key,
                request.epoch,
                request.version,
                &request.writes,
            )
            .await
            .map_err(|err| err.to_string())
    }

    pub async fn install(&self, request: InstallRequest) -> CopyResponse {
        self.inner
            .copies
            .install(&request.key, request.epoch, &request.state)
            .await
            .map_err(|err| err.to_string())
    }

    pub async fn fence(&self, request: FenceRequest) -> FenceResponse {
        self.inner
            .copies
            .fence(&request.key, request.epoch)
            .await
            .map_err(|err| err.to_string())
    }

    /// Fences `replica`'s copy of `key` at `epoch` (locally or over the peer listener)
    /// and returns its progress.
    pub(crate) async fn fence_replica(
        &self,
        replica: NodeId,
        key: &ObjectKey,
        epoch: u64,
    ) -> FenceResponse {
        let request = FenceRequest {
            key: key.clone(),
            epoch,
        };
        if replica == self.me() {
            return self.fence(request).await;
        }
        let mut client = self.peer_of(replica).await?;
        let call = self.sealed(&request)?;
        let response = client
            .fence(call)
            .await
            .map_err(|status| format!("replica node {replica}: {}", status.message()))?;
        let result: FenceResponse = peer_messages::open(response.get_ref())?;
        result
    }

    pub fn fetch(&self, request: FetchRequest) -> FetchResponse {
        self.inner
            .copies
            .load(&request.key)
            .map_err(|err| err.to_string())
    }

    pub async fn drop_copy(&self, request: DropRequest) -> DropResponse {
        self.inner
            .copies
            .drop_copy(&request.key, request.epoch)
            .await
            .map_err(|err| err.to_string())
    }

    /// A peer request carrying `value`, with the peer RPC deadline.
    fn sealed<T: serde::Serialize>(
        &self,
        value: &T,
    ) -> Result<tonic::Request<larder_proto::peer::Envelope>, String> {
        let mut call = tonic::Request::new(peer_messages::seal(value).map_err(|e| e.to_string())?);
        call.set_timeout(self.inner.config.peer_rpc_timeout());
        Ok(call)
    }

    /// A peer client for `node`, or why there is none.
    pub(crate) async fn peer_client(
        &self,
        node: NodeId,
    ) -> Result<ObjectPeerClient<Channel>, ObjectError> {
        self.peer_of(node)
            .await
            .map_err(|reason| ObjectError::Unavailable {
                reason,
                retry_at: None,
            })
    }

    async fn peer_of(&self, node: NodeId) -> Result<ObjectPeerClient<Channel>, String> {
        let peer = self.peer_addr(node).await?;
        self.client(&peer).map_err(|e| e.to_string())
    }

    async fn peer_addr(&self, node: NodeId) -> Result<String, String> {
        self.inner
            .directory
            .read_local(|s| s.node(node).map(|n| n.spec.peer_addr.clone()))
            .await
            .ok_or_else(|| format!("node {node} is unknown"))
    }

    /// Reads `node`'s copy of `key`.
    pub(crate) async fn fetch_replica(&self, node: NodeId, key: &ObjectKey) -> FetchResponse {
        let request = FetchRequest { key: key.clone() };
        if node == self.me() {
            return self.fetch(request);
        }
        let call = self.sealed(&request)?;
        let response = self
            .peer_of(node)
            .await?
            .fetch(call)
            .await
            .map_err(|s| format!("node {node}: {}", s.message()))?;
        let result: FetchResponse = peer_messages::open(response.get_ref())?;
        result
    }

    /// Removes `node`'s copy of `key`.
    pub(crate) async fn drop_replica(
        &self,
        node: NodeId,
        key: &ObjectKey,
        epoch: u64,
    ) -> DropResponse {
        let request = DropRequest {
            key: key.clone(),
            epoch,
        };
        if node == self.me() {
            return self.drop_copy(request).await;
        }
        let call = self.sealed(&request)?;
        let response = self
            .peer_of(node)
            .await?
            .drop(call)
            .await
            .map_err(|s| format!("node {node}: {}", s.message()))?;
        let result: DropResponse = peer_messages::open(response.get_ref())?;
        result
    }

    pub fn limits(&self) -> &crate::ObjectLimits {
        &self.inner.config.limits
    }

    /// Up to `limit` placements of a namespace's objects with ids after `start_after`
    /// that pass `keep`, in id order (this node's directory copy), and whether more
    /// follow. Reads the namespace's range in place: no copy of the directory.
    pub async fn placements(
        &self,
        namespace: &str,
        start_after: &str,
        limit: usize,
        keep: impl Fn(&ObjectPlacement) -> bool,
    ) -> Result<(Vec<ObjectPlacement>, bool), ObjectError> {
        let from = ObjectKey {
            namespace: namespace.to_string(),
            id: start_after.to_string(),
        };
        self.inner
            .directory
            .read_local(|state| {
                if state.namespace(namespace).is_none() {
                    return Err(ObjectError::NamespaceNotFound(namespace.to_string()));
                }
                let mut found: Vec<ObjectPlacement> = state
                    .placements
                    .range((std::ops::Bound::Excluded(&from), std::ops::Bound::Unbounded))
                    .map(|(_, p)| p)
                    .take_while(|p| p.key.namespace == namespace)
                    .filter(|p| keep(p))
                    .take(limit + 1)
                    .cloned()
                    .collect();
                let more = found.len() > limit;
                found.truncate(limit);
                Ok((found, more))
            })
            .await
    }

    /// An object's current placement (it must be placed).
    pub async fn placement_of(
        &self,
        namespace: &str,
        id: &ObjectId,
    ) -> Result<ObjectPlacement, ObjectError> {
        let key = ObjectKey {
            namespace: namespace.to_string(),
            id: id.as_str().to_string(),
        };
        let state = self.inner.directory.linearizable_state().await?;
        state
            .placement(&key)
            .cloned()
            .ok_or_else(|| ObjectError::Placement(format!("{key} is not placed")))
    }

    pub(crate) async fn api_addr(&self, node: NodeId) -> Option<String> {
        self.inner
            .directory
            .read_local(|s| s.node(node).map(|n| n.spec.api_addr.clone()))
            .await
    }

    /// The object's placement; places it (region from the hint, the namespace, or this
    /// node) when this call is the first to see it.
    pub(crate) async fn placement(
        &self,
        key: &ObjectKey,
        location_hint: Option<&str>,
    ) -> Result<ObjectPlacement, ObjectError> {
        let known = self
            .inner
            .directory
            .read_local(|s| s.placement(key).cloned())
            .await;
        if let Some(placement) = known {
            return Ok(placement);
        }
        let state = self.inner.directory.local_state().await;
        let namespace = state
            .namespace(&key.namespace)
            .ok_or_else(|| ObjectError::NamespaceNotFound(key.namespace.clone()))?;
        let me = self.inner.directory.me();
        let policy = &namespace.policy;
        let jurisdiction: Option<Jurisdiction> = policy.jurisdiction.clone();
        // A region may hold the object if the namespace allows it and, for a namespace
        // with a jurisdiction, some up node there carries it.
        let allowed = |region: &RegionId| {
            (policy.regions.is_empty() || policy.regions.contains(region))
                && jurisdiction.as_ref().is_none_or(|j| {
                    state.nodes.values().any(|n| {
                        n.status == larder_directory::NodeStatus::Up
                            && &n.spec.region == region
                            && n.spec.jurisdictions.contains(j)
                    })
                })
        };
        let region = match location_hint.filter(|h| !h.is_empty()) {
            Some(hint) => {
                let region = RegionId(hint.to_string());
                if !allowed(&region) {
                    return Err(ObjectError::InvalidArgument(format!(
                        "location hint {hint:?} cannot hold objects of namespace {:?} ({})",
                        key.namespace,
                        policy.describe()
                    )));
                }
                region
            }
            None if allowed(&me.region) => me.region.clone(),
            None => {
                // The first allowed region by name: deterministic for every node.
                let mut regions: Vec<&RegionId> =
                    state.nodes.values().map(|n| &n.spec.region).collect();
                regions.sort();
                regions.dedup();
                regions
                    .into_iter()
                    .find(|r| allowed(r))
                    .cloned()
                    .ok_or_else(|| {
                        ObjectError::Placement(format!(
                            "no region can hold objects of namespace {:?} ({})",
                            key.namespace,
                            policy.describe()
                        ))
                    })?
            }
        };
        let eligible_here = me.region == region
            && jurisdiction
                .as_ref()
                .is_none_or(|j| me.jurisdictions.contains(j));
        let preferred = eligible_here.then_some(me.id);
        Ok(self
            .inner
            .directory
            .place_object(
                key.clone(),
                region,
                jurisdiction,
                self.inner.config.replication_factor,
                preferred,
            )
            .await?)
    }

    /// Runs `op` in the object's actor on this node (which refuses unless this node
    /// owns the object).
    pub(crate) async fn call_local(
        &self,
        key: &ObjectKey,
        op: Op,
        request_id: Option<String>,
    ) -> Result<Answer, ObjectError> {
        for _ in 0..3 {
            let mailbox = self.actor(key);
            let (reply, rx) = oneshot::channel();
            match mailbox.try_send(Call {
                op: op.clone(),
                request_id: request_id.clone(),
                reply,
            }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(ObjectError::Overloaded(self.inner.config.mailbox_max));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The actor just stopped (idle or deposed): start a fresh one.
                    self.forget(key);
                    continue;
                }
            }
            match rx.await {
                Ok(result) => return result,
                // The actor stopped before running the call: run it on a fresh one.
                Err(_) => self.forget(key),
            }
        }
        Err(ObjectError::Unavailable {
            reason: "the object's actor keeps stopping".into(),
            retry_at: None,
        })
    }

    fn actor(&self, key: &ObjectKey) -> mpsc::Sender<Call> {
        let mut actors = self
            .inner
            .actors
            .lock()
            .expect("actor map is never poisoned: no panics under it");
        if let Some(mailbox) = actors.get(key)
            && !mailbox.is_closed()
        {
            return mailbox.clone();
        }
        if actors.len() >= self.inner.config.active_objects_max {
            actors.retain(|_, mailbox| !mailbox.is_closed());
        }
        let (tx, rx) = mpsc::channel(self.inner.config.mailbox_max);
        actors.insert(key.clone(), tx.clone());
        tokio::spawn(Actor::new(self.clone(), key.clone()).run(rx));
        tx
    }

    /// This process's copy of `key` took everything the owner of `epoch` sent.
    pub(crate) fn settle(&self, key: &ObjectKey, epoch: u64) {
        let mut settled = self.settled();
        if settled.len() >= SETTLED_TRACKED_MAX {
            settled.clear();
        }
        settled.insert(key.clone(), epoch);
    }

    /// This node's copy of `key` may have missed a write its replicas took.
    pub(crate) fn unsettle(&self, key: &ObjectKey) {
        self.settled().remove(key);
    }

    pub(crate) fn is_settled(&self, key: &ObjectKey, epoch: u64) -> bool {
        self.settled().get(key) == Some(&epoch)
    }

    fn settled(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, u64>> {
        self.inner
            .settled
            .lock()
            .expect("settled map is never poisoned: no panics under it")
    }

    /// Objects with an actor in memory on this node (owned and serving, or stopping).
    pub fn active_objects(&self) -> usize {
        self.inner
            .actors
            .lock()
            .expect("actor map is never poisoned: no panics under it")
            .len()
    }

    /// Owners' writes applied to copies on this node since the process started.
    pub fn copy_writes_applied(&self) -> u64 {
        self.inner.copies.writes_applied()
    }

    pub(crate) fn forget(&self, key: &ObjectKey) {
        let mut actors = self
            .inner
            .actors
            .lock()
            .expect("actor map is never poisoned: no panics under it");
        if actors.get(key).is_some_and(|mailbox| mailbox.is_closed()) {
            actors.remove(key);
        }
    }

    pub(crate) fn inner(&self) -> &HostInner {
        &self.inner
    }

    pub(crate) fn client(&self, peer_addr: &str) -> Result<ObjectPeerClient<Channel>, ObjectError> {
        let channel =
            (self.inner.channels)(peer_addr).map_err(|reason| ObjectError::Unavailable {
                reason,
                retry_at: None,
            })?;
        let bytes_max = self.inner.config.limits.value_bytes_max
            * self.inner.config.limits.batch_keys_max
            + 4 * 1024 * 1024;
        Ok(ObjectPeerClient::new(channel)
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max))
    }

    async fn forward(
        &self,
        placement: &ObjectPlacement,
        request: ExecuteRequest,
    ) -> Result<Answer, ObjectError> {
        let owner = self
            .inner
            .directory
            .read_local(|s| {
                s.node(placement.owner)
                    .map(|n| (n.spec.api_addr.clone(), n.spec.peer_addr.clone()))
            })
            .await;
        let retry_at = owner.as_ref().map(|(api, _)| api.clone());
        let Some((_, owner_peer)) = owner else {
            return Err(ObjectError::Unavailable {
                reason: format!("owner node {} is unknown", placement.owner),
                retry_at,
            });
        };
        let mut client = self.client(&owner_peer)?;
        let mut call = tonic::Request::new(peer_messages::seal(&request)?);
        call.set_timeout(self.inner.config.write_timeout() + self.inner.config.peer_rpc_timeout());
        let response = client
            .execute(call)
            .await
            .map_err(|status| ObjectError::Unavailable {
                reason: format!(
                    "owner node {} unreachable: {}",
                    placement.owner,
                    status.message()
                ),
                retry_at: retry_at.clone(),
            })?;
        let result: ExecuteResponse = peer_messages::open(response.get_ref())
            .map_err(|reason| ObjectError::Unavailable { reason, retry_at })?;
        result
    }

    /// Offers a write or a state to this node's own copy, keeping the storage error's
    /// kind (a full disk is the caller's `RESOURCE_EXHAUSTED`).
    pub(crate) async fn offer_own_copy(
        &self,
        offer: Offer,
    ) -> Result<ApplyOutcome, larder_store::StoreError> {
        let copies = &self.inner.copies;
        match offer {
            Offer::Write(r) => copies.apply(&r.key, r.epoch, r.version, &r.writes).await,
            Offer::State(r) => copies.install(&r.key, r.epoch, &r.state).await,
        }
    }

    /// Installs `install`'s state on each of `nodes` (one after another); returns how
    /// many took it.
    pub(crate) async fn install_on(&self, nodes: &[NodeId], install: &InstallRequest) -> usize {
        let mut took = 0;
        for node in nodes {
            let outcome = self.offer(*node, Offer::State(install.clone())).await;
            if matches!(
                outcome,
                Ok(ApplyOutcome::Applied { .. }
                    | ApplyOutcome::AlreadyApplied { .. }
                    | ApplyOutcome::Installed { .. })
            ) {
                took += 1;
            }
        }
        took
    }

    /// Applies an owner's offer to this node's copy (a replica's side of a round).
    pub(crate) async fn take_offer(&self, offer: Offer) -> CopyResponse {
        match offer {
            Offer::Write(request) => self.replicate(request).await,
            Offer::State(request) => self.install(request).await,
        }
    }

    /// Offers a write or a state to one replica; Err: it could not be reached.
    pub(crate) async fn offer(
        &self,
        replica: NodeId,
        offer: Offer,
    ) -> Result<ApplyOutcome, String> {
        if replica == self.me() {
            return self.take_offer(offer).await;
        }
        let peer = self.peer_addr(replica).await?;
        let body = peer_messages::seal(&offer).map_err(|err| err.to_string())?;
        let streamed = self
            .inner
            .links
            .call(
                &peer,
                || self.client(&peer).map_err(|err| err.to_string()),
                body,
                self.inner.config.peer_rpc_timeout(),
            )
            .await;
        match streamed {
            Ok(answer) => {
                let result: CopyResponse = peer_messages::open(&answer)
                    .map_err(|reason| format!("replica node {replica}: {reason}"))?;
                result
            }
            // An older node: the unary calls it serves.
            Err(LinkError::Unsupported { .. }) => self.offer_unary(replica, &peer, offer).await,
            Err(err) => Err(format!("replica node {replica}: {err}")),
        }
    }

    /// `offer` as one unary call, for peers that do not serve the replication stream.
    async fn offer_unary(
        &self,
        replica: NodeId,
        peer: &str,
        offer: Offer,
    ) -> Result<ApplyOutcome, String> {
        let mut client = self.client(peer).map_err(|err| err.to_string())?;
        let response = match offer {
            Offer::Write(request) => {
                let call = self.sealed(&request)?;
                client.replicate(call).await
            }
            Offer::State(request) => {
                let call = self.sealed(&request)?;
                client.install(call).await
            }
        }
        .map_err(|status| format!("replica node {replica}: {}", status.message()))?;
        let result: CopyResponse = peer_messages::open(response.get_ref())?;
        result
    }
}

/// What an owner offers a replica.
pub(crate) use crate::peer_messages::CopyRequest as Offer;
