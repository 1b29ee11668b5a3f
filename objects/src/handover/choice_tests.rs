use larder_base::Epoch;
use larder_directory::NodeStatus::{Down, Up};

use super::*;
use crate::testing::{placement, state, tag};

fn meta(write_epoch: u64, version: u64) -> ReplicaMeta {
    ReplicaMeta {
        epoch: Epoch(4),
        write_epoch: Epoch(write_epoch),
        version,
    }
}

fn ids(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

#[test]
fn the_copy_with_the_highest_write_epoch_and_version_holds_every_acknowledged_write() {
    let fenced = [
        (NodeId(2), meta(3, 9)),
        (NodeId(3), meta(3, 10)),
        (NodeId(4), meta(2, 50)),
    ];
    let no_load = |_: NodeId| 0;
    assert_eq!(most_up_to_date(&fenced, no_load), Some(NodeId(3)));
    // Load never outweighs a more up-to-date copy.
    let loaded = |id: NodeId| if id == NodeId(3) { 1000 } else { 0 };
    assert_eq!(most_up_to_date(&fenced, loaded), Some(NodeId(3)));
    // Equal copies: the least loaded, then the lowest id (the same choice everywhere).
    let tied = [(NodeId(5), meta(3, 10)), (NodeId(3), meta(3, 10))];
    assert_eq!(most_up_to_date(&tied, no_load), Some(NodeId(3)));
    assert_eq!(most_up_to_date(&tied, loaded), Some(NodeId(5)));
    assert_eq!(most_up_to_date(&[], no_load), None);
}

#[test]
fn a_failover_needs_a_fenced_majority_and_tops_the_set_up() {
    let st = state(&[
        (1, "eu", Down),
        (2, "eu", Up),
        (3, "eu", Up),
        (4, "eu", Up),
        (5, "us", Up),
    ]);
    let p = placement(1, &[1, 2, 3]);
    assert!(orphaned(&st, &p));
    assert!(!orphaned(&st, &placement(2, &[2, 3])));
    assert!(
        orphaned(&st, &placement(9, &[9, 2])),
        "a removed owner is orphaned"
    );
    assert_eq!(survivors(&st, &p), ids(&[2, 3]));
    assert_eq!(
        failover_replicas(&st, &p, &[(NodeId(2), meta(3, 1))], 3),
        None
    );
    let fenced = [(NodeId(2), meta(3, 1)), (NodeId(3), meta(3, 2))];
    assert_eq!(
        failover_replicas(&st, &p, &fenced, 3),
        Some(ids(&[3, 2, 4]))
    );
}

#[test]
fn a_move_within_the_region_keeps_the_replicas_with_the_target_first() {
    let st = state(&[
        (1, "eu", Up),
        (2, "eu", Up),
        (3, "eu", Up),
        (4, "eu", Up),
        (5, "eu", Down),
    ]);
    let p = placement(1, &[1, 2, 3]);
    let plan = plan_move(&st, &p, &MoveTarget::Node(NodeId(4)), 3).expect("plan");
    assert_eq!(
        plan,
        Some(MovePlan {
            replicas: ids(&[4, 1, 2]),
            region: None
        })
    );
    // Already there: nothing to do.
    assert_eq!(
        plan_move(&st, &p, &MoveTarget::Node(NodeId(1)), 3).expect("plan"),
        None
    );
    // Typos and impossible targets are refused by name.
    let unknown = plan_move(&st, &p, &MoveTarget::Node(NodeId(9)), 3).expect_err("unknown node");
    assert_eq!(unknown.to_string(), "node 9 is not in the cluster");
    assert!(
        plan_move(&st, &p, &MoveTarget::Node(NodeId(5)), 3).is_err(),
        "a down node"
    );
}

#[test]
fn a_move_across_regions_chooses_there_and_respects_the_jurisdiction() {
    let mut st = state(&[(1, "eu", Up), (2, "eu", Up), (3, "us", Up), (4, "us", Up)]);
    let p = placement(1, &[1, 2]);
    let plan = plan_move(&st, &p, &MoveTarget::Region(RegionId("us".into())), 2)
        .expect("plan")
        .expect("a move");
    assert_eq!(plan.region, Some(RegionId("us".into())));
    assert_eq!(plan.replicas.len(), 2);
    assert!(
        plan.replicas
            .iter()
            .all(|r| [NodeId(3), NodeId(4)].contains(r))
    );
    // An object held to a jurisdiction never goes to a node without it.
    let mut held = p.clone();
    held.jurisdiction = Some(larder_directory::Jurisdiction("eu".into()));
    tag(&mut st, 2, "eu");
    let refused = plan_move(&st, &held, &MoveTarget::Node(NodeId(3)), 2);
    assert!(refused.is_err());
}

#[test]
fn a_removed_replica_is_replaced_by_an_up_node_of_the_region() {
    // Node 3 was removed; 4 is down, 5 is in another region, 6 is up in the region.
    let st = state(&[
        (1, "eu", Up),
        (2, "eu", Up),
        (4, "eu", Down),
        (5, "us", Up),
        (6, "eu", Up),
    ]);
    assert_eq!(
        repaired_replicas(&st, &placement(1, &[1, 2, 3]), 3),
        Some(ids(&[1, 2, 6]))
    );
    // Nobody to take its place: the set shrinks to the known replicas.
    let st_small = state(&[(1, "eu", Up), (2, "eu", Up)]);
    assert_eq!(
        repaired_replicas(&st_small, &placement(2, &[1, 2, 3]), 3),
        Some(ids(&[2, 1]))
    );
    // Every replica known (a down one included): nothing to repair.
    assert_eq!(repaired_replicas(&st, &placement(1, &[1, 2, 4]), 3), None);
    // The owner removed or down: failover's case.
    assert_eq!(repaired_replicas(&st, &placement(3, &[3, 1, 2]), 3), None);
    assert_eq!(repaired_replicas(&st, &placement(4, &[4, 1, 3]), 3), None);
}

#[test]
fn a_drained_node_leaves_every_set_it_is_in() {
    let st = state(&[
        (1, "eu", Up),
        (2, "eu", Up),
        (3, "eu", Up),
        (4, "eu", Down),
        (5, "eu", Up),
    ]);
    // Owner drained: another up replica owns it, 5 takes the third place.
    assert_eq!(
        drained_replicas(&st, &placement(1, &[1, 2, 3]), NodeId(1), 3),
        Some(ids(&[2, 3, 5]))
    );
    // A replica drained from a set of two: the owner keeps it, two up nodes join.
    assert_eq!(
        drained_replicas(&st, &placement(2, &[2, 1]), NodeId(1), 3),
        Some(ids(&[2, 3, 5]))
    );
    // Nobody else up: nothing to hand the object to.
    let alone = state(&[(1, "eu", Up), (4, "eu", Down)]);
    assert_eq!(
        drained_replicas(&alone, &placement(1, &[1, 4]), NodeId(1), 3),
        None
    );
}

#[test]
fn a_short_replica_set_grows_back_to_the_replication_factor() {
    // A failover during an outage left [1, 2]; 6 is up in the region again.
    let st = state(&[(1, "eu", Up), (2, "eu", Up), (4, "eu", Down), (6, "eu", Up)]);
    assert_eq!(
        repaired_replicas(&st, &placement(1, &[1, 2]), 3),
        Some(ids(&[1, 2, 6]))
    );
    // The same order or another: a full set is left alone.
    assert_eq!(repaired_replicas(&st, &placement(2, &[1, 2, 6]), 3), None);
    // Short, with no up node of the region to add: nothing to do yet.
    let st_small = state(&[(1, "eu", Up), (2, "eu", Up), (4, "eu", Down)]);
    assert_eq!(
        repaired_replicas(&st_small, &placement(1, &[1, 2]), 3),
        None
    );
    // A set larger than the factor (an operator's choice) keeps its size.
    assert_eq!(
        repaired_replicas(&st, &placement(1, &[1, 2, 4, 6]), 3),
        None
    );
}

#[test]
fn a_transfer_commits_only_on_a_majority_that_includes_the_new_owner() {
    assert!(transfer_enough(true, 2, 3));
    assert!(
        !transfer_enough(false, 2, 3),
        "a majority without the new owner"
    );
    assert!(!transfer_enough(true, 1, 3));
    assert!(!transfer_enough(true, 2, 4), "two of four is no majority");
    assert!(transfer_enough(true, 1, 1));
}
