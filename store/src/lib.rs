//! The storage seam. Every other crate reaches the disk through these types, so the engine
//! (sled 0.34 today) can be replaced in one place.
//!
//! Layout:
//! - [`Store`]: one database directory, its on-disk format version and its flushes;
//! - [`Tree`]: an ordered keyspace inside a store;
//! - [`Batch`]: writes applied to one tree atomically;
//! - [`StoreError`] (`error`): what can go wrong, in the seam's own terms;
//! - `wal`: the write-ahead log every sled change goes through, `fdatasync`ed by a flush,
//!   and sled's recovery from it;
//! - `flusher`: concurrent flush callers share one flush (group commit at the seam);
//!   `health`: the free-space guard and fail-stop after a failed flush;
//! - [`codec`]: the one binary encoding (postcard) for records and peer messages;
//! - [`MemoryDisk`]: an in-memory engine for simulation tests, which keeps only flushed
//!   writes when its simulated machine crashes.
//!
//! Both engines pass one behaviour suite (`tests/conformance/`): key order, batches,
//! scans, flushes, what a restart keeps, and a `BTreeMap` model under property tests.
//!
//! Durability: a write is applied to sled and logged; [`Store::flush`] makes every write
//! before it durable with an `fdatasync` of the log (docs/architecture.md, "The
//! write-ahead log"). Callers flush before they acknowledge.

pub mod codec;
mod error;
mod flusher;
mod health;
mod memory;
mod store;
mod tree;
mod wal;

pub use codec::CodecError;
pub use error::StoreError;
pub use health::StoreHealth;
pub use memory::MemoryDisk;
pub use store::{FORMAT_VERSION, Store};
pub use tree::{Batch, Tree, prefix_end};
