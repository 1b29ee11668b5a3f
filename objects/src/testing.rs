//! Directory fixtures for the pure cores' unit tests.

use std::collections::BTreeSet;

use larder_base::{Epoch, Jurisdiction, NodeId, RegionId};
use larder_directory::{
    DirectoryState, NamespacePolicy, NamespaceRecord, NodeRecord, NodeSpec, NodeStatus, ObjectKey,
    ObjectPlacement,
};

/// A directory of `nodes` (id, region, status) and one namespace, `rooms`, allowed
/// everywhere.
pub(crate) fn state(nodes: &[(u64, &str, NodeStatus)]) -> DirectoryState {
    let mut state = DirectoryState::default();
    for (id, region, status) in nodes {
        let spec = NodeSpec {
            id: NodeId(*id),
            region: RegionId(region.to_string()),
            jurisdictions: BTreeSet::new(),
            api_addr: String::new(),
            peer_addr: String::new(),
        };
        let record = NodeRecord {
            spec,
            status: *status,
            status_changed_at_ms: 0,
        };
        state.nodes.insert(NodeId(*id), record);
    }
    with_namespace(&mut state, "rooms", NamespacePolicy::default());
    state
}

pub(crate) fn with_namespace(state: &mut DirectoryState, name: &str, policy: NamespacePolicy) {
    let record = NamespaceRecord {
        name: name.into(),
        policy,
        created_at_ms: 0,
        generation: 0,
    };
    state.namespaces.insert(name.into(), record);
}

/// Gives node `id` the jurisdiction tag `tag`.
pub(crate) fn tag(state: &mut DirectoryState, id: u64, tag: &str) {
    let node = state
        .nodes
        .get_mut(&NodeId(id))
        .expect("a node of the fixture");
    node.spec
        .jurisdictions
        .insert(Jurisdiction(tag.to_string()));
}

/// `rooms/r` in region `eu` at epoch 3.
pub(crate) fn placement(owner: u64, replicas: &[u64]) -> ObjectPlacement {
    ObjectPlacement {
        key: ObjectKey {
            namespace: "rooms".into(),
            id: "r".into(),
        },
        region: RegionId("eu".into()),
        jurisdiction: None,
        owner: NodeId(owner),
        replicas: replicas.iter().copied().map(NodeId).collect(),
        epoch: Epoch(3),
        placed_at_ms: 0,
    }
}
