use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Errors of the directory.
///
/// Serializable because a forwarded request carries the leader's error back to the node
/// that forwarded it. Redirect and retry cases (`NotLeader`, `NoLeader`, `Unreachable`)
/// are kept apart from answers that retrying will not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DirectoryError {
    #[error("this node is not the directory leader (leader: {})", leader_display(*.leader))]
    NotLeader {
        leader: Option<NodeId>,
        leader_api_addr: Option<String>,
    },
    #[error("the directory has no leader at the moment; retry shortly")]
    NoLeader,
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("node {0} is not in the directory")]
    NodeNotFound(NodeId),
    #[error("node {0} is not a learner; add it as a learner first")]
    NotALearner(NodeId),
    #[error("node {0} is not a voter")]
    NotAVoter(NodeId),
    #[error("node {0} is the last voter; add another voter before removing it")]
    LastVoter(NodeId),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout { what: String, ms: u64 },
    #[error("the directory rejected the change: {0}")]
    Rejected(String),
    #[error("directory storage failed: {0}")]
    Storage(String),
    #[error("peer protocol error: {0}")]
    Protocol(String),
    #[error("the directory is shutting down")]
    ShuttingDown,
    /// The namespace does not exist (any more): deleted while a placement was on its way.
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(crate::Namespace),
    #[error(
        "node {0} was removed from the cluster and serves nothing; to take it back, start it \
         with --join (an explicit join)"
    )]
    NodeRemoved(NodeId),
    /// A request the caller may repeat with `force` (e.g. removing a node that owns
    /// objects).
    #[error("{0}")]
    NeedsForce(String),
}

fn leader_display(leader: Option<NodeId>) -> String {
    leader.map_or_else(|| "unknown".to_string(), |id| id.to_string())
}

impl DirectoryError {
    /// Whether the same request may succeed if sent again after a short wait.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DirectoryError::NotLeader { .. }
                | DirectoryError::NoLeader
                | DirectoryError::Unreachable { .. }
                | DirectoryError::Timeout { .. }
        )
    }
}

impl From<larder_store::StoreError> for DirectoryError {
    fn from(err: larder_store::StoreError) -> Self {
        DirectoryError::Storage(err.to_string())
    }
}

impl From<std::io::Error> for DirectoryError {
    fn from(err: std::io::Error) -> Self {
        DirectoryError::Storage(err.to_string())
    }
}

impl From<larder_base::EnvelopeError> for DirectoryError {
    fn from(err: larder_base::EnvelopeError) -> Self {
        DirectoryError::Protocol(err.to_string())
    }
}

impl From<larder_store::CodecError> for DirectoryError {
    fn from(err: larder_store::CodecError) -> Self {
        DirectoryError::Protocol(err.to_string())
    }
}
