use serde::{Deserialize, Serialize};

use crate::{NamespaceRecord, NodeId, NodeSpec, NodeStatus};

/// A change to the directory, replicated through the Raft log.
///
/// Commands carry every input their application needs (including the time, stamped by
/// the proposer) so that every replica applies them to the same result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds a node or updates its addresses, region and jurisdictions; marks it up.
    RegisterNode { spec: NodeSpec, at_ms: u64 },
    /// Forgets a node.
    RemoveNode { id: NodeId },
    /// Records a liveness change observed by the leader.
    SetNodeStatus {
        id: NodeId,
        status: NodeStatus,
        at_ms: u64,
    },
    /// Creates a namespace with its residency policy.
    CreateNamespace(NamespaceRecord),
    /// Deletes a namespace; nodes drop its data.
    DeleteNamespace { name: String },
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::RegisterNode { spec, .. } => {
                write!(f, "register-node({} in {})", spec.id, spec.region)
            }
            Command::RemoveNode { id } => write!(f, "remove-node({id})"),
            Command::SetNodeStatus { id, status, .. } => {
                write!(f, "set-node-status({id}, {status:?})")
            }
            Command::CreateNamespace(record) => write!(f, "create-namespace({})", record.name),
            Command::DeleteNamespace { name } => write!(f, "delete-namespace({name})"),
        }
    }
}

/// Result of applying one [`Command`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// The command changed the directory.
    #[default]
    Applied,
    /// The command was valid but changed nothing (already in that state).
    Unchanged,
    /// The command named a node the directory does not know.
    UnknownNode(NodeId),
    /// A namespace of that name exists with another policy.
    NamespaceExists(String),
    /// The command named a namespace the directory does not know.
    UnknownNamespace(String),
}
