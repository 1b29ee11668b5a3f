//! Moves (admin `move`, `drain`) and replica-set repairs: hand an object to chosen nodes
//! with its state.
//!
//! 1. fence a majority of the current replicas at the next epoch — from then on the
//!    current owner cannot get a write acknowledged;
//! 2. wait out the current owner's read lease;
//! 3. read the most up-to-date fenced copy (highest write epoch, version): it holds every
//!    acknowledged write;
//! 4. install that state on every new replica (a majority, the new owner among them,
//!    must take it);
//! 5. commit the new placement (`ReassignObject`, epoch + 1, region for a cross-region move);
//! 6. remove the copies of nodes that are no longer replicas.

use larder_base::NodeId;
use larder_directory::{ObjectPlacement, RegionId};

use super::choice::{self, MoveTarget};
use crate::peer_messages::InstallRequest;
use crate::placements::Reassigned;
use crate::{ObjectError, ObjectHost, ObjectState};

pub async fn move_object(
    host: &ObjectHost,
    placement: &ObjectPlacement,
    target: MoveTarget,
) -> Result<ObjectPlacement, ObjectError> {
    let factor = host.config().replication_factor;
    let plan = host
        .placements()
        .directory()
        .read_linearizable(|state| choice::plan_move(state, placement, &target, factor))
        .await??;
    match plan {
        Some(plan) => hand_over(host, placement, plan.replicas, plan.region).await,
        None => Ok(placement.clone()),
    }
}

/// Gives an object whose replica set names a removed node, or is short of the
/// replication factor, a new set (same owner, see [`choice::repaired_replicas`]) through
/// a hand-over at the next epoch: without it one more failure would leave the object
/// without a majority for writes or for failover.
pub async fn repair_replicas(
    host: &ObjectHost,
    placement: &ObjectPlacement,
) -> Result<Option<ObjectPlacement>, ObjectError> {
    let factor = host.config().replication_factor;
    let repair = host
        .placements()
        .directory()
        .read_linearizable(|state| {
            let current = state.placement(&placement.key)?;
            let replicas = choice::repaired_replicas(state, current, factor)?;
            Some((current.clone(), replicas))
        })
        .await?;
    let Some((current, replicas)) = repair else {
        return Ok(None);
    };
    let repaired = hand_over(host, &current, replicas, None).await?;
    tracing::info!(object = %placement.key, owner = %repaired.owner, replicas = ?repaired.replicas, epoch = %repaired.epoch, "replica set repaired after a node removal");
    Ok(Some(repaired))
}

/// Takes `node` out of every replica set it is in: an object it owns goes to another up
/// replica (or node) of its region, and in every set an up node of the region takes its
/// place (a hand-over at the next epoch with state transfer, as a move). After a drain
/// the node can be removed without leaving any object short of a majority: a set of
/// two that still named it would need it for every write and failover.
pub async fn drain(host: &ObjectHost, node: NodeId) -> (Vec<ObjectPlacement>, Vec<String>) {
    let factor = host.config().replication_factor;
    let plans = host
        .placements()
        .scan(usize::MAX, |state, p| {
            let holds = p.replicas.contains(&node);
            holds.then(|| (p.clone(), choice::drained_replicas(state, p, node, factor)))
        })
        .await;
    let (mut moved, mut failed) = (Vec::new(), Vec::new());
    for (placement, replicas) in plans {
        let Some(replicas) = replicas else {
            failed.push(format!(
                "{}: no other up node in region {}",
                placement.key, placement.region
            ));
            continue;
        };
        match hand_over(host, &placement, replicas, None).await {
            Ok(p) => moved.push(p),
            Err(err) => failed.push(format!("{}: {err}", placement.key)),
        }
    }
    (moved, failed)
}

/// Steps 1–6 of the module comment: hands `placement` to `replicas` (the owner first)
/// at the next epoch, in `region` when it changes.
pub(super) async fn hand_over(
    host: &ObjectHost,
    placement: &ObjectPlacement,
    replicas: Vec<NodeId>,
    region: Option<RegionId>,
) -> Result<ObjectPlacement, ObjectError> {
    let Some(&new_owner) = replicas.first() else {
        return Err(ObjectError::unavailable(format!(
            "{}: no up node to hand the object to",
            placement.key
        )));
    };
    let state = fence_and_read(host, placement).await?;
    install_on_new_set(host, placement, &replicas, new_owner, state).await?;
    let reassigned = host
        .placements()
        .reassign(&placement.key, placement.epoch, replicas.clone(), region)
        .await?;
    let moved = match reassigned {
        Reassigned::Placed(moved) => moved,
        Reassigned::Changed(current) => {
            return Err(ObjectError::unavailable(format!(
                "the placement changed meanwhile (epoch {})",
                current.epoch
            )));
        }
        Reassigned::Refused(reason) => return Err(ObjectError::Placement(reason)),
    };
    // 6. Nothing left behind on former replicas.
    for former in placement.replicas.iter().filter(|r| !replicas.contains(r)) {
        if let Err(err) = host
            .peers()
            .drop_copy(*former, &placement.key, moved.epoch)
            .await
        {
            tracing::warn!(object = %placement.key, node = %former, error = %err, "could not remove a former replica's copy");
        }
    }
    tracing::info!(object = %placement.key, owner = %moved.owner, region = %moved.region, epoch = %moved.epoch, "object moved");
    Ok(moved)
}

/// Steps 1–3: fences a majority of the current replicas at the next epoch, waits out the
/// owner's lease, and reads the state of the most up-to-date fenced copy.
async fn fence_and_read(
    host: &ObjectHost,
    placement: &ObjectPlacement,
) -> Result<ObjectState, ObjectError> {
    let peers = host.peers();
    let next = placement.epoch.next();
    let fenced = super::fence_copies(peers, &placement.key, &placement.replicas, next).await;
    if !choice::is_majority(fenced.len(), placement) {
        return Err(ObjectError::unavailable(format!(
            "only {} of {} replicas reachable; a move needs a majority",
            fenced.len(),
            placement.replicas.len()
        )));
    }
    // The old owner may answer reads until its lease runs out.
    tokio::time::sleep(host.config().lease()).await;
    // Any of the most up-to-date copies will do as the source: no load to weigh.
    let source = choice::most_up_to_date(&fenced, |_| 0).expect("a majority is not empty");
    let (_, state) = host.peers().fetch(source, &placement.key).await?;
    Ok(state)
}

/// Step 4: installs `state` on the new replica set at the next epoch (see
/// [`choice::transfer_enough`]).
async fn install_on_new_set(
    host: &ObjectHost,
    placement: &ObjectPlacement,
    replicas: &[NodeId],
    new_owner: NodeId,
    state: ObjectState,
) -> Result<(), ObjectError> {
    let install = InstallRequest {
        key: placement.key.clone(),
        epoch: placement.epoch.next(),
        state,
    };
    let peers = host.peers();
    let owner_only = [new_owner];
    let (owner_took, others_took) = tokio::join!(
        peers.install_on(&owner_only, &install),
        peers.install_on(&replicas[1..], &install)
    );
    let installed = owner_took + others_took;
    if !choice::transfer_enough(owner_took > 0, installed, replicas.len()) {
        return Err(ObjectError::unavailable(format!(
            "the state reached {installed} of {} new replicas ({} the new owner {new_owner}); \
             a majority including the new owner is needed",
            replicas.len(),
            if owner_took == 0 { "not" } else { "including" },
        )));
    }
    Ok(())
}
