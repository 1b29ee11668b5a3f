//! Larder's objects: single-writer, region-pinned actors with transactional storage.
//!
//! Layout (this crate grows with the objects issue; what exists today):
//! - [`ObjectId`]: ids from a name, unique (random), or parsed from their string form;
//! - [`op`]: the storage operations a request carries — get, put, delete, list,
//!   delete-all, atomic add, transactions with preconditions;
//! - [`ObjectState`]: the pure engine the owner runs them on, one at a time: it answers
//!   each operation and yields the mutations to replicate, which replicas apply in order;
//! - [`ObjectLimits`]: key, value, batch and page limits, checked before execution;
//! - [`object_store`]: each node's durable copy, with epoch fencing, in-order apply and
//!   state transfer;
//! - [`ObjectError`]: what can go wrong, in domain terms.
//!
//! Placement (owner, replicas, epoch) lives in the directory crate.

mod error;
mod id;
mod limits;
pub mod object_store;
pub mod op;
mod state;

pub use error::ObjectError;
pub use id::ObjectId;
pub use limits::ObjectLimits;
pub use object_store::{ApplyOutcome, ObjectStore, ReplicaMeta};
pub use state::{Mutation, ObjectState, Stored};
