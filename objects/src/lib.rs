//! Larder's objects: single-writer, region-pinned actors with transactional storage.
//!
//! Layout, in the order a write meets it:
//! - [`grpc`]: `larder.v1.Objects`, `larder.peer.v1.ObjectPeer`, request checks and the
//!   one error-to-status mapping;
//! - [`ObjectHost`] (`host`): the node's object runtime: runs a call at the object's
//!   actor here, or forwards it to the owner;
//! - [`placements`]: where objects live (the directory's placements, read in place) and
//!   the placement of an object on its first write (reads never place);
//! - `owner`: one actor per owned object running its calls in batches, each batch's
//!   writes one replication round tallied by a pure core, and activation (cold start);
//! - [`peers`]: the peer client: offers to replicas, fencing, fetching and dropping
//!   copies, forwarding; `replication_link`: one long-lived replication stream per
//!   replica node;
//! - [`copies`]: this node's durable copies, the replica side, with the fencing rules as
//!   pure functions;
//! - [`handover`]: failover, moves, drains and replica-set repairs, their choices pure;
//! - [`ObjectState`] (`state`, `execute`): the pure engine an owner runs operations on;
//!   [`op`]: the operations; [`ObjectLimits`] (`limits`): their limits; [`ObjectId`]
//!   (`id`): ids; [`ObjectsConfig`] (`config`): the runtime's settings;
//! - [`alarms`]: the scheduler firing due alarms of owned objects; [`events`]:
//!   subscriptions to alarms fired and messages published; [`sweep`]: removes copies
//!   of deleted namespaces;
//! - [`peer_messages`]: the peer payloads; [`ObjectError`] (`error`): what can go wrong;
//!   `testing`: directory fixtures for the unit tests.
//!
//! Placement records (owner, replicas, epoch) live in the directory crate.

pub mod alarms;
mod config;
pub mod copies;
mod error;
pub mod events;
pub mod grpc;
pub mod handover;
mod host;
mod id;
mod limits;
pub mod op;
mod owner;
pub mod peer_messages;
pub mod peers;
pub mod placements;
mod replication_link;
mod state;
pub mod sweep;
#[cfg(test)]
mod testing;

pub use config::ObjectsConfig;
pub use copies::{AlarmIndex, ApplyOutcome, ObjectStore, ReplicaMeta};
pub use error::ObjectError;
pub use handover::{failover, mover};
pub use host::ObjectHost;
pub use id::{OBJECT_ID_BYTES_MAX, ObjectId};
pub use larder_base::{ChannelFactory, Namespace};
pub use limits::ObjectLimits;
pub use peers::PeerError;
pub use replication_link::LinkError;
pub use state::{EVENTS_KEPT, Mutation, ObjectState, REQUEST_ID_BYTES_MAX, StateParts, Stored};
