use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    Command, CommandOutcome, Epoch, Leadership, Namespace, NamespaceRecord, NamespaceSpec, NodeId,
    NodeRecord, NodeSpec, NodeStatus, ObjectKey, ObjectPlacement, RegionId,
};

/// The directory's replicated state, and the pure function that applies commands to it.
///
/// No I/O here: the Raft state machine persists it, tests drive it directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DirectoryRecords")]
pub struct DirectoryState {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    /// Namespaces by the name clients know them by.
    pub namespaces: BTreeMap<Namespace, NamespaceRecord>,
    /// The last namespace generation handed out. Data stored under an incarnation of a
    /// generation up to this one that is not a current namespace's is a deleted
    /// namespace's: every node drops it (nodes need no list of deleted names).
    pub last_generation: u64,
    /// Nodes removed from the cluster: one that comes back is refused (and learns it)
    /// unless it joins explicitly (`Command::RejoinNode`).
    pub removed_nodes: BTreeSet<NodeId>,
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
    last_generation: u64,
    removed_nodes: BTreeSet<NodeId>,
    placements: BTreeMap<ObjectKey, ObjectPlacement>,
}

impl From<DirectoryRecords> for DirectoryState {
    fn from(records: DirectoryRecords) -> DirectoryState {
        let mut state = DirectoryState::from_parts(
            records.nodes,
            records.namespaces,
            records.last_generation,
            records.placements,
        );
        state.removed_nodes = records.removed_nodes;
        state
    }
}

/// A [`DirectoryState`] as stored and sent before namespace generations (state machine
/// layouts v1 and v2), read to upgrade it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct DirectoryRecordsV1 {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub namespaces: BTreeMap<Namespace, NamespaceSpec>,
    /// Deleted names: generation 0 data not of a current namespace is dropped anyway.
    #[allow(dead_code)]
    pub deleted_namespaces: BTreeSet<Namespace>,
    pub placements: BTreeMap<ObjectKey, ObjectPlacement>,
}

impl From<DirectoryRecordsV1> for DirectoryState {
    fn from(records: DirectoryRecordsV1) -> DirectoryState {
        let namespaces = records
            .namespaces
            .into_iter()
            .map(|(name, spec)| (name, NamespaceRecord::new(&spec, 0)))
            .collect();
        DirectoryState::from_parts(records.nodes, namespaces, 0, records.placements)
    }
}

impl DirectoryState {
    /// A state from its stored parts; the derived counts are rebuilt.
    pub fn from_parts(
        nodes: BTreeMap<NodeId, NodeRecord>,
        namespaces: BTreeMap<Namespace, NamespaceRecord>,
        last_generation: u64,
        placements: BTreeMap<ObjectKey, ObjectPlacement>,
    ) -> DirectoryState {
        let mut counts = PlacementCounts::default();
        for placement in placements.values() {
            counts.add(placement);
        }
        DirectoryState {
            nodes,
            namespaces,
            last_generation,
            removed_nodes: BTreeSet::new(),
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
            Command::RejoinNode { spec, at_ms } => {
                self.removed_nodes.remove(&spec.id);
                self.register_node(spec, *at_ms)
            }
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
            Command::CreateNamespace(spec) => self.create_namespace(spec, true),
            Command::CreateNamespaceV1(spec) => self.create_namespace(spec, false),
            Command::PlaceObject(placement) => match self.place_object(placement) {
                Some(placed) => CommandOutcome::Placed(Box::new(placed)),
                None => CommandOutcome::UnknownNamespace(placement.key.namespace.clone()),
            },
            Command::PlaceObjects(placements) => {
                CommandOutcome::PlacedAll(placements.iter().map(|p| self.place_object(p)).collect())
            }
            Command::ReassignObject {
                key,
                expected_epoch,
                replicas,
                region,
            } => self.reassign_object(key, *expected_epoch, replicas, region.as_ref()),
            Command::DeleteNamespace { name } => self.delete_namespace(name, true),
            Command::DeleteNamespaceV1 { name } => self.delete_namespace(name, false),
        }
    }

    /// A node registering comes up; one already up keeps the time it came up, so that
    /// only its spec changes.
    fn register_node(&mut self, spec: &NodeSpec, at_ms: u64) -> CommandOutcome {
        if self.removed_nodes.contains(&spec.id) {
            return CommandOutcome::NodeRemoved(spec.id);
        }
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

    /// Forgets the node's record and remembers its id as removed.
    fn remove_node(&mut self, id: NodeId) -> CommandOutcome {
        let newly = self.removed_nodes.insert(id);
        match self.nodes.remove(&id) {
            Some(_) => CommandOutcome::Applied,
            None if newly => CommandOutcome::Applied,
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
    /// policy it is refused. A new one is the next generation of its name (`generated`;
    /// else generation 0, as logged before generations).
    fn create_namespace(&mut self, spec: &NamespaceSpec, generated: bool) -> CommandOutcome {
        match self.namespaces.get(&spec.name) {
            Some(existing) if existing.policy == spec.policy => CommandOutcome::Unchanged,
            Some(_) => CommandOutcome::NamespaceExists(spec.name.clone()),
            None => {
                let generation = if generated {
                    self.last_generation += 1;
                    self.last_generation
                } else {
                    0
                };
                let record = NamespaceRecord::new(spec, generation);
                self.namespaces.insert(spec.name.clone(), record);
                CommandOutcome::Applied
            }
        }
    }

    /// Forgets the namespace and (`with_placements`; not as logged before generations)
    /// its objects' placements. Its data on every node is now an old generation's.
    fn delete_namespace(&mut self, name: &Namespace, with_placements: bool) -> CommandOutcome {
        let Some(record) = self.namespaces.remove(name) else {
            return CommandOutcome::UnknownNamespace(name.clone());
        };
        if with_placements {
            let keys: Vec<ObjectKey> = self
                .placements_of(&record.stored_as())
                .map(|p| p.key.clone())
                .collect();
            for key in keys {
                if let Some(placement) = self.placements.remove(&key) {
                    self.counts.remove(&placement);
                }
            }
        }
        CommandOutcome::Applied
    }

    /// The object's placement: `placement` if it had none (the first placement wins);
    /// `None` when its namespace incarnation is not a current namespace (deleted since
    /// the placement was proposed), which places nothing.
    fn place_object(&mut self, placement: &ObjectPlacement) -> Option<ObjectPlacement> {
        self.incarnation(&placement.key.namespace)?;
        Some(
            self.placements
                .entry(placement.key.clone())
                .or_insert_with(|| {
                    self.counts.add(placement);
                    placement.clone()
                })
                .clone(),
        )
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

    /// The namespace clients call `name`.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceRecord> {
        self.namespaces.get(name)
    }

    /// The namespace whose data is stored as `incarnation`, if it is current (not
    /// deleted, not created again since).
    pub fn incarnation(&self, incarnation: &Namespace) -> Option<&NamespaceRecord> {
        self.namespaces
            .get(incarnation.name())
            .filter(|record| record.generation == incarnation.generation())
    }

    /// Whether data stored under `incarnation` belongs to a deleted namespace: one this
    /// directory created (its generation is not newer than the last) that is not
    /// current. Such data is garbage wherever it lingers.
    pub fn is_deleted(&self, incarnation: &Namespace) -> bool {
        self.incarnation(incarnation).is_none() && incarnation.generation() <= self.last_generation
    }

    /// The placements of objects of the namespace incarnation `incarnation`, in id
    /// order, read in place.
    pub fn placements_of<'a>(
        &'a self,
        incarnation: &'a Namespace,
    ) -> impl Iterator<Item = &'a ObjectPlacement> + 'a {
        let first = ObjectKey {
            namespace: incarnation.clone(),
            id: String::new(),
        };
        self.placements
            .range(first..)
            .map(|(_, p)| p)
            .take_while(move |p| p.key.namespace == *incarnation)
    }

    pub fn node(&self, id: NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&id)
    }
}

/// A directory holding one namespace, `name`, as generation 0 (its data under the
/// bare name), for tests that place objects.
#[cfg(test)]
pub(crate) fn with_namespace(name: &str) -> DirectoryState {
    let mut state = DirectoryState::default();
    let spec = NamespaceSpec {
        name: name.into(),
        policy: Default::default(),
        created_at_ms: 0,
    };
    state.create_namespace(&spec, false);
    state
}

#[cfg(test)]
mod tests;
