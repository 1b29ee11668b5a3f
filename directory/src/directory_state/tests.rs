//! Applying commands: nodes, namespaces, marks, placements and their derived counts.

use std::collections::BTreeSet;

use super::*;

/// The leadership every entry of these tests was proposed by.
const LEADER: Leadership = Leadership {
    term: 1,
    leader: NodeId(1),
};

fn spec(id: u64, api: &str) -> NodeSpec {
    NodeSpec {
        id: NodeId(id),
        region: RegionId("eu-west".into()),
        jurisdictions: BTreeSet::new(),
        api_addr: api.into(),
        peer_addr: format!("peer-{id}"),
    }
}

#[test]
fn register_is_idempotent_and_updates_addresses() {
    let mut state = DirectoryState::default();
    let register = Command::RegisterNode {
        spec: spec(1, "a:1"),
        at_ms: 10,
    };
    assert_eq!(state.apply(&register, LEADER), CommandOutcome::Applied);
    assert_eq!(state.apply(&register, LEADER), CommandOutcome::Unchanged);
    let moved = Command::RegisterNode {
        spec: spec(1, "a:2"),
        at_ms: 20,
    };
    assert_eq!(state.apply(&moved, LEADER), CommandOutcome::Applied);
    let record = state.node(NodeId(1)).expect("registered");
    assert_eq!(record.spec.api_addr, "a:2");
    assert_eq!(record.status_changed_at_ms, 10, "still up since 10");
}

#[test]
fn namespaces_are_created_once_and_deleted() {
    use crate::{Jurisdiction, NamespacePolicy};
    let mut state = DirectoryState::default();
    let eu = NamespaceSpec {
        name: "sessions".into(),
        policy: NamespacePolicy {
            regions: Default::default(),
            jurisdiction: Some(Jurisdiction("eu".into())),
        },
        created_at_ms: 1,
    };
    assert_eq!(
        state.apply(&Command::CreateNamespace(eu.clone()), LEADER),
        CommandOutcome::Applied
    );
    let again = NamespaceSpec {
        created_at_ms: 2,
        ..eu.clone()
    };
    assert_eq!(
        state.apply(&Command::CreateNamespace(again), LEADER),
        CommandOutcome::Unchanged
    );
    let other = NamespaceSpec {
        policy: NamespacePolicy::default(),
        ..eu.clone()
    };
    assert_eq!(
        state.apply(&Command::CreateNamespace(other), LEADER),
        CommandOutcome::NamespaceExists("sessions".into())
    );
    assert_eq!(
        state.namespace("sessions"),
        Some(&NamespaceRecord::new(&eu, 1))
    );
    let delete = Command::DeleteNamespace {
        name: "sessions".into(),
    };
    assert_eq!(state.apply(&delete, LEADER), CommandOutcome::Applied);
    assert_eq!(state.namespace("sessions"), None);
    assert_eq!(
        state.apply(&delete, LEADER),
        CommandOutcome::UnknownNamespace("sessions".into())
    );
}

/// A namespace deleted and created again is a new generation: the old one's
/// placements are gone with it, and one proposed for it before the deletion was
/// applied places nothing.
#[test]
fn a_namespace_created_again_is_a_new_generation_without_the_old_placements() {
    let mut state = DirectoryState::default();
    let spec = NamespaceSpec {
        name: "rooms".into(),
        policy: Default::default(),
        created_at_ms: 1,
    };
    state.apply(&Command::CreateNamespace(spec.clone()), LEADER);
    let first = state.namespace("rooms").expect("created").stored_as();
    assert_eq!(first.as_str(), "rooms@1");
    let mut old = placement(1);
    old.key.namespace = first.clone();
    let mut late = old.clone();
    late.key.id = "room-late".into();
    state.apply(&Command::PlaceObject(old.clone()), LEADER);
    assert_eq!(state.placements_of(&first).count(), 1);
    state.apply(
        &Command::DeleteNamespace {
            name: "rooms".into(),
        },
        LEADER,
    );
    assert_eq!(state.placement(&old.key), None);
    assert_eq!((state.owned_by(NodeId(1)), state.last_generation), (0, 1));
    assert_eq!(
        state.apply(&Command::PlaceObjects(vec![late.clone()]), LEADER),
        CommandOutcome::PlacedAll(vec![None])
    );
    state.apply(&Command::CreateNamespace(spec), LEADER);
    let second = state.namespace("rooms").expect("created").stored_as();
    assert_eq!(second.as_str(), "rooms@2");
    assert_eq!(state.incarnation(&first), None);
    assert!(state.incarnation(&second).is_some());
    // The first generation's late placement stays refused after the name is back.
    assert_eq!(
        state.apply(&Command::PlaceObject(late.clone()), LEADER),
        CommandOutcome::UnknownNamespace(first)
    );
    assert_eq!(state.placements().len(), 0);
}

/// Commands logged before generations apply as they did then, so that a log replayed
/// from its start builds the same state on every node: generation 0, and a deletion
/// that leaves placements.
#[test]
fn namespace_commands_logged_before_generations_apply_as_then() {
    let mut state = DirectoryState::default();
    let spec = NamespaceSpec {
        name: "rooms".into(),
        policy: Default::default(),
        created_at_ms: 1,
    };
    state.apply(&Command::CreateNamespaceV1(spec.clone()), LEADER);
    assert_eq!(
        state.namespace("rooms"),
        Some(&NamespaceRecord::new(&spec, 0))
    );
    state.apply(&Command::PlaceObject(placement(1)), LEADER);
    state.apply(
        &Command::DeleteNamespaceV1 {
            name: "rooms".into(),
        },
        LEADER,
    );
    assert_eq!(state.placements().len(), 1);
    assert_eq!(state.last_generation, 0);
}

#[test]
fn a_removed_node_comes_back_only_by_an_explicit_join() {
    let mut state = DirectoryState::default();
    let register = Command::RegisterNode {
        spec: spec(1, "a:1"),
        at_ms: 10,
    };
    state.apply(&register, LEADER);
    let remove = Command::RemoveNode { id: NodeId(1) };
    assert_eq!(state.apply(&remove, LEADER), CommandOutcome::Applied);
    assert_eq!(
        state.apply(&register, LEADER),
        CommandOutcome::NodeRemoved(NodeId(1))
    );
    assert!(state.node(NodeId(1)).is_none());
    // Removing a node with no record (a member that never registered) remembers it too.
    assert_eq!(
        state.apply(&Command::RemoveNode { id: NodeId(7) }, LEADER),
        CommandOutcome::Applied
    );
    assert!(state.removed_nodes.contains(&NodeId(7)));
    let rejoin = Command::RejoinNode {
        spec: spec(1, "a:1"),
        at_ms: 20,
    };
    assert_eq!(state.apply(&rejoin, LEADER), CommandOutcome::Applied);
    assert!(state.node(NodeId(1)).is_some() && !state.removed_nodes.contains(&NodeId(1)));
}

#[test]
fn status_changes_and_removal() {
    let mut state = DirectoryState::default();
    state.apply(
        &Command::RegisterNode {
            spec: spec(1, "a:1"),
            at_ms: 10,
        },
        LEADER,
    );
    let down = Command::SetNodeStatus {
        id: NodeId(1),
        status: NodeStatus::Down,
        at_ms: 30,
        seen_by: LEADER,
    };
    assert_eq!(state.apply(&down, LEADER), CommandOutcome::Applied);
    assert_eq!(state.apply(&down, LEADER), CommandOutcome::Unchanged);
    assert_eq!(
        state.node(NodeId(1)).expect("known").status,
        NodeStatus::Down
    );
    // Registering again brings it back up.
    state.apply(
        &Command::RegisterNode {
            spec: spec(1, "a:1"),
            at_ms: 40,
        },
        LEADER,
    );
    let record = state.node(NodeId(1)).expect("known");
    assert_eq!(
        (record.status, record.status_changed_at_ms),
        (NodeStatus::Up, 40)
    );
    assert_eq!(
        state.apply(&Command::RemoveNode { id: NodeId(1) }, LEADER),
        CommandOutcome::Applied
    );
    assert_eq!(
        state.apply(&Command::RemoveNode { id: NodeId(1) }, LEADER),
        CommandOutcome::UnknownNode(NodeId(1))
    );
    assert_eq!(
        state.apply(&down, LEADER),
        CommandOutcome::UnknownNode(NodeId(1))
    );
}

/// Regression (issue #5, partition nemesis): a leader cut off long enough judged every
/// node down; once the cut healed it learned of the new leader and its marks were
/// forwarded there and committed. Marks count only from the leadership that saw them.
#[test]
fn a_mark_counts_only_from_the_leadership_that_saw_it() {
    let mut state = DirectoryState::default();
    for id in 1..=3 {
        state.apply(
            &Command::RegisterNode {
                spec: spec(id, "a:1"),
                at_ms: 10,
            },
            LEADER,
        );
    }
    let deposed = Leadership {
        term: 4,
        leader: NodeId(1),
    };
    let current = Leadership {
        term: 5,
        leader: NodeId(2),
    };
    let stale = Command::SetNodeStatus {
        id: NodeId(3),
        status: NodeStatus::Down,
        at_ms: 50,
        seen_by: deposed,
    };
    assert_eq!(
        state.apply(&stale, current),
        CommandOutcome::StaleMark {
            seen_by: deposed,
            proposed_by: current,
        }
    );
    let record = state.node(NodeId(3)).expect("known");
    assert_eq!(
        (record.status, record.status_changed_at_ms),
        (NodeStatus::Up, 10)
    );
    // The same leader in a later term is another leadership: its heartbeat view
    // started afresh.
    let later = Leadership {
        term: 6,
        leader: NodeId(1),
    };
    assert!(matches!(
        state.apply(&stale, later),
        CommandOutcome::StaleMark { .. }
    ));
    // Proposed by the leadership that saw it: applied.
    assert_eq!(state.apply(&stale, deposed), CommandOutcome::Applied);
    assert_eq!(
        state.node(NodeId(3)).expect("known").status,
        NodeStatus::Down
    );
}

fn placement(owner: u64) -> ObjectPlacement {
    ObjectPlacement {
        key: ObjectKey {
            namespace: "rooms".into(),
            id: "room-1".into(),
        },
        region: RegionId("eu-west".into()),
        jurisdiction: None,
        owner: NodeId(owner),
        replicas: vec![NodeId(owner), NodeId(2)],
        epoch: Epoch::FIRST,
        placed_at_ms: 1,
    }
}

#[test]
fn a_reassignment_needs_a_placed_object_and_a_replica_and_may_change_the_region() {
    let mut state = super::with_namespace("rooms");
    let placed = placement(1);
    let reassign = |replicas: Vec<NodeId>, region: Option<&str>| Command::ReassignObject {
        key: placed.key.clone(),
        expected_epoch: Epoch::FIRST,
        replicas,
        region: region.map(|r| RegionId(r.into())),
    };
    assert_eq!(
        state.apply(&reassign(vec![NodeId(2)], None), LEADER),
        CommandOutcome::UnknownObject(placed.key.clone())
    );
    state.apply(&Command::PlaceObject(placed.clone()), LEADER);
    // No replica, no owner: refused, and the placement stays as it was.
    assert_eq!(
        state.apply(&reassign(Vec::new(), None), LEADER),
        CommandOutcome::EpochMismatch(Box::new(placed.clone()))
    );
    let CommandOutcome::Placed(moved) = state.apply(
        &reassign(vec![NodeId(3), NodeId(4)], Some("us-east")),
        LEADER,
    ) else {
        panic!("reassigned")
    };
    assert_eq!(moved.owner, NodeId(3));
    assert_eq!(moved.replicas, vec![NodeId(3), NodeId(4)]);
    assert_eq!(moved.epoch, Epoch::FIRST.next());
    assert_eq!(moved.region, RegionId("us-east".into()));
    assert_eq!(state.placement(&placed.key), Some(&*moved));
}

#[test]
fn owned_counts_follow_placements_reassignments_and_a_round_trip() {
    let mut state = super::with_namespace("rooms");
    let register = |id: u64| Command::RegisterNode {
        spec: spec(id, &format!("api-{id}")),
        at_ms: 1,
    };
    let (a, mut b) = (placement(1), placement(1));
    b.key.id = "room-2".into();
    state.apply(&Command::PlaceObject(a.clone()), LEADER);
    state.apply(&Command::PlaceObject(b.clone()), LEADER);
    // A second placement of a key changes nothing.
    state.apply(&Command::PlaceObject(placement(2)), LEADER);
    assert_eq!(
        (state.owned_by(NodeId(1)), state.owned_by(NodeId(2))),
        (2, 0)
    );
    let reassign = Command::ReassignObject {
        key: b.key.clone(),
        expected_epoch: Epoch::FIRST,
        replicas: vec![NodeId(2), NodeId(1)],
        region: None,
    };
    state.apply(&reassign, LEADER);
    // A stale reassignment (its epoch has passed) changes nothing either.
    state.apply(&reassign, LEADER);
    assert_eq!(
        (state.owned_by(NodeId(1)), state.owned_by(NodeId(2))),
        (1, 1)
    );
    // Nodes 1 and 2 own objects but the state knows neither: both count as gone,
    // and so sets naming them need repair.
    assert!(state.owners_unavailable());
    assert!(state.replica_sets_need_repair(2));
    state.apply(&register(1), LEADER);
    state.apply(&register(2), LEADER);
    assert!(!state.owners_unavailable());
    // Sets of two in a region of two up nodes: short of three, but nothing to grow.
    assert!(!state.replica_sets_need_repair(3));
    state.apply(&register(3), LEADER);
    assert!(
        state.replica_sets_need_repair(3),
        "a third node can join the sets"
    );
    // Stored and sent without the counts; rebuilt when read back.
    let bytes = larder_store::codec::encode(&state).expect("encode");
    let decoded: DirectoryState = larder_store::codec::decode(&bytes).expect("decode");
    assert_eq!(decoded, state);
    assert_eq!(decoded.owned_by(NodeId(2)), 1);
}

/// Logs written before marks named their leadership hold the older variant at its
/// old position in the encoding; they must still decode and apply.
#[test]
fn an_older_log_mark_still_decodes_and_applies() {
    let old = Command::SetNodeStatusUnfenced {
        id: NodeId(1),
        status: NodeStatus::Down,
        at_ms: 30,
    };
    // Variant 2, then the node id, the status (variant 1) and the time, as varints.
    let bytes = larder_store::codec::encode(&old).expect("encode");
    assert_eq!(bytes, vec![2, 1, 1, 30]);
    let decoded: Command = larder_store::codec::decode(&bytes).expect("decode");
    let mut state = DirectoryState::default();
    state.apply(
        &Command::RegisterNode {
            spec: spec(1, "a:1"),
            at_ms: 10,
        },
        LEADER,
    );
    let other = Leadership {
        term: 9,
        leader: NodeId(2),
    };
    assert_eq!(state.apply(&decoded, other), CommandOutcome::Applied);
}

#[test]
fn a_batch_of_placements_keeps_the_first_for_each_key() {
    let mut state = super::with_namespace("rooms");
    let (a, mut b) = (placement(1), placement(3));
    b.key.id = "room-2".into();
    state.apply(&Command::PlaceObject(a.clone()), LEADER);
    // `a` was placed before the batch, `b` twice within it: the first of each wins.
    let batch = Command::PlaceObjects(vec![placement(2), b.clone(), {
        let mut again = b.clone();
        again.owner = NodeId(4);
        again
    }]);
    assert_eq!(
        state.apply(&batch, LEADER),
        CommandOutcome::PlacedAll(vec![Some(a.clone()), Some(b.clone()), Some(b.clone())])
    );
    assert_eq!(state.placement(&b.key), Some(&b));
    assert_eq!(
        (state.owned_by(NodeId(1)), state.owned_by(NodeId(3))),
        (1, 1)
    );
    let bytes = larder_store::codec::encode(&batch).expect("encode");
    let decoded: Command = larder_store::codec::decode(&bytes).expect("decode");
    assert_eq!(decoded, batch);
}
