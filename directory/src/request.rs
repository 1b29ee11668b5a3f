use serde::{Deserialize, Serialize};

use crate::{Command, CommandOutcome, NodeId, NodeSpec};

/// A request that only the Raft leader can carry out. Any node accepts one and forwards
/// it to the leader over the peer listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryRequest {
    /// Replicate one command.
    Write(Command),
    /// Register a node and make it a learner if it is not a member yet.
    Join(NodeSpec),
    AddLearner {
        id: NodeId,
        peer_addr: Option<String>,
    },
    AddVoter(NodeId),
    /// Demote a voter to a learner.
    RemoveVoter(NodeId),
    /// Remove a node from the membership and the directory; `force`: even if it still
    /// owns objects (they fail over as if it had died).
    RemoveNode {
        id: NodeId,
        force: bool,
    },
    TransferLeader(NodeId),
    /// Confirm leadership with a quorum and return the log index a linearizable read
    /// must wait for.
    ReadIndex,
    /// Whether a node is still in the cluster, as the leader has it (a node's periodic
    /// check, which it must not miss if it was cut off when it was removed): answered
    /// `Ok` or `NodeRemoved`.
    StillMember(NodeId),
    /// [`DirectoryRequest::Join`] by a node started with `--join`: an explicit join,
    /// which takes back a node removed earlier (a plain `Join` of one is refused).
    Rejoin(NodeSpec),
}

impl std::fmt::Display for DirectoryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectoryRequest::Write(command) => write!(f, "write {command}"),
            DirectoryRequest::Join(spec) => write!(f, "join {}", spec.id),
            DirectoryRequest::AddLearner { id, .. } => write!(f, "add-learner {id}"),
            DirectoryRequest::AddVoter(id) => write!(f, "add-voter {id}"),
            DirectoryRequest::RemoveVoter(id) => write!(f, "remove-voter {id}"),
            DirectoryRequest::RemoveNode { id, .. } => write!(f, "remove-node {id}"),
            DirectoryRequest::TransferLeader(id) => write!(f, "transfer-leader {id}"),
            DirectoryRequest::ReadIndex => f.write_str("read-index"),
            DirectoryRequest::StillMember(id) => write!(f, "still-member {id}"),
            DirectoryRequest::Rejoin(spec) => write!(f, "rejoin {}", spec.id),
        }
    }
}

/// What the leader answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryResponse {
    Outcome {
        outcome: CommandOutcome,
        log_index: u64,
    },
    Membership(MembershipView),
    ReadIndex(u64),
}

/// The Raft membership after a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub log_index: u64,
}
