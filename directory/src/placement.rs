//! Object placement: which node owns an object, which nodes replicate it, under which
//! epoch. Recorded in the directory so that exactly one placement wins however many
//! nodes race to place a new object, and so that ownership only changes through the log.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{DirectoryState, Epoch, Jurisdiction, Namespace, NodeId, NodeStatus, RegionId};

/// Largest replication factor an object may ask for.
pub const REPLICATION_FACTOR_MAX: usize = 7;

/// An object's address: its namespace and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub namespace: Namespace,
    pub id: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.id)
    }
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPlacement {
    pub key: ObjectKey,
    pub region: RegionId,
    pub jurisdiction: Option<Jurisdiction>,
    /// The single writer.
    pub owner: NodeId,
    /// Nodes holding the object's storage, the owner first.
    pub replicas: Vec<NodeId>,
    /// Raised on every change of owner or replicas; replicas refuse older epochs.
    pub epoch: Epoch,
    pub placed_at_ms: u64,
}

/// Why no placement is possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no up node in region {region}{}", with_jurisdiction(.jurisdiction.as_ref()))]
    NoUpNode {
        region: RegionId,
        jurisdiction: Option<Jurisdiction>,
    },
}

fn with_jurisdiction(jurisdiction: Option<&Jurisdiction>) -> String {
    jurisdiction.map_or_else(String::new, |j| format!(" with jurisdiction {j}"))
}

/// How many objects more than the least-loaded eligible node the calling node may own
/// and still be given a new one ([`Owner::Near`]), besides a quarter of that load.
pub const NEAR_OWNER_SLACK: usize = 16;

/// Which node should own an object being placed or moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This node, when eligible (a move to a node).
    Exactly(NodeId),
    /// This node — the one the call came in at, so that its calls take no hop — when
    /// eligible and not much more loaded than the least-loaded eligible node: within a
    /// quarter of that load or [`NEAR_OWNER_SLACK`] objects. Otherwise as [`Owner::Least`].
    Near(NodeId),
    /// The eligible node owning the fewest objects; among equals, the first at or after
    /// a hash of the key, so that equal loads do not all fall to the lowest id.
    Least,
}

/// Chooses owner and replicas for an object among the up nodes of `region` (carrying
/// `jurisdiction` when one is required): the owner as `owner` asks, then the eligible
/// nodes after it in id order.
pub fn choose_replicas(
    state: &DirectoryState,
    key: &ObjectKey,
    region: &RegionId,
    jurisdiction: Option<&Jurisdiction>,
    replication_factor: usize,
    owner: Owner,
) -> Result<Vec<NodeId>, PlacementError> {
    let load = |node| state.owned_by(node);
    choose_replicas_by_load(
        state,
        key,
        region,
        jurisdiction,
        replication_factor,
        owner,
        load,
    )
}

/// [`choose_replicas`], with each node's load (objects it owns) as `load` says: a batch
/// of placements counts the owners it chose already, not yet in the directory.
pub fn choose_replicas_by_load(
    state: &DirectoryState,
    key: &ObjectKey,
    region: &RegionId,
    jurisdiction: Option<&Jurisdiction>,
    replication_factor: usize,
    owner: Owner,
    load: impl Fn(NodeId) -> usize,
) -> Result<Vec<NodeId>, PlacementError> {
    let eligible: Vec<NodeId> = state
        .nodes
        .values()
        .filter(|n| n.status == NodeStatus::Up && &n.spec.region == region)
        .filter(|n| jurisdiction.is_none_or(|j| n.spec.jurisdictions.contains(j)))
        .map(|n| n.spec.id)
        .collect();
    if eligible.is_empty() {
        return Err(PlacementError::NoUpNode {
            region: region.clone(),
            jurisdiction: jurisdiction.cloned(),
        });
    }
    let rf = replication_factor
        .clamp(1, REPLICATION_FACTOR_MAX)
        .min(eligible.len());
    let position = |node: NodeId| eligible.iter().position(|id| *id == node);
    let least = eligible
        .iter()
        .map(|id| load(*id))
        .min()
        .expect("eligible is not empty");
    let chosen = match owner {
        Owner::Exactly(node) => position(node),
        Owner::Near(node) => {
            position(node).filter(|_| load(node) <= least + (least / 4).max(NEAR_OWNER_SLACK))
        }
        Owner::Least => None,
    };
    let start = chosen.unwrap_or_else(|| {
        let offset = (stable_hash(key) % eligible.len() as u64) as usize;
        (0..eligible.len())
            .map(|i| (offset + i) % eligible.len())
            .find(|&i| load(eligible[i]) == least)
            .expect("some eligible node has the least load")
    });
    Ok((0..rf)
        .map(|i| eligible[(start + i) % eligible.len()])
        .collect())
}

/// FNV-1a: stable across builds and platforms (unlike the std hasher).
fn stable_hash(key: &ObjectKey) -> u64 {
    let namespace = key.namespace.as_str();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace.bytes().chain([0]).chain(key.id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl ObjectPlacement {
    pub fn is_replica(&self, node: NodeId) -> bool {
        self.replicas.contains(&node)
    }

    /// Replicas whose acknowledgement makes a write durable: a majority of them.
    pub fn quorum(&self) -> usize {
        self.replicas.len() / 2 + 1
    }

    pub fn replica_set(&self) -> BTreeSet<NodeId> {
        self.replicas.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{Command, CommandOutcome, Leadership, NodeRecord, NodeSpec};

    /// The leadership every entry of these tests was proposed by.
    const LEADER: Leadership = Leadership {
        term: 1,
        leader: NodeId(1),
    };

    fn state() -> DirectoryState {
        let mut state = crate::directory_state::with_namespace("rooms");
        for (id, region, status, j) in [
            (1, "eu-west", NodeStatus::Up, "eu"),
            (2, "eu-west", NodeStatus::Up, "eu"),
            (3, "eu-west", NodeStatus::Down, "eu"),
            (4, "eu-west", NodeStatus::Up, ""),
            (5, "us-east", NodeStatus::Up, "us"),
        ] {
            let jurisdictions: BTreeSet<Jurisdiction> = (!j.is_empty())
                .then(|| Jurisdiction(j.into()))
                .into_iter()
                .collect();
            state.nodes.insert(
                NodeId(id),
                NodeRecord {
                    spec: NodeSpec {
                        id: NodeId(id),
                        region: RegionId(region.into()),
                        jurisdictions,
                        api_addr: String::new(),
                        peer_addr: String::new(),
                    },
                    status,
                    status_changed_at_ms: 0,
                },
            );
        }
        state
    }

    fn key(id: &str) -> ObjectKey {
        ObjectKey {
            namespace: "rooms".into(),
            id: id.into(),
        }
    }

    #[test]
    fn replicas_are_up_nodes_of_the_region() {
        let st = state();
        let eu = RegionId("eu-west".into());
        let chosen = choose_replicas(&st, &key("a"), &eu, None, 3, Owner::Exactly(NodeId(2)))
            .expect("placement");
        assert_eq!(chosen[0], NodeId(2), "the asked node owns it");
        assert_eq!(
            chosen.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([NodeId(1), NodeId(2), NodeId(4)])
        );
        let eu_only = choose_replicas(
            &st,
            &key("a"),
            &eu,
            Some(&Jurisdiction("eu".into())),
            3,
            Owner::Least,
        )
        .expect("placement");
        assert_eq!(
            eu_only.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([NodeId(1), NodeId(2)])
        );
        // A node outside the region is never preferred.
        let chosen = choose_replicas(&st, &key("a"), &eu, None, 1, Owner::Near(NodeId(5)))
            .expect("placement");
        assert_ne!(chosen, vec![NodeId(5)]);
        let ap = RegionId("ap".into());
        let err = choose_replicas(&st, &key("a"), &ap, None, 3, Owner::Least).expect_err("no node");
        assert_eq!(err.to_string(), "no up node in region ap");
        let us = Jurisdiction("us".into());
        let err =
            choose_replicas(&st, &key("a"), &eu, Some(&us), 3, Owner::Least).expect_err("none");
        assert_eq!(
            err,
            PlacementError::NoUpNode {
                region: eu.clone(),
                jurisdiction: Some(us),
            }
        );
        assert_eq!(
            err.to_string(),
            "no up node in region eu-west with jurisdiction us"
        );
        // Deterministic for the same state.
        assert_eq!(
            choose_replicas(&st, &key("b"), &eu, None, 2, Owner::Least),
            choose_replicas(&st, &key("b"), &eu, None, 2, Owner::Least)
        );
    }

    /// Places `count` objects as the node `caller` asks for each, the way the leader
    /// applies them; the objects each node owns.
    fn place_all(st: &mut DirectoryState, count: usize, caller: Option<u64>) -> Vec<usize> {
        let eu = RegionId("eu-west".into());
        for i in 0..count {
            let key = key(&format!("o-{i}"));
            let owner = caller.map_or(Owner::Least, |id| Owner::Near(NodeId(id)));
            let replicas = choose_replicas(st, &key, &eu, None, 3, owner).expect("placement");
            let placement = ObjectPlacement {
                key,
                region: eu.clone(),
                jurisdiction: None,
                owner: replicas[0],
                replicas,
                epoch: Epoch::FIRST,
                placed_at_ms: 0,
            };
            st.apply(&Command::PlaceObject(placement), LEADER);
        }
        [1, 2, 4].map(|id| st.owned_by(NodeId(id))).to_vec()
    }

    #[test]
    fn owners_stay_balanced_when_every_object_is_created_through_one_node() {
        let mut st = state();
        let owned = place_all(&mut st, 10_000, Some(1));
        let most = owned.iter().max().expect("three nodes");
        let least = owned.iter().min().expect("three nodes");
        assert!(
            most * 4 <= least * 5 + 4 * NEAR_OWNER_SLACK,
            "the calling node owns at most a quarter more (and the slack): {owned:?}"
        );
        assert!(
            owned[0] >= owned[1],
            "the calling node keeps its share: {owned:?}"
        );
        // Without a calling node the spread is even.
        let mut st = state();
        let owned = place_all(&mut st, 9_999, None);
        assert_eq!(owned, vec![3_333, 3_333, 3_333]);
    }

    #[test]
    fn a_lightly_loaded_caller_owns_what_it_creates() {
        let mut st = state();
        let owned = place_all(&mut st, NEAR_OWNER_SLACK, Some(2));
        assert_eq!(owned, vec![0, NEAR_OWNER_SLACK, 0]);
    }

    fn placement(owner: u64, epoch: u64) -> ObjectPlacement {
        ObjectPlacement {
            key: key("room-1"),
            region: RegionId("eu-west".into()),
            jurisdiction: None,
            owner: NodeId(owner),
            replicas: vec![NodeId(owner), NodeId(4)],
            epoch: Epoch(epoch),
            placed_at_ms: 1,
        }
    }

    #[test]
    fn the_first_placement_wins_and_reassignment_raises_the_epoch() {
        let mut st = state();
        let first = placement(1, 1);
        assert_eq!(
            st.apply(&Command::PlaceObject(first.clone()), LEADER),
            CommandOutcome::Placed(Box::new(first.clone()))
        );
        // A racing node's placement loses: everyone is told the winner.
        assert_eq!(
            st.apply(&Command::PlaceObject(placement(2, 1)), LEADER),
            CommandOutcome::Placed(Box::new(first.clone()))
        );
        let reassign = Command::ReassignObject {
            key: first.key.clone(),
            expected_epoch: Epoch(1),
            replicas: vec![NodeId(4), NodeId(2)],
            region: None,
        };
        let CommandOutcome::Placed(moved) = st.apply(&reassign, LEADER) else {
            panic!("reassigned")
        };
        assert_eq!((moved.owner, moved.epoch), (NodeId(4), Epoch(2)));
        // A stale reassignment (epoch 1 again) is refused with the current placement.
        assert_eq!(
            st.apply(&reassign, LEADER),
            CommandOutcome::EpochMismatch(moved.clone())
        );
        assert_eq!(first.quorum(), 2);
    }
}
