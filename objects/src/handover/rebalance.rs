//! Rebalancing: after nodes join (or a burst of creations through one node), hands
//! ownership from the most-loaded up nodes of a region to the least-loaded, a bounded
//! number of objects per call and a few at a time, each a hand-over like a move (fence,
//! read, install, commit), so no acknowledged write is lost. The plan is pure
//! ([`rebalancing_moves`], [`owner_moved`]); [`rebalance`] finds objects to carry it out
//! and runs the hand-overs.

use std::collections::BTreeMap;

use futures::StreamExt;
use larder_base::{Namespace, NodeId, RegionId};
use larder_directory::{NodeStatus, ObjectPlacement};

use super::mover::hand_over;
use crate::ObjectHost;

/// Hand-overs of one rebalance running at once: each fences, transfers state and waits
/// out a lease, so a few overlap without loading the region.
pub const REBALANCE_MOVES_IN_FLIGHT: usize = 4;

/// Most moves one rebalance call may make; callers repeat the call to go on.
pub const REBALANCE_MOVES_MAX: usize = 1_000;

/// Objects looked at, per planned move, when choosing what to move: among them one whose
/// replica set already holds the new owner is preferred (its state is there already).
const CANDIDATES_PER_MOVE: usize = 4;

/// Moves (from, to), one object each, that take the owned counts `loads` to within one
/// of each other, the most-loaded node giving to the least-loaded first; at most
/// `moves_max`.
pub fn rebalancing_moves(
    loads: &BTreeMap<NodeId, usize>,
    moves_max: usize,
) -> Vec<(NodeId, NodeId)> {
    let mut loads = loads.clone();
    let mut moves = Vec::new();
    while moves.len() < moves_max {
        let most = loads
            .iter()
            .max_by_key(|(id, load)| (**load, std::cmp::Reverse(**id)));
        let least = loads.iter().min_by_key(|(id, load)| (**load, **id));
        let (Some((&from, &high)), Some((&to, &low))) = (most, least) else {
            break;
        };
        if high <= low + 1 {
            break;
        }
        moves.push((from, to));
        *loads.get_mut(&from).expect("a key of the map") -= 1;
        *loads.get_mut(&to).expect("a key of the map") += 1;
    }
    moves
}

/// `placement`'s replica set with `to` as owner: the set reordered when `to` holds a copy
/// already, else `to` in the former owner's place.
pub fn owner_moved(placement: &ObjectPlacement, to: NodeId) -> Vec<NodeId> {
    let stays = if placement.replicas.contains(&to) {
        to
    } else {
        placement.owner
    };
    std::iter::once(to)
        .chain(placement.replicas.iter().copied().filter(|r| *r != stays))
        .collect()
}

/// Objects each up node of `region` owns, as this node's directory says.
pub async fn owned_in(host: &ObjectHost, region: &RegionId) -> BTreeMap<NodeId, usize> {
    host.placements()
        .directory()
        .read_local(|state| {
            state
                .nodes
                .values()
                .filter(|n| n.status == NodeStatus::Up && &n.spec.region == region)
                .map(|n| (n.spec.id, state.owned_by(n.spec.id)))
                .collect()
        })
        .await
}

/// Evens out the owners among the up nodes of `region`, moving objects of `namespace`
/// (any when `None`): at most `moves_max` hand-overs, [`REBALANCE_MOVES_IN_FLIGHT`] at
/// once. Returns the placements moved and the moves that failed, with why. Finding the
/// objects passes over the placements once (an operator's call, like a drain).
pub async fn rebalance(
    host: &ObjectHost,
    namespace: Option<&Namespace>,
    region: &RegionId,
    moves_max: usize,
) -> (Vec<ObjectPlacement>, Vec<String>) {
    let loads = owned_in(host, region).await;
    let plan = rebalancing_moves(&loads, moves_max.min(REBALANCE_MOVES_MAX));
    let mut wanted: BTreeMap<NodeId, usize> = BTreeMap::new();
    for (from, _) in &plan {
        *wanted.entry(*from).or_default() += 1;
    }
    let mut candidates: BTreeMap<NodeId, Vec<ObjectPlacement>> = BTreeMap::new();
    for placement in host
        .placements()
        .scan(plan.len() * CANDIDATES_PER_MOVE, |_, p| {
            let ours = &p.region == region && namespace.is_none_or(|ns| &p.key.namespace == ns);
            (ours && wanted.contains_key(&p.owner)).then(|| p.clone())
        })
        .await
    {
        candidates
            .entry(placement.owner)
            .or_default()
            .push(placement);
    }
    let mut moves = Vec::with_capacity(plan.len());
    for (from, to) in plan {
        let Some(pool) = candidates.get_mut(&from) else {
            continue;
        };
        let pick = pool
            .iter()
            .position(|p| p.replicas.contains(&to))
            .or((!pool.is_empty()).then_some(0));
        if let Some(index) = pick {
            let placement = pool.swap_remove(index);
            let replicas = owner_moved(&placement, to);
            moves.push((placement, replicas));
        }
    }
    let outcomes: Vec<_> = futures::stream::iter(moves)
        .map(|(placement, replicas)| async move {
            hand_over(host, &placement, replicas, None)
                .await
                .map_err(|err| format!("{}: {err}", placement.key))
        })
        .buffer_unordered(REBALANCE_MOVES_IN_FLIGHT)
        .collect()
        .await;
    let (mut moved, mut failed) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        match outcome {
            Ok(placement) => moved.push(placement),
            Err(reason) => failed.push(reason),
        }
    }
    (moved, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(pairs: &[(u64, usize)]) -> BTreeMap<NodeId, usize> {
        pairs.iter().map(|(id, n)| (NodeId(*id), *n)).collect()
    }

    #[test]
    fn moves_even_owners_out_to_within_one() {
        let plan = rebalancing_moves(&loads(&[(1, 10), (2, 4), (3, 0)]), 100);
        let mut after = loads(&[(1, 10), (2, 4), (3, 0)]);
        for (from, to) in &plan {
            *after.get_mut(from).expect("planned from a node of the map") -= 1;
            *after.get_mut(to).expect("planned to a node of the map") += 1;
        }
        assert_eq!(after, loads(&[(1, 5), (2, 5), (3, 4)]));
        assert_eq!(plan.len(), 5, "no move more than needed: {plan:?}");
        assert_eq!(plan[0], (NodeId(1), NodeId(3)), "most to least first");
    }

    #[test]
    fn a_balanced_region_or_a_spent_budget_moves_nothing_more() {
        assert!(rebalancing_moves(&loads(&[(1, 5), (2, 4), (3, 5)]), 100).is_empty());
        assert!(rebalancing_moves(&loads(&[(1, 7)]), 100).is_empty());
        assert_eq!(rebalancing_moves(&loads(&[(1, 100), (2, 0)]), 3).len(), 3);
    }

    #[test]
    fn the_new_owner_takes_its_own_copy_or_the_former_owners_place() {
        let placement = crate::testing::placement(1, &[1, 2, 3]);
        let ids = |v: Vec<NodeId>| v.into_iter().map(|n| n.0).collect::<Vec<_>>();
        assert_eq!(ids(owner_moved(&placement, NodeId(3))), vec![3, 1, 2]);
        assert_eq!(ids(owner_moved(&placement, NodeId(4))), vec![4, 2, 3]);
    }
}
