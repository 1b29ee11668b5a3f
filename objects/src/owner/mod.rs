//! The owner's side of objects: one actor per active object this node owns, running its
//! calls one batch at a time, each batch's writes one replication round.
//!
//! A write flows one way: the registry ([`Actors`]) hands the call to the object's
//! actor; the actor executes the batch on its in-memory state (`batch`), offers the
//! round to its own copy and the replicas (`Peers`), tallies the answers in a pure
//! [`round::ReplicationRound`], and answers the calls once a majority holds the round.
//! Activation (`activation`) decides, purely, how an actor resumes an object from its
//! copy; [`SettledCopies`] remembers which copies this process can vouch for.

mod activation;
mod actor;
mod batch;
mod registry;
pub(crate) mod round;
mod settled;

use std::sync::Arc;

pub(crate) use registry::Actors;
pub(crate) use settled::SettledCopies;

use crate::ObjectsConfig;
use crate::copies::ObjectStore;
use crate::events::EventHub;
use crate::peers::Peers;
use crate::placements::Placements;

/// What an owner's actor works with: the parts of the node it reads and writes through.
#[derive(Clone)]
pub(crate) struct OwnerContext {
    pub placements: Placements,
    pub peers: Peers,
    pub copies: ObjectStore,
    pub settled: Arc<SettledCopies>,
    pub events: Arc<EventHub>,
    pub config: Arc<ObjectsConfig>,
}
