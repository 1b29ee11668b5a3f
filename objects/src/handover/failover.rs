//! Failover: while this node leads the directory, it hands each object whose owner is
//! recorded down to the most up-to-date surviving replica.
//!
//! For each such object: fence the surviving replicas at the next epoch; once a majority
//! of the replica set is fenced, make the most up-to-date copy the owner with
//! `ReassignObject` (epoch + 1), topping the replica set up from other up nodes of the
//! region. Before committing, the new owner's state is installed on the other members,
//! so every acknowledged write is on a majority of the new set. The new owner installs
//! its state on the replicas again when it next activates.
//!
//! The same task repairs replica sets that name a node removed from the cluster or are
//! short of the replication factor (`mover::repair_replicas`, in the background, a
//! bounded number at once): nothing else would ever take the removed node's place or
//! grow a set a failover during a wide outage left short, and each would leave its
//! objects one failure closer to having no majority.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_base::NodeId;
use larder_directory::{NodeStatus, ObjectKey, ObjectPlacement};
use tokio::sync::watch;

use super::choice;
use crate::peer_messages::InstallRequest;
use crate::placements::Reassigned;
use crate::{ObjectError, ObjectHost};

/// How often the leader looks for objects with a down owner.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Objects handled per check: a large outage is worked through over several checks.
const OBJECTS_PER_CHECK_MAX: usize = 256;
/// Replica-set repairs in flight at once (each waits out a lease and transfers state).
const REPAIRS_IN_FLIGHT_MAX: usize = 16;

pub async fn run(host: ObjectHost, mut shutdown: watch::Receiver<bool>) {
    let directory = host.placements().directory().clone();
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut applied = directory.reader().subscribe();
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
                let down: BTreeSet<NodeId> = directory.read_local(|s| {
                    s.nodes.iter().filter(|(_, n)| n.status == NodeStatus::Down).map(|(id, _)| *id).collect()
                }).await;
                let newly_down = !down.is_subset(&down_before);
                down_before = down;
                if !newly_down {
                    continue;
                }
            }
            _ = shutdown.changed() => return,
        }
        if directory.raft_view().state != "leader" {
            continue;
        }
        fail_over_orphans(&host).await;
        start_repairs(&host, &repairing).await;
    }
}

/// Hands over up to [`OBJECTS_PER_CHECK_MAX`] objects whose owner is down.
async fn fail_over_orphans(host: &ObjectHost) {
    // The directory's counts say whether any owner is down or gone, at the cost of a
    // look per node: in a healthy cluster no check passes over the placements.
    let directory = host.placements().directory();
    if !directory.read_local(|s| s.owners_unavailable()).await {
        return;
    }
    // Looked up in place: copying the whole directory every check would cost time in
    // proportion to the number of objects.
    let orphans = host
        .placements()
        .scan(OBJECTS_PER_CHECK_MAX, |state, p| {
            choice::orphaned(state, p).then(|| p.clone())
        })
        .await;
    for placement in orphans {
        match fail_over(host, &placement).await {
            Ok(owner) => {
                tracing::info!(object = %placement.key, owner = %owner, epoch = %placement.epoch.next(), "object failed over")
            }
            Err(reason) => {
                tracing::debug!(object = %placement.key, reason = %reason, "object failover deferred")
            }
        }
    }
}

/// Starts, in the background, the repair of replica sets that name removed nodes, up
/// to [`REPAIRS_IN_FLIGHT_MAX`] at once, none twice.
async fn start_repairs(host: &ObjectHost, repairing: &Arc<Mutex<BTreeSet<ObjectKey>>>) {
    let room = REPAIRS_IN_FLIGHT_MAX.saturating_sub(repairing.lock().expect("repairs lock").len());
    if room == 0 {
        return;
    }
    let factor = host.config().replication_factor;
    let directory = host.placements().directory();
    if !directory
        .read_local(|s| s.replica_sets_need_repair(factor))
        .await
    {
        return;
    }
    let busy = repairing.lock().expect("repairs lock").clone();
    let stale = host
        .placements()
        .scan(room, |state, p| {
            let due =
                !busy.contains(&p.key) && choice::repaired_replicas(state, p, factor).is_some();
            due.then(|| p.clone())
        })
        .await;
    for placement in stale {
        repairing
            .lock()
            .expect("repairs lock")
            .insert(placement.key.clone());
        let (host, repairing) = (host.clone(), repairing.clone());
        tokio::spawn(async move {
            if let Err(err) = super::mover::repair_replicas(&host, &placement).await {
                tracing::debug!(object = %placement.key, error = %err, "replica set repair deferred");
            }
            repairing
                .lock()
                .expect("repairs lock")
                .remove(&placement.key);
        });
    }
}

async fn fail_over(host: &ObjectHost, placement: &ObjectPlacement) -> Result<NodeId, ObjectError> {
    let (placements, peers) = (host.placements(), host.peers());
    let next_epoch = placement.epoch.next();
    let survivors = placements
        .directory()
        .read_local(|state| choice::survivors(state, placement))
        .await;
    let fenced = super::fence_copies(peers, &placement.key, &survivors, next_epoch).await;
    let factor = host.config().replication_factor;
    let replicas = placements
        .directory()
        .read_local(|state| choice::failover_replicas(state, placement, &fenced, factor))
        .await
        .ok_or_else(|| {
            ObjectError::unavailable(format!(
                "only {} of {} replicas reachable; a majority ({}) is needed to fail over safely",
                fenced.len(),
                placement.replicas.len(),
                placement.quorum()
            ))
        })?;
    let owner = replicas[0];
    // Before the new set is committed, every acknowledged write must be on a majority
    // of it: otherwise a second failover, before the new owner has activated, could
    // fence a majority of the new set that lacks them (the nemesis found exactly that).
    // The new owner's copy holds them; install its state on the other members at the
    // new epoch (the owner's own copy keeps its epoch, so its activation still waits
    // out the old owner's lease).
    let (_, chosen) = peers.fetch(owner, &placement.key).await?;
    let install = InstallRequest {
        key: placement.key.clone(),
        epoch: next_epoch,
        state: chosen,
    };
    // The new owner's own copy holds the state it was read from.
    let holding = 1 + peers.install_on(&replicas[1..], &install).await;
    if !choice::transfer_enough(true, holding, replicas.len()) {
        return Err(ObjectError::unavailable(format!(
            "the state reached {holding} of {} new replicas; a majority is needed",
            replicas.len()
        )));
    }
    let reassigned = placements
        .reassign(&placement.key, placement.epoch, replicas, None)
        .await?;
    match reassigned {
        Reassigned::Placed(placed) => Ok(placed.owner),
        Reassigned::Changed(current) => Err(ObjectError::unavailable(format!(
            "the placement changed meanwhile (epoch {})",
            current.epoch
        ))),
        Reassigned::Refused(reason) => Err(ObjectError::Placement(reason)),
    }
}
