//! Larder's KV: eventually consistent, replicated to every node a namespace allows,
//! served locally.
//!
//! Layout:
//! - [`version`]: `Version` (hybrid logical clock stamp + origin) and the `Hlc`;
//!   [`token`]: consistency and resume tokens (a version vector cut to what a reader needs);
//! - [`entry`]: stored entries and the last-writer-wins `merge`;
//! - [`progress`]: per namespace and origin, how far this replica has received writes
//!   (`VersionVector`), out-of-order ranges and lag;
//! - [`keyspace`]: the on-disk layout (entries, origin index, progress) through the
//!   storage seam;
//! - `writer`: the single group-commit writer: one batch, one flush, then acknowledge;
//!   `group_stage` decides, without I/O, what a group of jobs writes and answers;
//! - [`replication`]: eager push with per-peer bounded queues and regional relays, of
//!   `segment`s (one origin's consecutive writes to one namespace); `cluster_view`: which
//!   nodes are up and where each namespace may live, as replication and sync see it;
//!   [`peer_messages`]: the peer payloads, `wire`: their protocol version;
//! - [`anti_entropy`]: periodic pairwise sync that repairs any gap: it times rounds and
//!   does the RPCs; [`sync_exchange`] decides what one exchange asks for and does with
//!   each page, [`sync_pager`] what one answered page carries;
//! - [`collector`]: expiry, tombstone and deleted-namespace collection;
//! - [`watch`]: resumable change streams;
//! - [`kv`]: the `Kv` handle the services call; [`validate`]: its pure request checks;
//! - `env`: [`KvEnv`], the injected wall clock and the seed of the KV's random draws;
//!   `config`: [`KvConfig`], the KV's settings and limits; `stats`: its counters;
//!   `error`: [`KvError`]; `test_support`: fixtures of the unit tests;
//!   [`grpc`]: the api and peer services and the error-to-status mapping.

pub mod anti_entropy;
mod cluster_view;
pub mod collector;
mod config;
pub mod entry;
mod env;
mod error;
mod group_stage;
pub mod grpc;
pub mod keyspace;
mod kv;
pub mod peer_messages;
pub mod progress;
pub mod replication;
mod segment;
mod stats;
pub mod sync_exchange;
pub mod sync_pager;
#[cfg(test)]
mod test_support;
pub mod token;
pub mod validate;
pub mod version;
pub mod watch;
mod wire;
mod writer;

pub use cluster_view::{ClusterView, NamespaceInfo, PeerInfo};
pub use config::{KvConfig, KvConfigError};
pub use entry::{Entry, merge};
pub use env::KvEnv;
pub use error::KvError;
pub use kv::{Kv, ListPage, PutItem, WriteOutcome};
pub use larder_base::ChannelFactory;
pub use progress::{Lag, Progress, VersionVector};
pub use segment::{Change, ChangeBatch, Segment};
pub use stats::KvStats;
pub use version::{Hlc, Version};
pub use writer::Mutation;

/// A node, as the KV sees it: the origin of writes and a replication peer (the one
/// `NodeId` every crate shares).
pub use larder_base::NodeId;

/// A namespace's name (the one `Namespace` every crate shares).
pub use larder_base::Namespace;
