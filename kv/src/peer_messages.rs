//! Payloads of `larder.peer.v1.KvReplication` (postcard inside the peer envelope).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Namespace, NodeId, Segment};

/// Eager push: segments of writes, some to be relayed inside the receiver's region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRequest {
    pub from: NodeId,
    pub segments: Vec<RelayedSegment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayedSegment {
    pub segment: Segment,
    /// Nodes the receiver forwards this segment to (its region, for a relay).
    pub relay_to: Vec<NodeId>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushResponse {}

/// Anti-entropy: "here is what I have; send me what I lack".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    pub from: NodeId,
    /// The caller's contiguous progress, per namespace it wants synced.
    pub namespaces: BTreeMap<Namespace, BTreeMap<NodeId, u64>>,
    /// Where the previous page stopped.
    pub cursor: Option<SyncCursor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCursor {
    pub namespace: Namespace,
    pub origin: NodeId,
    pub seq: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncResponse {
    pub segments: Vec<Segment>,
    /// On the first page: the callee's progress for each namespace it serves. Once every
    /// page is applied, the caller holds everything this progress covers.
    pub served: BTreeMap<Namespace, BTreeMap<NodeId, u64>>,
    pub next: Option<SyncCursor>,
}
