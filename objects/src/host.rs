//! The node's object runtime, composed of parts a newcomer can name: where objects live
//! ([`Placements`]), the peer client ([`Peers`]), this node's copies ([`ObjectStore`]),
//! the owner actors (`owner::Actors`) and the event hub. A call goes to the object's
//! actor when this node owns it, otherwise to its owner over the peer listener.

use std::sync::Arc;

use larder_base::SharedClock;
use larder_directory::{Directory, ObjectKey, ObjectPlacement};

use crate::ChannelFactory;
use crate::copies::ObjectStore;
use crate::events::EventHub;
use crate::op::{Answer, Op};
use crate::owner::{Actors, OwnerContext, SettledCopies};
use crate::peer_messages::{ExecuteRequest, ExecuteResponse};
use crate::peers::Peers;
use crate::placements::Placements;
use crate::{Namespace, ObjectError, ObjectId, ObjectLimits, ObjectState, ObjectsConfig};

/// Where a call goes (see [`ObjectHost::route`]).
enum Route {
    Placed(ObjectPlacement),
    /// The object was never written and this call does not write it: its answer.
    Unplaced(Result<Answer, ObjectError>),
}

/// This node's object runtime. Cheap to clone.
#[derive(Clone)]
pub struct ObjectHost {
    parts: Arc<Parts>,
}

struct Parts {
    placements: Placements,
    peers: Peers,
    copies: ObjectStore,
    actors: Arc<Actors>,
    events: Arc<EventHub>,
    config: Arc<ObjectsConfig>,
    clock: SharedClock,
}

impl ObjectHost {
    pub fn new(
        directory: Directory,
        copies: ObjectStore,
        config: ObjectsConfig,
        channels: ChannelFactory,
        clock: SharedClock,
    ) -> ObjectHost {
        let config = Arc::new(config);
        let placements = Placements::new(directory, config.replication_factor);
        let peers = Peers::new(placements.clone(), copies.clone(), channels, config.clone());
        let events = Arc::new(EventHub::default());
        let actors = Actors::new(OwnerContext {
            placements: placements.clone(),
            peers: peers.clone(),
            copies: copies.clone(),
            settled: Arc::new(SettledCopies::default()),
            events: events.clone(),
            config: config.clone(),
        });
        ObjectHost {
            parts: Arc::new(Parts {
                placements,
                peers,
                copies,
                actors,
                events,
                config,
                clock,
            }),
        }
    }

    pub fn placements(&self) -> &Placements {
        &self.parts.placements
    }

    pub(crate) fn peers(&self) -> &Peers {
        &self.parts.peers
    }

    /// This node's copies (the replica side of every object it holds).
    pub fn copies(&self) -> &ObjectStore {
        &self.parts.copies
    }

    pub(crate) fn events(&self) -> &EventHub {
        &self.parts.events
    }

    pub fn config(&self) -> &ObjectsConfig {
        &self.parts.config
    }

    pub fn limits(&self) -> &ObjectLimits {
        &self.parts.config.limits
    }

    /// The wall clock alarms and published events are stamped with.
    pub fn clock(&self) -> &SharedClock {
        &self.parts.clock
    }

    /// Runs `op` on the object, wherever its owner is; a write with a `request_id` the
    /// object remembers is answered without applying it again.
    pub async fn call(
        &self,
        namespace: &Namespace,
        id: &ObjectId,
        location_hint: Option<&str>,
        op: Op,
        request_id: Option<String>,
    ) -> Result<Answer, ObjectError> {
        let key = ObjectKey {
            namespace: namespace.clone(),
            id: id.as_str().to_string(),
        };
        let placement = match self
            .route(&key, location_hint, &op, request_id.as_deref())
            .await?
        {
            Route::Placed(placement) => placement,
            Route::Unplaced(answer) => return answer,
        };
        self.run_at(key, placement, location_hint, op, request_id)
            .await
    }

    /// Where a call goes: the object's placement — placed now when this is the first
    /// write to it — or, for an object never written, the empty object's answer. A read
    /// never places an object, nor does a write the empty object refuses (bad input, a
    /// precondition that fails): no call leaves a trace it was not meant to.
    async fn route(
        &self,
        key: &ObjectKey,
        location_hint: Option<&str>,
        op: &Op,
        request_id: Option<&str>,
    ) -> Result<Route, ObjectError> {
        let placements = self.placements();
        if let Some(placement) = placements.known(key).await {
            return Ok(Route::Placed(placement));
        }
        let empty = ObjectState::default().execute_request(op, request_id, self.limits());
        if op.places() && empty.is_ok() {
            return Ok(Route::Placed(
                placements.find_or_place(key, location_hint).await?,
            ));
        }
        // Another node may have placed the object a moment ago: only the leader can
        // say it was never written.
        Ok(match placements.from_leader(key).await? {
            Some(placement) => Route::Placed(placement),
            None => Route::Unplaced(empty.map(|(reply, mutations)| {
                debug_assert!(
                    mutations.is_empty(),
                    "a call answered without placing its object wrote {mutations:?}"
                );
                Answer {
                    reply,
                    owner: 0,
                    epoch: 0,
                }
            })),
        })
    }

    /// Runs `op` at the object's owner as `placement` names it, following a move or
    /// failover once.
    async fn run_at(
        &self,
        key: ObjectKey,
        mut placement: ObjectPlacement,
        location_hint: Option<&str>,
        op: Op,
        request_id: Option<String>,
    ) -> Result<Answer, ObjectError> {
        let mut refreshed = false;
        loop {
            let result = if placement.owner == self.placements().me() {
                self.call_owned(&key, op.clone(), request_id.clone()).await
            } else {
                let request = ExecuteRequest {
                    key: key.clone(),
                    location_hint: location_hint.map(str::to_string),
                    op: op.clone(),
                    request_id: request_id.clone(),
                };
                self.peers().forward(&placement, request).await
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
                    match self.placements().latest(&key).await? {
                        Some(current) if current.epoch != placement.epoch => placement = current,
                        _ => return result,
                    }
                }
                other => return other,
            }
        }
    }

    /// Serves a call forwarded by another node: runs it only if this node owns the object.
    /// The forwarder found the object placed, so this node never places it: a placement
    /// it has not applied yet is asked of the leader (proposing it again cost a Raft
    /// entry for half the objects created through another node).
    pub async fn execute_forwarded(&self, request: ExecuteRequest) -> ExecuteResponse {
        let placements = self.placements();
        let Some(mut placement) = placements.find(&request.key).await? else {
            return Err(ObjectError::Unavailable {
                reason: format!("{} has no placement", request.key),
                retry_at: None,
            });
        };
        if placement.owner != placements.me() {
            // The forwarder may have seen a move or failover this node has not applied
            // yet: catch up with the log before refusing.
            if let Some(current) = placements.latest(&request.key).await? {
                placement = current;
            }
        }
        if placement.owner != placements.me() {
            return Err(ObjectError::Unavailable {
                reason: format!(
                    "node {} does not own {} (owner: node {})",
                    placements.me(),
                    request.key,
                    placement.owner
                ),
                retry_at: placements.api_addr(placement.owner).await,
            });
        }
        self.call_owned(&request.key, request.op, request.request_id)
            .await
    }

    /// Runs `op` in the object's actor on this node (which refuses unless this node
    /// owns the object).
    pub(crate) async fn call_owned(
        &self,
        key: &ObjectKey,
        op: Op,
        request_id: Option<String>,
    ) -> Result<Answer, ObjectError> {
        self.parts.actors.call(key, op, request_id).await
    }

    /// An object's current placement, including every change committed before this call;
    /// `NotFound` when it was never written.
    pub async fn placement_of(
        &self,
        namespace: &Namespace,
        id: &ObjectId,
    ) -> Result<ObjectPlacement, ObjectError> {
        let key = ObjectKey {
            namespace: namespace.clone(),
            id: id.as_str().to_string(),
        };
        self.placements()
            .latest(&key)
            .await?
            .ok_or_else(|| ObjectError::NotFound(key.to_string()))
    }

    /// Objects with an actor in memory on this node (owned and serving, or stopping).
    pub fn active_objects(&self) -> usize {
        self.parts.actors.active()
    }

    /// Owners' writes applied to copies on this node since the process started.
    pub fn copy_writes_applied(&self) -> u64 {
        self.parts.copies.writes_applied()
    }
}
