use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Jurisdiction, NodeId, RegionId};

/// What a node says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub id: NodeId,
    pub region: RegionId,
    pub jurisdictions: BTreeSet<Jurisdiction>,
    /// Address workers and operators use (api listener).
    pub api_addr: String,
    /// Address other nodes use (peer listener).
    pub peer_addr: String,
}

/// Liveness as recorded in the directory by the Raft leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Up,
    Down,
}

/// A node as recorded in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub spec: NodeSpec,
    pub status: NodeStatus,
    /// Unix milliseconds of the last status change, as stamped by the proposer.
    pub status_changed_at_ms: u64,
}

/// The node type stored in openraft's membership: how to reach a member's peer listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    pub peer_addr: String,
}

impl std::fmt::Display for PeerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.peer_addr)
    }
}
