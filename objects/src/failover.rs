//! Failover: while this node leads the directory, it hands each object whose owner is
//! recorded down to the most up-to-date surviving replica.
//!
//! For each such object: fence the surviving replicas at the next epoch (from then on the
//! old owner cannot get a write acknowledged — it needs a majority, and the fenced copies
//! refuse it); once a majority of the replica set is fenced, the copy with the highest
//! (write epoch, version) holds every acknowledged write (each one is on a majority, which
//! intersects the fenced majority); make it the owner with `ReassignObject` (epoch + 1),
//! topping the replica set up from other up nodes of the region. The new owner installs
//! its state on the replicas when it next activates.
//!
//! The same task repairs replica sets that name a node removed from the cluster or are
//! short of the replication factor (`mover::repair_replicas`, in the background, a
//! bounded number at once): nothing else would ever take the removed node's place or
//! grow a set a failover during a wide outage left short, and each would leave its
//! objects one failure closer to having no majority.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_directory::{
    Command, CommandOutcome, DirectoryRequest, DirectoryResponse, NodeId, NodeStatus, ObjectKey,
    ObjectPlacement,
};
use tokio::sync::watch;

use crate::ObjectHost;
use crate::peer_messages::InstallRequest;

/// How often the leader looks for objects with a down owner.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Objects handled per check: a large outage is worked through over several checks.
const OBJECTS_PER_CHECK_MAX: usize = 256;
/// Replica-set repairs in flight at once (each waits out a lease and transfers state).
const REPAIRS_IN_FLIGHT_MAX: usize = 16;

pub async fn run(host: ObjectHost, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut applied = host.inner().directory.reader().subscribe();
    let mut down_before = BTreeSet::new();
    let repairing: Arc<Mutex<BTreeSet<ObjectKey>>> = Arc::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // A node just recorded down: fail its objects over now, not at the next tick.
            changed = applied.changed() => {
                if changed.is_err() {
                    return;
                }
                let down: BTreeSet<NodeId> = host
                    .inner()
                    .directory
                    .read_local(|s| {
                        s.nodes
                            .iter()
                            .filter(|(_, n)| n.status == NodeStatus::Down)
                            .map(|(id, _)| *id)
                            .collect()
                    })
                    .await;
                let newly_down = !down.is_subset(&down_before);
                down_before = down;
                if !newly_down {
                    continue;
                }
            }
            _ = shutdown.changed() => return,
        }
        let directory = &host.inner().directory;
        if directory.raft_view().state != "leader" {
            continue;
        }
        // Looked up in place: copying the whole directory every check would cost time
        // in proportion to the number of objects.
        let orphans: Vec<ObjectPlacement> = directory
            .read_local(|state| {
                state
                    .placements
                    .values()
                    .filter(|p| {
                        state
                            .node(p.owner)
                            .is_none_or(|n| n.status == NodeStatus::Down)
                    })
                    .take(OBJECTS_PER_CHECK_MAX)
                    .cloned()
                    .collect()
            })
            .await;
        for placement in orphans {
            match fail_over(&host, &placement).await {
                Ok(owner) => {
                    tracing::info!(object = %placement.key, owner = %owner, epoch = placement.epoch + 1, "object failed over")
                }
                Err(reason) => {
                    tracing::debug!(object = %placement.key, reason = %reason, "object failover deferred")
                }
            }
        }
        start_repairs(&host, &repairing).await;
    }
}

/// Starts, in the background, the repair of replica sets that name removed nodes, up
/// to [`REPAIRS_IN_FLIGHT_MAX`] at once, none twice.
async fn start_repairs(host: &ObjectHost, repairing: &Arc<Mutex<BTreeSet<ObjectKey>>>) {
    let room = REPAIRS_IN_FLIGHT_MAX.saturating_sub(repairing.lock().expect("repairs lock").len());
    if room == 0 {
        return;
    }
    let factor = host.inner().config.replication_factor;
    let stale: Vec<ObjectPlacement> = host
        .inner()
        .directory
        .read_local(|state| {
            let busy = repairing.lock().expect("repairs lock");
            state
                .placements
                .values()
                .filter(|p| !busy.contains(&p.key))
                .filter(|p| crate::mover::repaired_replicas(state, p, factor).is_some())
                .take(room)
                .cloned()
                .collect()
        })
        .await;
    for placement in stale {
        repairing
            .lock()
            .expect("repairs lock")
            .insert(placement.key.clone());
        let (host, repairing) = (host.clone(), repairing.clone());
        tokio::spawn(async move {
            if let Err(err) = crate::mover::repair_replicas(&host, &placement).await {
                tracing::debug!(object = %placement.key, error = %err, "replica set repair deferred");
            }
            repairing
                .lock()
                .expect("repairs lock")
                .remove(&placement.key);
        });
    }
}

async fn fail_over(host: &ObjectHost, placement: &ObjectPlacement) -> Result<NodeId, String> {
    let directory = &host.inner().directory;
    let state = directory.local_state().await;
    let up = |id: &NodeId| state.node(*id).is_some_and(|n| n.status == NodeStatus::Up);
    let survivors: Vec<NodeId> = placement
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != placement.owner && up(r))
        .collect();
    let next_epoch = placement.epoch + 1;
    let mut fenced = Vec::new();
    for replica in &survivors {
        match host
            .fence_replica(*replica, &placement.key, next_epoch)
            .await
        {
            Ok(meta) => fenced.push((*replica, meta)),
            Err(err) => {
                tracing::debug!(object = %placement.key, replica = %replica, error = %err, "fence failed")
            }
        }
    }
    if fenced.len() < placement.quorum() {
        return Err(format!(
            "only {} of {} replicas reachable; a majority ({}) is needed to fail over safely",
            fenced.len(),
            placement.replicas.len(),
            placement.quorum()
        ));
    }
    let (owner, _) = fenced
        .iter()
        .max_by_key(|(id, meta)| (meta.write_epoch, meta.version, std::cmp::Reverse(*id)))
        .copied()
        .expect("a majority is not empty");
    let mut replicas = vec![owner];
    replicas.extend(fenced.iter().map(|(id, _)| *id).filter(|id| *id != owner));
    // Top the set up with other up nodes of the region (to the replication factor when
    // an earlier outage left it short).
    let target = placement
        .replicas
        .len()
        .max(host.inner().config.replication_factor);
    crate::mover::top_up(&state, placement, &mut replicas, target);
    // Before the new set is committed, every acknowledged write must be on a majority
    // of it: otherwise a second failover, before the new owner has activated, could
    // fence a majority of the new set that lacks them (the nemesis found exactly that).
    // The new owner's copy holds them; install its state on the other members at the
    // new epoch (the owner's own copy keeps its epoch, so its activation still waits
    // out the old owner's lease).
    let (_, chosen) = host.fetch_replica(owner, &placement.key).await?;
    let install = InstallRequest {
        key: placement.key.clone(),
        epoch: next_epoch,
        state: chosen,
    };
    let others: Vec<NodeId> = replicas.iter().copied().filter(|r| *r != owner).collect();
    let holding = 1 + host.install_on(&others, &install).await;
    if holding < replicas.len() / 2 + 1 {
        return Err(format!(
            "the state reached {holding} of {} new replicas; a majority is needed",
            replicas.len()
        ));
    }
    let command = Command::ReassignObject {
        key: placement.key.clone(),
        expected_epoch: placement.epoch,
        replicas,
        region: None,
    };
    match directory
        .request(DirectoryRequest::Write(command))
        .await
        .map_err(|e| e.to_string())?
    {
        DirectoryResponse::Outcome {
            outcome: CommandOutcome::Placed(p),
            ..
        } => Ok(p.owner),
        other => Err(format!("reassignment answered {other:?}")),
    }
}
