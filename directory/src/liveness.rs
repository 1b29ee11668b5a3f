//! Node liveness: the Raft leader compares when each member last acknowledged it with
//! what the directory records, and commits the differences — itself, in its own term.
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

use crate::raft_types::RaftMetrics;
use crate::{
    Command, CommandOutcome, Directory, DirectoryConfig, DirectoryState, Leadership, NodeId,
    NodeStatus,
};

/// Decides status changes. Pure: inputs in, changes out.
///
/// `acked_ago` holds, per member, how long ago it last acknowledged the leader (`None`:
/// not since this leader took over). `leader_for` is how long this node has led: nobody
/// is marked down before the leader has led for `down_after`, so a new leader does not
/// mistake "no acknowledgement yet" for "down" — except the leader it took over from,
/// `previous`: an election was won because a majority had not heard from it for an
/// election timeout, so it is down unless it acknowledges within `previous_grace` (a
/// leader that handed over on purpose does, within a heartbeat or two).
pub struct Inputs<'a> {
    pub state: &'a DirectoryState,
    pub leader: NodeId,
    pub leader_for: Duration,
    pub acked_ago: &'a BTreeMap<NodeId, Option<Duration>>,
    pub down_after: Duration,
    pub previous: Option<NodeId>,
    pub previous_grace: Duration,
}

pub fn status_changes(inputs: &Inputs<'_>) -> Vec<(NodeId, NodeStatus)> {
    let Inputs {
        state,
        leader,
        leader_for,
        acked_ago,
        down_after,
        previous,
        previous_grace,
    } = *inputs;
    let mut changes = Vec::new();
    for (id, record) in &state.nodes {
        let alive = if *id == leader {
            true
        } else {
            match acked_ago.get(id) {
                Some(Some(ago)) => *ago < down_after,
                Some(None) | None if previous == Some(*id) => leader_for < previous_grace,
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

/// Runs on every node; acts only while this node leads, and proposes its marks only
/// through its own Raft member, tagged with the leadership whose heartbeats they come
/// from: a leader deposed while cut off sees nobody acknowledge it, and its marks must
/// die with its leadership rather than reach the new leader's log (the state machine
/// ignores a mark proposed by any other leadership).
pub async fn run(directory: Directory, mut shutdown: watch::Receiver<bool>) {
    let timings = Timings::of(directory.config());
    let me = directory.me().id;
    let mut tenure = Tenure::default();
    let mut ticker = tokio::time::interval(timings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let metrics = directory.metrics();
        if metrics.state != ServerState::Leader {
            tenure.follow(me, metrics.current_leader);
            continue;
        }
        let leadership = leadership_of(&metrics);
        let since = tenure.lead(leadership, Instant::now());
        let acked_ago = acked_ago(&metrics);
        // Read in place, every tick: a copy of the state would cost every placement.
        let changes = directory
            .read_local(|state| {
                status_changes(&Inputs {
                    state,
                    leader: me,
                    leader_for: since.elapsed(),
                    acked_ago: &acked_ago,
                    down_after: timings.down_after,
                    previous: tenure.previous,
                    previous_grace: timings.previous_grace,
                })
            })
            .await;
        record(&directory, leadership, changes).await;
    }
}

/// How often liveness is checked and how long silence it forgives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timings {
    interval: Duration,
    down_after: Duration,
    /// How long the leader taken over from has to acknowledge the new one.
    previous_grace: Duration,
}

impl Timings {
    fn of(config: &DirectoryConfig) -> Timings {
        let heartbeat = Duration::from_millis(config.heartbeat_interval_ms);
        let down_after = config.node_down_after();
        Timings {
            // Checks are local (metrics); a new leader's verdict on its predecessor
            // should not wait for a slow tick.
            interval: config.liveness_check_interval().min(heartbeat),
            down_after,
            previous_grace: (heartbeat * 3).min(down_after),
        }
    }
}

/// Which leadership this node holds and since when, and the leader it took over from:
/// carried from one check to the next.
#[derive(Debug, Default)]
struct Tenure {
    leading: Option<(Leadership, Instant)>,
    /// The last other node this one heard lead.
    last_seen_leader: Option<NodeId>,
    /// The leader this node took over from, when its leadership began.
    previous: Option<NodeId>,
}

impl Tenure {
    /// This node does not lead; `leader` is the leader it knows, if any.
    fn follow(&mut self, me: NodeId, leader: Option<NodeId>) {
        self.leading = None;
        if let Some(leader) = leader.filter(|l| *l != me) {
            self.last_seen_leader = Some(leader);
        }
    }

    /// This node leads in `leadership` as of `now`; returns since when. A new term is a
    /// new leadership even when no check saw this node follow in between: its heartbeat
    /// acknowledgements start afresh.
    fn lead(&mut self, leadership: Leadership, now: Instant) -> Instant {
        match self.leading {
            Some((current, since)) if current == leadership => since,
            _ => {
                self.previous = self.last_seen_leader.take();
                self.leading = Some((leadership, now));
                now
            }
        }
    }
}

/// The leadership this node's metrics say it holds (its vote's term and leader).
fn leadership_of(metrics: &RaftMetrics) -> Leadership {
    let vote_leader = metrics.vote.leader_id();
    Leadership {
        term: vote_leader.term,
        leader: vote_leader.node_id,
    }
}

/// Per member, how long ago it last acknowledged this leader (`None`: not yet).
fn acked_ago(metrics: &RaftMetrics) -> BTreeMap<NodeId, Option<Duration>> {
    metrics
        .heartbeat
        .as_ref()
        .map(|beats| {
            beats
                .iter()
                .map(|(id, at)| (*id, at.as_ref().map(|at| at.elapsed())))
                .collect()
        })
        .unwrap_or_default()
}

/// Proposes the status changes as marks of `leadership`, stopping at the first failure.
async fn record(directory: &Directory, leadership: Leadership, changes: Vec<(NodeId, NodeStatus)>) {
    for (id, status) in changes {
        let command = Command::SetNodeStatus {
            id,
            status,
            at_ms: directory.now_ms(),
            seen_by: leadership,
        };
        match directory.propose_as_leader(command).await {
            Ok(CommandOutcome::Applied) => {
                tracing::info!(node_id = %id, status = ?status, term = leadership.term, "node liveness changed");
            }
            Ok(outcome) => {
                tracing::info!(node_id = %id, status = ?status, term = leadership.term, outcome = ?outcome, "node liveness mark not applied");
            }
            Err(err) => {
                // Not retried, nor sent to another leader: the next check, by
                // whoever leads then, judges from its own view.
                tracing::warn!(node_id = %id, term = leadership.term, error = %err, "cannot record node liveness");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{NodeRecord, NodeSpec, RegionId};

    fn changes_for(
        st: &DirectoryState,
        leader_for: Duration,
        acked: &BTreeMap<NodeId, Option<Duration>>,
        previous: Option<NodeId>,
    ) -> Vec<(NodeId, NodeStatus)> {
        status_changes(&Inputs {
            state: st,
            leader: NodeId(1),
            leader_for,
            acked_ago: acked,
            down_after: DOWN_AFTER,
            previous,
            previous_grace: Duration::from_millis(300),
        })
    }

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
        let changes = changes_for(&st, Duration::from_secs(60), &acked, None);
        assert_eq!(
            changes,
            vec![(NodeId(2), NodeStatus::Down), (NodeId(3), NodeStatus::Up)]
        );
    }

    #[test]
    fn new_leader_waits_before_marking_down() {
        let st = state(&[(1, NodeStatus::Up), (2, NodeStatus::Up)]);
        let acked = BTreeMap::from([(NodeId(2), None)]);
        let early = changes_for(&st, Duration::from_secs(1), &acked, None);
        assert!(early.is_empty());
        let late = changes_for(&st, Duration::from_secs(6), &acked, None);
        assert_eq!(late, vec![(NodeId(2), NodeStatus::Down)]);
    }

    #[test]
    fn leader_is_always_up() {
        let st = state(&[(1, NodeStatus::Down)]);
        let changes = changes_for(&st, Duration::ZERO, &BTreeMap::new(), None);
        assert_eq!(changes, vec![(NodeId(1), NodeStatus::Up)]);
    }

    #[test]
    fn the_leader_taken_over_from_is_down_unless_it_answers_at_once() {
        let st = state(&[
            (1, NodeStatus::Up),
            (2, NodeStatus::Up),
            (3, NodeStatus::Up),
        ]);
        let mut acked = BTreeMap::new();
        acked.insert(NodeId(2), None);
        acked.insert(NodeId(3), Some(Duration::from_millis(10)));
        // Node 2 led before node 1; it has not answered node 1 for longer than the
        // short grace: down, long before the usual grace is over.
        let quick = changes_for(&st, Duration::from_millis(400), &acked, Some(NodeId(2)));
        assert_eq!(quick, vec![(NodeId(2), NodeStatus::Down)]);
        assert!(changes_for(&st, Duration::from_millis(200), &acked, Some(NodeId(2))).is_empty());
        // A leader that handed over on purpose answers: it stays up.
        acked.insert(NodeId(2), Some(Duration::from_millis(50)));
        assert!(changes_for(&st, Duration::from_millis(400), &acked, Some(NodeId(2))).is_empty());
    }

    fn leadership(term: u64, leader: u64) -> Leadership {
        Leadership {
            term,
            leader: NodeId(leader),
        }
    }

    /// The leader taken over from is the one this node followed last, counted once, at
    /// the start of its leadership; a leadership's start stays put while it lasts.
    #[test]
    fn a_tenure_remembers_the_leader_taken_over_from() {
        let t0 = Instant::now();
        let mut tenure = Tenure::default();
        tenure.follow(NodeId(1), Some(NodeId(2)));
        tenure.follow(NodeId(1), None);
        assert_eq!(tenure.lead(leadership(5, 1), t0), t0);
        assert_eq!(tenure.previous, Some(NodeId(2)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(tenure.lead(leadership(5, 1), t1), t0, "the same leadership");
        // Re-elected in a later term without a check seeing it follow: a new
        // leadership, and nobody was taken over from.
        assert_eq!(tenure.lead(leadership(6, 1), t1), t1);
        assert_eq!(tenure.previous, None);
        // Hearing itself named leader is not following another leader.
        tenure.follow(NodeId(1), Some(NodeId(1)));
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(tenure.lead(leadership(8, 1), t2), t2);
        assert_eq!(tenure.previous, None);
    }

    /// A check at least every heartbeat; the leader taken over from gets three
    /// heartbeats, never longer than anyone else.
    #[test]
    fn timings_follow_the_heartbeat() {
        let config = |heartbeat_ms, check_ms| DirectoryConfig {
            heartbeat_interval_ms: heartbeat_ms,
            liveness_check_interval_ms: check_ms,
            node_down_after_ms: 5_000,
            ..DirectoryConfig::default()
        };
        let ms = Duration::from_millis;
        assert_eq!(
            Timings::of(&config(250, 500)),
            Timings {
                interval: ms(250),
                down_after: ms(5_000),
                previous_grace: ms(750),
            }
        );
        assert_eq!(
            Timings::of(&config(2_000, 500)),
            Timings {
                interval: ms(500),
                down_after: ms(5_000),
                previous_grace: ms(5_000),
            }
        );
    }
}
