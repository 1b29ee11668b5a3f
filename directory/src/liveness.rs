//! Node liveness: the Raft leader compares when each member last acknowledged it with
//! what the directory records, and commits the differences.
//!
//! Acknowledgements come from openraft's heartbeat metrics, so liveness costs no extra
//! messages: every node is a Raft member (voter or learner) and already answers the
//! leader's heartbeats.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::ServerState;
use openraft::rt::Instant as _;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::directory::now_ms;
use crate::{Command, Directory, DirectoryRequest, DirectoryState, NodeId, NodeStatus};

/// Decides status changes. Pure: inputs in, changes out.
///
/// `acked_ago` holds, per member, how long ago it last acknowledged the leader (`None`:
/// not since this leader took over). `leader_for` is how long this node has led: nobody
/// is marked down before the leader has led for `down_after`, so a new leader does not
/// mistake "no acknowledgement yet" for "down".
pub fn status_changes(
    state: &DirectoryState,
    leader: NodeId,
    leader_for: Duration,
    acked_ago: &BTreeMap<NodeId, Option<Duration>>,
    down_after: Duration,
) -> Vec<(NodeId, NodeStatus)> {
    let mut changes = Vec::new();
    for (id, record) in &state.nodes {
        let alive = if *id == leader {
            true
        } else {
            match acked_ago.get(id) {
                Some(Some(ago)) => *ago < down_after,
                // A member that never acknowledged this leader, or a node that is not a
                // member at all: down once the grace period is over.
                Some(None) | None => leader_for < down_after,
            }
        };
        let status = if alive {
            NodeStatus::Up
        } else {
            NodeStatus::Down
        };
        // Only the leader marks nodes down; a node comes back up by answering heartbeats
        // or by registering again.
        if status != record.status {
            changes.push((*id, status));
        }
    }
    changes
}

/// Runs on every node; acts only while this node leads.
pub async fn run(directory: Directory, mut shutdown: watch::Receiver<bool>) {
    let interval = directory.config().liveness_check_interval();
    let down_after = directory.config().node_down_after();
    let me = directory.me().id;
    let mut leader_since: Option<Instant> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let metrics = directory.metrics();
        if metrics.state != ServerState::Leader {
            leader_since = None;
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let acked_ago: BTreeMap<NodeId, Option<Duration>> = metrics
            .heartbeat
            .as_ref()
            .map(|beats| {
                beats
                    .iter()
                    .map(|(id, at)| (*id, at.as_ref().map(|at| at.elapsed())))
                    .collect()
            })
            .unwrap_or_default();
        let state = directory.local_state().await;
        for (id, status) in status_changes(&state, me, since.elapsed(), &acked_ago, down_after) {
            let command = Command::SetNodeStatus {
                id,
                status,
                at_ms: now_ms(),
            };
            match directory.request(DirectoryRequest::Write(command)).await {
                Ok(_) => tracing::info!(node_id = %id, status = ?status, "node liveness changed"),
                Err(err) => {
                    tracing::warn!(node_id = %id, error = %err, "cannot record node liveness");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{NodeRecord, NodeSpec, RegionId};

    fn state(statuses: &[(u64, NodeStatus)]) -> DirectoryState {
        let mut state = DirectoryState::default();
        for (id, status) in statuses {
            state.nodes.insert(
                NodeId(*id),
                NodeRecord {
                    spec: NodeSpec {
                        id: NodeId(*id),
                        region: RegionId("r".into()),
                        jurisdictions: BTreeSet::new(),
                        api_addr: String::new(),
                        peer_addr: String::new(),
                    },
                    status: *status,
                    status_changed_at_ms: 0,
                },
            );
        }
        state
    }

    const DOWN_AFTER: Duration = Duration::from_secs(5);

    #[test]
    fn silent_member_goes_down_and_comes_back() {
        let st = state(&[
            (1, NodeStatus::Up),
            (2, NodeStatus::Up),
            (3, NodeStatus::Down),
        ]);
        let acked = BTreeMap::from([
            (NodeId(2), Some(Duration::from_secs(6))),
            (NodeId(3), Some(Duration::from_millis(100))),
        ]);
        let changes = status_changes(&st, NodeId(1), Duration::from_secs(60), &acked, DOWN_AFTER);
        assert_eq!(
            changes,
            vec![(NodeId(2), NodeStatus::Down), (NodeId(3), NodeStatus::Up)]
        );
    }

    #[test]
    fn new_leader_waits_before_marking_down() {
        let st = state(&[(1, NodeStatus::Up), (2, NodeStatus::Up)]);
        let acked = BTreeMap::from([(NodeId(2), None)]);
        let early = status_changes(&st, NodeId(1), Duration::from_secs(1), &acked, DOWN_AFTER);
        assert!(early.is_empty());
        let late = status_changes(&st, NodeId(1), Duration::from_secs(6), &acked, DOWN_AFTER);
        assert_eq!(late, vec![(NodeId(2), NodeStatus::Down)]);
    }

    #[test]
    fn leader_is_always_up() {
        let st = state(&[(1, NodeStatus::Down)]);
        let changes = status_changes(&st, NodeId(1), Duration::ZERO, &BTreeMap::new(), DOWN_AFTER);
        assert_eq!(changes, vec![(NodeId(1), NodeStatus::Up)]);
    }
}
