//! Larder's objects: single-writer, region-pinned actors with transactional storage.
//!
//! Layout (this crate grows with the objects issue; what exists today):
//! - [`ObjectId`]: ids from a name, unique (random), or parsed from their string form;
//! - [`op`]: the storage operations a request carries — get, put, delete, list,
//!   delete-all, atomic add, transactions with preconditions, alarms, publish;
//! - [`ObjectState`]: the pure engine the owner runs them on, one at a time: it answers
//!   each operation and yields the mutations to replicate, which replicas apply in order;
//! - [`ObjectLimits`]: key, value, batch and page limits, checked before execution;
//! - [`object_store`]: each node's durable copy, with epoch fencing, in-order apply and
//!   state transfer;
//! - [`ObjectError`]: what can go wrong, in domain terms.
//!
//! - [`ObjectHost`]: this node's runtime: placement look-up (placing on first access),
//!   one actor per owned object, forwarding to owners elsewhere, serving copies;
//! - `replication_link`: an owner's replication rounds over one long-lived stream per
//!   replica node;
//! - [`alarms`]: each node's scheduler firing the due alarms of the objects it owns;
//! - [`events`]: object and namespace subscriptions to alarms fired and messages;
//! - [`failover`]: the directory leader's hand-over of objects whose owner is down;
//! - [`mover`]: admin moves and drains, with state transfer;
//! - [`grpc`]: `larder.v1.Objects`, `larder.peer.v1.ObjectPeer` and the status mapping.
//!
//! Placement (owner, replicas, epoch) lives in the directory crate.

mod actor;
pub mod alarms;
mod config;
mod error;
pub mod events;
pub mod failover;
pub mod grpc;
mod host;
mod id;
mod limits;
pub mod mover;
pub mod object_store;
pub mod op;
pub mod peer_messages;
mod replication_link;
mod state;

pub use config::ObjectsConfig;
pub use error::ObjectError;
pub use host::{ChannelFactory, ObjectHost};
pub use id::{OBJECT_ID_BYTES_MAX, ObjectId};
pub use limits::ObjectLimits;
pub use object_store::{ApplyOutcome, ObjectStore, ReplicaMeta};
pub use state::{EVENTS_KEPT, Mutation, ObjectState, REQUEST_ID_BYTES_MAX, StateParts, Stored};
