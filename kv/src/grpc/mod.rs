//! The KV's gRPC edge: `larder.v1.Kv` (api), `larder.peer.v1.KvReplication` (peer), the
//! conversions, and the one mapping of [`crate::KvError`] to statuses.

pub mod convert;
pub mod kv_service;
pub mod peer_service;
pub mod status;
