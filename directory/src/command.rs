use serde::{Deserialize, Serialize};

use crate::{
    Epoch, Namespace, NamespaceSpec, NodeId, NodeSpec, NodeStatus, ObjectKey, ObjectPlacement,
};

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
    /// A liveness change as logged before marks named the leadership that saw them.
    /// Logs written then may still hold some, so it keeps its place in the encoding and is
    /// applied as it always was; nothing proposes it any more.
    SetNodeStatusUnfenced {
        id: NodeId,
        status: NodeStatus,
        at_ms: u64,
    },
    /// A namespace creation as logged before generations: applied as it always was
    /// (generation 0, the bare name). Nothing proposes it any more.
    CreateNamespaceV1(NamespaceSpec),
    /// A namespace deletion as logged before generations: forgets the record only.
    /// Nothing proposes it any more.
    DeleteNamespaceV1 { name: Namespace },
    /// Places a new object; if it is already placed, nothing changes and the existing
    /// placement is the answer (the first placement wins).
    PlaceObject(ObjectPlacement),
    /// Moves ownership: the first replica becomes the owner, epoch + 1 — only if the
    /// placement is still at `expected_epoch`.
    ReassignObject {
        key: ObjectKey,
        expected_epoch: Epoch,
        replicas: Vec<NodeId>,
        /// A move to another region changes it.
        region: Option<crate::RegionId>,
    },
    /// Records a liveness change that the leader of `seen_by` saw in the heartbeat
    /// acknowledgements of its own leadership. Applied only from a log entry that same
    /// leadership proposed: a leader deposed while cut off judges every node it could not
    /// reach down, and its marks must not reach the log through anyone else.
    /// (Last in the enum: the encoding numbers variants by position.)
    SetNodeStatus {
        id: NodeId,
        status: NodeStatus,
        at_ms: u64,
        seen_by: Leadership,
    },
    /// Places new objects in order, each as [`Command::PlaceObject`] does: concurrent
    /// first writes on one node share an entry. (After `SetNodeStatus`: the encoding
    /// numbers variants by position.)
    PlaceObjects(Vec<ObjectPlacement>),
    /// Creates a namespace with its residency policy, as the next generation of its
    /// name: nothing an earlier namespace of that name stored belongs to it.
    CreateNamespace(NamespaceSpec),
    /// Deletes a namespace and its placements; every node drops its data.
    DeleteNamespace { name: Namespace },
    /// [`Command::RegisterNode`] for an explicit join: also takes back a node that was
    /// removed (`RegisterNode` refuses one).
    RejoinNode { spec: NodeSpec, at_ms: u64 },
}

/// One leadership of the directory's Raft group: a term and the node that led it (the
/// leader id a log entry records as its proposer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    pub term: u64,
    pub leader: NodeId,
}

impl std::fmt::Display for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "term {} led by {}", self.term, self.leader)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::RegisterNode { spec, .. } => {
                write!(f, "register-node({} in {})", spec.id, spec.region)
            }
            Command::RemoveNode { id } => write!(f, "remove-node({id})"),
            Command::RejoinNode { spec, .. } => {
                write!(f, "rejoin-node({} in {})", spec.id, spec.region)
            }
            Command::SetNodeStatusUnfenced { id, status, .. } => {
                write!(f, "set-node-status({id}, {status:?})")
            }
            Command::SetNodeStatus {
                id,
                status,
                seen_by,
                ..
            } => {
                write!(f, "set-node-status({id}, {status:?}, seen in {seen_by})")
            }
            Command::CreateNamespace(spec) | Command::CreateNamespaceV1(spec) => {
                write!(f, "create-namespace({})", spec.name)
            }
            Command::DeleteNamespace { name } | Command::DeleteNamespaceV1 { name } => {
                write!(f, "delete-namespace({name})")
            }
            Command::PlaceObject(p) => write!(f, "place-object({} at {})", p.key, p.owner),
            Command::PlaceObjects(placements) => write!(f, "place-objects({})", placements.len()),
            Command::ReassignObject {
                key,
                expected_epoch,
                ..
            } => {
                write!(f, "reassign-object({key} from epoch {expected_epoch})")
            }
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
    NamespaceExists(Namespace),
    /// The command named a namespace the directory does not know.
    UnknownNamespace(Namespace),
    /// The object's placement after the command.
    Placed(Box<ObjectPlacement>),
    /// A reassignment named an old epoch; the current placement.
    EpochMismatch(Box<ObjectPlacement>),
    /// The command named an object that is not placed.
    UnknownObject(ObjectKey),
    /// A liveness mark seen by one leadership reached the log through another; ignored.
    StaleMark {
        seen_by: Leadership,
        proposed_by: Leadership,
    },
    /// Each object's placement after [`Command::PlaceObjects`], in its order; `None`
    /// where the object's namespace incarnation no longer exists (deleted meanwhile).
    PlacedAll(Vec<Option<ObjectPlacement>>),
    /// The node was removed from the cluster: it cannot register again.
    NodeRemoved(NodeId),
}
