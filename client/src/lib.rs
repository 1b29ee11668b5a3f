//! The Larder client: what edge workers link to talk to their local node, and what the
//! `larder` CLI uses.
//!
//! Layout:
//! - [`Client`]: one node endpoint over a shared HTTP/2 channel, with timeouts, retries
//!   with backoff on `UNAVAILABLE`, and leader redirects followed;
//! - [`ClientConfig`]: those timeouts and limits;
//! - [`ClientError`]: typed errors, from the gRPC status and Larder's metadata;
//! - [`admin`]: the cluster administration calls.
//!
//! KV and object calls arrive with their features.

pub mod admin;
mod client;
mod error;

pub use client::{Client, ClientConfig};
pub use error::ClientError;

/// Metadata key carrying the directory leader's api address on redirect errors.
pub const LEADER_ENDPOINT_METADATA: &str = "larder-leader-endpoint";
/// Metadata key carrying the directory leader's node id on redirect errors.
pub const LEADER_ID_METADATA: &str = "larder-leader-id";
