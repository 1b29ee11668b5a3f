//! The Larder client: what edge workers link to talk to their local node, and what the
//! `larder` CLI uses.
//!
//! Layout:
//! - [`Client`] (`client`): one node endpoint over a shared HTTP/2 channel, with timeouts, retries
//!   with backoff on `UNAVAILABLE`, and leader redirects followed;
//! - [`ClientConfig`]: those timeouts and limits;
//! - [`ClientError`] (`error`): typed errors, from the gRPC status and Larder's metadata;
//! - [`admin`]: the cluster administration calls;
//! - [`kv`]: `client.kv("namespace")`: get, put (with options), list, watch, and a
//!   [`kv::Session`] for read-your-writes across nodes;
//! - [`objects`]: `client.objects("namespace").by_name("room-1")`: object storage calls,
//!   transactions ([`objects::Txn`]), alarms, messages and subscriptions.

pub mod admin;
mod client;
mod error;
pub mod kv;
pub mod objects;

pub use client::{Client, ClientConfig};
pub use error::ClientError;

pub use larder_proto::metadata::{
    LEADER_ENDPOINT as LEADER_ENDPOINT_METADATA, LEADER_ID as LEADER_ID_METADATA,
    RETRY_ENDPOINT as RETRY_ENDPOINT_METADATA,
};
