use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    Command, CommandOutcome, Epoch, Leadership, Namespace, NamespaceRecord, NodeId, NodeRecord,
    NodeSpec, NodeStatus, ObjectKey, ObjectPlacement, RegionId,
};

/// The directory's replicated state, and the pure function that applies commands to it.
///
/// No I/O here: the Raft state machine persists it, tests drive it directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DirectoryRecords")]
pub struct DirectoryState {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub namespaces: BTreeMap<Namespace, NamespaceRecord>,
    /// Names of deleted namespaces, so every node drops their data; a name leaves this set
    /// when a namespace of that name is created again.
    pub deleted_namespaces: BTreeSet<Namespace>,
    /// Object placements (stored as one record each; see the state machine). Changed
    /// only by `apply`, which keeps `counts` in step; read through
    /// [`DirectoryState::placements`].
    placements: BTreeMap<ObjectKey, ObjectPlacement>,
    /// Derived from `placements`, never stored.
    #[serde(skip_serializing)]
    counts: PlacementCounts,
}

/// Counts over the placements, kept in step by `apply`: what balanced placement and the
/// failover and repair tasks weigh without a pass over every placement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PlacementCounts {
    /// Objects each node owns.
    owned: BTreeMap<NodeId, usize>,
    /// Replica sets each node is in (as owner or replica).
    member: BTreeMap<NodeId, usize>,
    /// Replica sets of each size, per region.
    sizes: BTreeMap<(RegionId, usize), usize>,
}

impl PlacementCounts {
    fn add(&mut self, placement: &ObjectPlacement) {
        *self.owned.entry(placement.owner).or_default() += 1;
        for replica in &placement.replicas {
            *self.member.entry(*replica).or_default() += 1;
        }
        let size = (placement.region.clone(), placement.replicas.len());
        *self.sizes.entry(size).or_default() += 1;
    }

    fn remove(&mut self, placement: &ObjectPlacement) {
        decrement(&mut self.owned, placement.owner);
        for replica in &placement.replicas {
            decrement(&mut self.member, *replica);
        }
        decrement(
            &mut self.sizes,
            (placement.region.clone(), placement.replicas.len()),
        );
    }
}

/// One less of `key`; a count that reaches zero leaves the map, so every key present
/// has a count above zero.
fn decrement<K: Ord>(counts: &mut BTreeMap<K, usize>, key: K) {
    if let Some(count) = counts.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

/// What a [`DirectoryState`] is stored and sent as (the snapshot and the earlier
/// whole-state record): the same fields in the same order, the derived counts left out.
#[derive(Deserialize)]
struct DirectoryRecords {
    nodes: BTreeMap<NodeId, NodeRecord>,
    namespaces: BTreeMap<Namespace, NamespaceRecord>,
    deleted_namespaces: BTreeSet<Namespace>,
    placements: BTreeMap<ObjectKey, ObjectPlacement>,
}

impl From<DirectoryRecords> for DirectoryState {
    fn from(records: DirectoryRecords) -> DirectoryState {
        DirectoryState::from_parts(
            records.nodes,
            records.namespaces,
            records.deleted_namespaces,
            records.placements,
        )
    }
}

impl DirectoryState {
    /// A state from its stored parts; the derived counts are rebuilt.
    pub fn from_parts(
        nodes: BTreeMap<NodeId, NodeRecord>,
        namespaces: BTreeMap<Namespace, NamespaceRecord>,
        deleted_namespaces: BTreeSet<Namespace>,
        placements: BTreeMap<ObjectKey, ObjectPlacement>,
    ) -> DirectoryState {
        let mut counts = PlacementCounts::default();
        for placement in placements.values() {
            counts.add(placement);
        }
        DirectoryState {
            nodes,
            namespaces,
            deleted_namespaces,
            placements,
            counts,
        }
    }

    /// Every object placement, by key.
    pub fn placements(&self) -> &BTreeMap<ObjectKey, ObjectPlacement> {
        &self.placements
    }

    /// How many objects `node` owns.
    pub fn owned_by(&self, node: NodeId) -> usize {
        self.counts.owned.get(&node).copied().unwrap_or(0)
    }

    /// Whether some object's owner is down or gone: whether a failover can have work.
    /// Costs a look at each owning node, not at each placement.
    pub fn owners_unavailable(&self) -> bool {
        self.counts
            .owned
            .keys()
            .any(|id| self.node(*id).is_none_or(|n| n.status != NodeStatus::Up))
    }

    /// Whether some replica set names a node no longer in the cluster, or has fewer than
    /// `replication_factor` members in a region with more up nodes than that: whether a
    /// replica-set repair can have work. (A region too small for the factor keeps its
    /// sets short without asking for repairs each check.) Costs a look per node and per
    /// set size, not per placement.
    pub fn replica_sets_need_repair(&self, replication_factor: usize) -> bool {
        let up_in = |region: &RegionId| {
            self.nodes
                .values()
                .filter(|n| n.status == NodeStatus::Up && &n.spec.region == region)
                .count()
        };
        self.counts.member.keys().any(|id| self.node(*id).is_none())
            || self
                .counts
                .sizes
                .keys()
                .any(|(region, size)| *size < replication_factor && up_in(region) > *size)
    }

    /// Applies `command`, taken from a log entry that `proposed_by` proposed.
    pub fn apply(&mut self, command: &Command, proposed_by: Leadership) -> CommandOutcome {
        match command {
            Command::RegisterNode { spec, at_ms } => self.register_node(spec, *at_ms),
            Command::RemoveNode { id } => self.remove_node(*id),
            Command::SetNodeStatusUnfenced { id, status, at_ms } => {
                self.set_node_status(*id, *status, *at_ms)
            }
            Command::SetNodeStatus {
                id,
                status,
                at_ms,
                seen_by,
            } => {
                if *seen_by == proposed_by {
                    self.set_node_status(*id, *status, *at_ms)
                } else {
                    CommandOutcome::StaleMark {
                        seen_by: *seen_by,
                        proposed_by,
                    }
                }
            }
            Command::CreateNamespace(record) => self.create_namespace(record),
            Command::PlaceObject(placement) => {
                CommandOutcome::Placed(Box::new(self.place_object(placement)))
            }
            Command::PlaceObjects(placements) => {
                CommandOutcome::PlacedAll(placements.iter().map(|p| self.place_object(p)).collect())
            }
            Command::ReassignObject {
                key,
                expected_epoch,
                replicas,
                region,
            } => self.reassign_object(key, *expected_epoch, replicas, region.as_ref()),
            Command::DeleteNamespace { name } => self.delete_namespace(name),
        }
    }

    /// A node registering comes up; one already up keeps the time it came up, so that
    /// only its spec changes.
    fn register_node(&mut self, spec: &NodeSpec, at_ms: u64) -> CommandOutcome {
        let record = NodeRecord {
            spec: spec.clone(),
            status: NodeStatus::Up,
            status_changed_at_ms: at_ms,
        };
        match self.nodes.get(&spec.id) {
            Some(old) if old.spec == *spec && old.status == NodeStatus::Up => {
                CommandOutcome::Unchanged
            }
            Some(old) if old.status == NodeStatus::Up => {
                let record = NodeRecord {
                    status_changed_at_ms: old.status_changed_at_ms,
                    ..record
                };
                self.nodes.insert(spec.id, record);
                CommandOutcome::Applied
            }
            _ => {
                self.nodes.insert(spec.id, record);
                CommandOutcome::Applied
            }
        }
    }

    fn remove_node(&mut self, id: NodeId) -> CommandOutcome {
        match self.nodes.remove(&id) {
            Some(_) => CommandOutcome::Applied,
            None => CommandOutcome::UnknownNode(id),
        }
    }

    fn set_node_status(&mut self, id: NodeId, status: NodeStatus, at_ms: u64) -> CommandOutcome {
        match self.nodes.get_mut(&id) {
            None => CommandOutcome::UnknownNode(id),
            Some(record) if record.status == status => CommandOutcome::Unchanged,
            Some(record) => {
                record.status = status;
                record.status_changed_at_ms = at_ms;
                CommandOutcome::Applied
            }
        }
    }

    /// Creating a namespace again with the same policy changes nothing; with another
    /// policy it is refused. A created name is no longer deleted.
    fn create_namespace(&mut self, record: &NamespaceRecord) -> CommandOutcome {
        match self.namespaces.get(&record.name) {
            Some(existing) if existing.policy == record.policy => CommandOutcome::Unchanged,
            Some(_) => CommandOutcome::NamespaceExists(record.name.clone()),
            None => {
                self.deleted_namespaces.remove(&record.name);
                self.namespaces.insert(record.name.clone(), record.clone());
                CommandOutcome::Applied
            }
        }
    }

    /// The name is remembered as deleted, so every node drops the namespace's data.
    fn delete_namespace(&mut self, name: &Namespace) -> CommandOutcome {
        match self.namespaces.remove(name) {
            Some(_) => {
                self.deleted_namespaces.insert(name.clone());
                CommandOutcome::Applied
            }
            None => CommandOutcome::UnknownNamespace(name.clone()),
        }
    }

    /// The first placement of an object wins: every later one is answered with it.
    /// The object's placement: `placement` if it had none (the first placement wins).
    fn place_object(&mut self, placement: &ObjectPlacement) -> ObjectPlacement {
        self.placements
            .entry(placement.key.clone())
            .or_insert_with(|| {
                self.counts.add(placement);
                placement.clone()
            })
            .clone()
    }

    /// A reassignment applies only at the epoch it was decided at, and raises the epoch;
    /// the first replica becomes the owner.
    fn reassign_object(
        &mut self,
        key: &ObjectKey,
        expected_epoch: Epoch,
        replicas: &[NodeId],
        region: Option<&RegionId>,
    ) -> CommandOutcome {
        match self.placements.get_mut(key) {
            None => CommandOutcome::UnknownObject(key.clone()),
            Some(current) if current.epoch != expected_epoch || replicas.is_empty() => {
                CommandOutcome::EpochMismatch(Box::new(current.clone()))
            }
            Some(current) => {
                self.counts.remove(current);
                current.owner = replicas[0];
                current.replicas = replicas.to_vec();
                current.epoch = current.epoch.next();
                if let Some(region) = region {
                    current.region = region.clone();
                }
                self.counts.add(current);
                CommandOutcome::Placed(Box::new(current.clone()))
            }
        }
    }

    pub fn placement(&self, key: &ObjectKey) -> Option<&ObjectPlacement> {
        self.placements.get(key)
    }

    pub fn namespace(&self, name: &str) -> Option<&NamespaceRecord> {
        self.namespaces.get(name)
    }

    pub fn node(&self, id: NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&id)
    }
}

#[cfg(test)]
mod tests;
