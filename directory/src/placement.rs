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

/// Chooses owner and replicas for an object among the up nodes of `region` (carrying
/// `jurisdiction` when one is required): `preferred` owns it when eligible, otherwise
/// the choice rotates by a hash of the key so that owners spread over the region.
pub fn choose_replicas(
    state: &DirectoryState,
    key: &ObjectKey,
    region: &RegionId,
    jurisdiction: Option<&Jurisdiction>,
    replication_factor: usize,
    preferred: Option<NodeId>,
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
    let start = match preferred.and_then(|p| eligible.iter().position(|id| *id == p)) {
        Some(position) => position,
        None => (stable_hash(key) % eligible.len() as u64) as usize,
    };
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
        let mut state = DirectoryState::default();
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
        let chosen =
            choose_replicas(&st, &key("a"), &eu, None, 3, Some(NodeId(2))).expect("placement");
        assert_eq!(chosen[0], NodeId(2), "the preferred node owns it");
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
            None,
        )
        .expect("placement");
        assert_eq!(
            eu_only.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([NodeId(1), NodeId(2)])
        );
        // A node outside the region is never preferred.
        let chosen =
            choose_replicas(&st, &key("a"), &eu, None, 1, Some(NodeId(5))).expect("placement");
        assert_ne!(chosen, vec![NodeId(5)]);
        let ap = RegionId("ap".into());
        let err = choose_replicas(&st, &key("a"), &ap, None, 3, None).expect_err("no node");
        assert_eq!(err.to_string(), "no up node in region ap");
        let us = Jurisdiction("us".into());
        let err = choose_replicas(&st, &key("a"), &eu, Some(&us), 3, None).expect_err("none");
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
        // Deterministic without a preference.
        assert_eq!(
            choose_replicas(&st, &key("b"), &eu, None, 2, None),
            choose_replicas(&st, &key("b"), &eu, None, 2, None)
        );
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
