//! The choices of a hand-over, as pure functions of the directory state: which copy
//! holds every acknowledged write, who owns the object next, and which nodes make its
//! replica set — for a failover, a move, a drain and a replica-set repair.

use std::cmp::Reverse;

use larder_base::NodeId;
use larder_directory::{
    DirectoryState, NodeStatus, ObjectPlacement, Owner, RegionId, choose_replicas,
};

use crate::{ObjectError, ReplicaMeta};

/// Where to move an object.
#[derive(Debug, Clone)]
pub enum MoveTarget {
    Node(NodeId),
    Region(RegionId),
}

/// A move's new replica set (the owner first), and its region when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MovePlan {
    pub replicas: Vec<NodeId>,
    pub region: Option<RegionId>,
}

fn is_up(state: &DirectoryState, id: NodeId) -> bool {
    state.node(id).is_some_and(|n| n.status == NodeStatus::Up)
}

/// Whether the majority `fenced` of a replica set (fenced at the next epoch, so no
/// older owner gets another write acknowledged) is one.
pub(crate) fn is_majority(fenced: usize, placement: &ObjectPlacement) -> bool {
    fenced >= placement.quorum()
}

/// Among copies fenced at the next epoch, the one holding every acknowledged write:
/// each write is on a majority, which meets the fenced majority, so the copy with the
/// highest (write epoch, version) has them all. Among equal copies the node with the
/// least `load` (objects it owns) is chosen, so failovers spread owners instead of
/// piling them on the lowest ids; then the lowest id, the same choice on every node.
pub(crate) fn most_up_to_date(
    fenced: &[(NodeId, ReplicaMeta)],
    load: impl Fn(NodeId) -> usize,
) -> Option<NodeId> {
    fenced
        .iter()
        .max_by_key(|(id, meta)| {
            (
                meta.write_epoch,
                meta.version,
                Reverse(load(*id)),
                Reverse(*id),
            )
        })
        .map(|(id, _)| *id)
}

/// Whether a hand-over's state transfer reached enough of the new replica set to
/// commit: a majority of it, **the new owner among them**. An owner new to its epoch
/// installs its own copy on the others when it activates, so a new owner that missed
/// the transfer would roll the object back (found by the simulation, seed
/// 101943719929760104: a move whose install missed the target lost 380 acknowledged
/// adds). `installed` counts the new owner when it took the state.
pub(crate) fn transfer_enough(owner_took: bool, installed: usize, new_set: usize) -> bool {
    owner_took && installed > new_set / 2
}

/// Whether the object's owner is gone or recorded down: failover's case.
pub(crate) fn orphaned(state: &DirectoryState, placement: &ObjectPlacement) -> bool {
    state
        .node(placement.owner)
        .is_none_or(|n| n.status == NodeStatus::Down)
}

/// The replicas besides the owner that are up: the ones a failover fences.
pub(crate) fn survivors(state: &DirectoryState, placement: &ObjectPlacement) -> Vec<NodeId> {
    placement
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != placement.owner && is_up(state, *r))
        .collect()
}

/// A failover's new replica set, once `fenced` (a majority) answered: the most
/// up-to-date copy owns the object, the other fenced copies stay, and up nodes of the
/// region top the set up to the replication factor. `None` without a majority.
pub(crate) fn failover_replicas(
    state: &DirectoryState,
    placement: &ObjectPlacement,
    fenced: &[(NodeId, ReplicaMeta)],
    replication_factor: usize,
) -> Option<Vec<NodeId>> {
    if !is_majority(fenced.len(), placement) {
        return None;
    }
    let owner = most_up_to_date(fenced, |id| state.owned_by(id))?;
    let mut replicas = vec![owner];
    replicas.extend(fenced.iter().map(|(id, _)| *id).filter(|id| *id != owner));
    let target = placement.replicas.len().max(replication_factor);
    top_up(state, placement, &mut replicas, target);
    Some(replicas)
}

/// A move's new replica set: `Ok(None)` when the object is there already.
pub(crate) fn plan_move(
    state: &DirectoryState,
    placement: &ObjectPlacement,
    target: &MoveTarget,
    replication_factor: usize,
) -> Result<Option<MovePlan>, ObjectError> {
    let namespace = state
        .incarnation(&placement.key.namespace)
        .ok_or_else(|| ObjectError::NamespaceNotFound(placement.key.namespace.clone()))?;
    let (region, preferred) = match target {
        MoveTarget::Node(node) => {
            let record = state.node(*node).ok_or_else(|| {
                ObjectError::InvalidArgument(format!("node {node} is not in the cluster"))
            })?;
            if record.status != NodeStatus::Up {
                return Err(ObjectError::InvalidArgument(format!("node {node} is down")));
            }
            (record.spec.region.clone(), Some(*node))
        }
        MoveTarget::Region(region) => (region.clone(), None),
    };
    let policy = &namespace.policy;
    if !policy.regions.is_empty() && !policy.regions.contains(&region) {
        return Err(ObjectError::InvalidArgument(format!(
            "region {region} is outside namespace {:?} ({})",
            placement.key.namespace,
            policy.describe()
        )));
    }
    let rf = placement.replicas.len().max(replication_factor);
    let mut replicas = if region == placement.region {
        // Same region: keep the current replicas, the target first.
        let mut set: Vec<NodeId> = preferred.into_iter().collect();
        set.extend(
            placement
                .replicas
                .iter()
                .copied()
                .filter(|r| Some(*r) != preferred && is_up(state, *r)),
        );
        set
    } else {
        let jurisdiction = placement.jurisdiction.as_ref();
        let owner = preferred.map_or(Owner::Least, Owner::Exactly);
        choose_replicas(state, &placement.key, &region, jurisdiction, rf, owner)
            .map_err(|err| ObjectError::Placement(err.to_string()))?
    };
    if let Some(node) = preferred
        && placement.jurisdiction.as_ref().is_some_and(|j| {
            !state
                .node(node)
                .is_some_and(|n| n.spec.jurisdictions.contains(j))
        })
    {
        return Err(ObjectError::InvalidArgument(format!(
            "node {node} lacks the object's jurisdiction"
        )));
    }
    replicas.truncate(rf);
    if replicas.first() == Some(&placement.owner) && replicas == placement.replicas {
        return Ok(None);
    }
    let region = (region != placement.region).then_some(region);
    Ok(Some(MovePlan { replicas, region }))
}

/// The replica set `placement` should have: the owner first, the other replicas the
/// directory still knows (removed nodes leave), then up nodes of the region (with the
/// object's jurisdiction) until the set has `replication_factor` members again — a
/// failover or repair during a wide outage leaves a set short, and a set of two needs
/// both for a majority, so one removal or failure more would leave the object without
/// one for good. `None` when the set would not change, or when the owner is not up
/// (failover's case: it hands the object to a replica and leaves the removed nodes out).
pub fn repaired_replicas(
    state: &DirectoryState,
    placement: &ObjectPlacement,
    replication_factor: usize,
) -> Option<Vec<NodeId>> {
    if !is_up(state, placement.owner) {
        return None;
    }
    let mut replicas: Vec<NodeId> = vec![placement.owner];
    replicas.extend(
        placement
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != placement.owner && state.node(*r).is_some()),
    );
    top_up(
        state,
        placement,
        &mut replicas,
        replication_factor.max(placement.replicas.len()),
    );
    let unchanged = replicas.len() == placement.replicas.len()
        && replicas.iter().all(|r| placement.replicas.contains(r));
    (!unchanged).then_some(replicas)
}

/// `placement`'s replica set without `node`: the owner first (another up replica when
/// `node` owned it), the other up replicas, then up nodes of the region up to the
/// replication factor. `None` when no up node is left to own it.
pub(crate) fn drained_replicas(
    state: &DirectoryState,
    placement: &ObjectPlacement,
    node: NodeId,
    replication_factor: usize,
) -> Option<Vec<NodeId>> {
    let up = |id: &NodeId| *id != node && is_up(state, *id);
    let mut replicas: Vec<NodeId> = Vec::new();
    if placement.owner != node {
        replicas.push(placement.owner);
    }
    for replica in &placement.replicas {
        if up(replica) && !replicas.contains(replica) {
            replicas.push(*replica);
        }
    }
    // `node` itself is up: keep it out of the top-up.
    replicas.push(node);
    top_up(
        state,
        placement,
        &mut replicas,
        replication_factor.max(placement.replicas.len()) + 1,
    );
    replicas.retain(|r| *r != node);
    (!replicas.is_empty()).then_some(replicas)
}

/// Adds up nodes of `placement`'s region (with its jurisdiction) to `replicas` until it
/// has `target` members or no such node is left.
pub(crate) fn top_up(
    state: &DirectoryState,
    placement: &ObjectPlacement,
    replicas: &mut Vec<NodeId>,
    target: usize,
) {
    for node in state.nodes.values() {
        if replicas.len() >= target {
            break;
        }
        let eligible = node.status == NodeStatus::Up
            && node.spec.region == placement.region
            && placement
                .jurisdiction
                .as_ref()
                .is_none_or(|j| node.spec.jurisdictions.contains(j));
        if eligible && !replicas.contains(&node.spec.id) {
            replicas.push(node.spec.id);
        }
    }
}

#[cfg(test)]
#[path = "choice_tests.rs"]
mod tests;
