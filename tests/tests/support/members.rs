//! The nemesis's membership changes (issue #5): what an operator does to the directory's
//! membership while clients keep working, one change at a time, each waited for (with a
//! timeout) until the directory's leader shows it and every member agrees, and healed
//! back to five voters before the next fault:
//!
//! - **demote**: `RemoveVoter` a voter (the directory leader half the time), leave the
//!   group at four voters and a learner under load, `AddVoter` it back;
//! - **replace**: the runbook for retiring a node — drain it (its objects move), send its
//!   clients elsewhere, `RemoveNode`, stop it, start a fresh node (new id, empty data
//!   directory) that joins through another node, `AddVoter` it, send the clients to it;
//! - **rejoin**: `RemoveNode` a node that was not drained (an owner a third of the time),
//!   while it still runs and serves, stop it, restart it on its data with `--join`,
//!   `AddVoter` it.
//!
//! Afterwards no placement may name a node that is no longer in the cluster: objects
//! that a removed node replicated get a new replica set.
//!
//! `view`: the directory's membership as its leader shows it, and admin calls resent
//! until a change shows; `placements`: where the objects are, and the wait for that.

mod placements;
mod view;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::nemesis::directory_leader;
use super::rng::Rng;
use super::{TestCluster, TestNode};
use placements::{placements_on_members, replica_sets};
use view::{Act, admin, ensure};

/// How long one membership step may take to show everywhere.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long after an admin call that did not show the change it is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(3);
/// How long a changed membership is held under load before it heals.
const HOLD_MS: (u64, u64) = (500, 2_000);
/// How long a removed node that was not drained keeps running before it is stopped.
const LINGER_MS: (u64, u64) = (0, 1_500);
/// How long a stopped node may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the placements of the nemesis's objects may take to leave removed nodes.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the cluster may take to be healthy again at the end.
const HEAL_TIMEOUT: Duration = Duration::from_secs(30);
/// One admin call (drains and membership changes can take a few rounds).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Which node each client process goes through, by slot: the nemesis sends a retired
/// node's clients to another node, and then to its replacement.
#[derive(Clone)]
pub struct Routes(Arc<Mutex<Vec<(u64, String)>>>);

impl Routes {
    /// One slot per node of `cluster`, in order.
    pub fn new(cluster: &TestCluster) -> Routes {
        let slots = cluster
            .nodes
            .iter()
            .map(|n| (n.id, n.api.clone()))
            .collect();
        Routes(Arc::new(Mutex::new(slots)))
    }

    /// The node and api address of `slot` (slots wrap around).
    pub fn get(&self, slot: usize) -> (u64, String) {
        let slots = self.0.lock().expect("routes lock");
        slots[slot % slots.len()].clone()
    }

    /// Sends every slot on node `from` to `to`; returns the slots.
    fn redirect(&self, from: u64, to: &TestNode) -> Vec<usize> {
        let mut slots = self.0.lock().expect("routes lock");
        let mut moved = Vec::new();
        for (slot, route) in slots.iter_mut().enumerate() {
            if route.0 == from {
                *route = (to.id, to.api.clone());
                moved.push(slot);
            }
        }
        moved
    }

    fn set(&self, which: &[usize], to: &TestNode) {
        let mut slots = self.0.lock().expect("routes lock");
        for slot in which {
            slots[*slot] = (to.id, to.api.clone());
        }
    }
}

/// One membership change, healed; its description.
pub async fn change(
    cluster: &mut TestCluster,
    rng: &mut Rng,
    routes: &Routes,
    owner: Option<u64>,
    object: &str,
    namespace: &str,
) -> anyhow::Result<String> {
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    let Some(leader) = directory_leader(cluster).await else {
        bail!("no directory leader to start a membership change");
    };
    let what = match rng.below(3) {
        0 => {
            let victim = if rng.below(2) == 0 {
                leader
            } else {
                rng.pick(&others(&ids, leader))
            };
            demote(cluster, rng, victim, leader).await?
        }
        kind => {
            let victim = match rng.below(3) {
                0 => leader,
                1 => owner.unwrap_or(leader),
                _ => rng.pick(&ids),
            };
            let role = role_of(victim, leader, owner, object);
            let before = replica_sets(cluster, namespace).await;
            let what = if kind == 1 {
                replace(cluster, rng, routes, victim, &role).await?
            } else {
                rejoin(cluster, rng, victim, &role).await?
            };
            placements_on_members(cluster, namespace).await?;
            let after = replica_sets(cluster, namespace).await;
            let sets: Vec<String> = before
                .iter()
                .filter(|(_, (_, replicas, _))| replicas.contains(&victim))
                .map(|(id, (_, replicas, epoch))| {
                    let now = after
                        .get(id)
                        .map_or_else(|| "?".to_string(), |(_, r, e)| format!("{r:?} epoch {e}"));
                    format!("{id} {replicas:?} epoch {epoch} -> {now}")
                })
                .collect();
            format!("{what}; replica sets it was in: {sets:?}")
        }
    };
    let healed = Instant::now();
    cluster
        .wait_healthy(HEAL_TIMEOUT)
        .await
        .context("healthy after a membership change")?;
    ensure(cluster, ids[0], "five voters", Act::Await, |v| {
        v.voters.len() == 5 && v.learners.is_empty()
    })
    .await?;
    let repaired = placements_on_members(cluster, namespace).await?;
    Ok(format!(
        "{what}; healthy after {:?}, placements on members after {repaired:?}",
        healed.elapsed()
    ))
}

fn others(ids: &[u64], but: u64) -> Vec<u64> {
    ids.iter().copied().filter(|n| *n != but).collect()
}

fn role_of(victim: u64, leader: u64, owner: Option<u64>, object: &str) -> String {
    let mut roles = Vec::new();
    if victim == leader {
        roles.push("directory leader".to_string());
    }
    if owner == Some(victim) {
        roles.push(format!("owner of {object}"));
    }
    if roles.is_empty() {
        String::new()
    } else {
        format!(" ({})", roles.join(", "))
    }
}

async fn demote(
    cluster: &mut TestCluster,
    rng: &mut Rng,
    victim: u64,
    leader: u64,
) -> anyhow::Result<String> {
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    let via = rng.pick(&ids);
    let started = Instant::now();
    let sent = ensure(
        cluster,
        via,
        &format!("node {victim} demoted to a learner"),
        Act::RemoveVoter(victim),
        |v| !v.voters.contains(&victim) && v.learners.contains(&victim),
    )
    .await?;
    let demoted = started.elapsed();
    let hold = rng.millis(HOLD_MS);
    tokio::time::sleep(hold).await;
    let started = Instant::now();
    let resent = ensure(
        cluster,
        via,
        &format!("node {victim} a voter again"),
        Act::AddVoter(victim),
        |v| v.voters.contains(&victim),
    )
    .await?;
    let lead = if victim == leader {
        " (the directory leader)"
    } else {
        ""
    };
    Ok(format!(
        "demote node {victim}{lead} to a learner through {via} ({sent} calls, {demoted:?}), held {hold:?}, voter again ({resent} calls, {:?})",
        started.elapsed()
    ))
}

/// Drain, remove, stop; a fresh node joins and becomes a voter.
async fn replace(
    cluster: &mut TestCluster,
    rng: &mut Rng,
    routes: &Routes,
    victim: u64,
    role: &str,
) -> anyhow::Result<String> {
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    let via = rng.pick(&others(&ids, victim));
    let drained = drain(cluster.node(via), victim).await;
    let slots = routes.redirect(victim, cluster.node(via));
    let sent = ensure(
        cluster,
        via,
        &format!("node {victim} removed"),
        Act::RemoveNode(victim),
        |v| v.removed(victim),
    )
    .await?;
    let clean = cluster.retire(victim, STOP_TIMEOUT).await?;
    let fresh = cluster.add_joiner(via).context("start a replacement")?;
    let promoted = promote_joiner(cluster, via, fresh).await?;
    routes.set(&slots, cluster.node(fresh));
    let stop = if clean { "stopped" } else { "killed" };
    Ok(format!(
        "replace node {victim}{role}: drain ({drained}), remove through {via} ({sent} calls), {stop}; node {fresh} joined and promoted ({promoted} calls)"
    ))
}

/// Waits until node `id`, just started with `--join`, is registered as an up learner,
/// then makes it a voter through `via`; the number of calls the promotion took.
async fn promote_joiner(cluster: &TestCluster, via: u64, id: u64) -> anyhow::Result<u32> {
    ensure(
        cluster,
        via,
        &format!("node {id} registered as a learner"),
        Act::Await,
        |v| v.learners.contains(&id) && v.up.contains(&id),
    )
    .await?;
    ensure(
        cluster,
        via,
        &format!("node {id} a voter"),
        Act::AddVoter(id),
        |v| v.voters.contains(&id),
    )
    .await
}

/// Remove a node that was not drained, while it runs; restart it with `--join`.
async fn rejoin(
    cluster: &mut TestCluster,
    rng: &mut Rng,
    victim: u64,
    role: &str,
) -> anyhow::Result<String> {
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    let via = rng.pick(&others(&ids, victim));
    let sent = ensure(
        cluster,
        via,
        &format!("node {victim} removed"),
        Act::RemoveNode(victim),
        |v| v.removed(victim),
    )
    .await?;
    let linger = rng.millis(LINGER_MS);
    tokio::time::sleep(linger).await;
    let seed = cluster.node(via).peer.clone();
    let node = cluster.node_mut(victim);
    let clean = node.terminate(STOP_TIMEOUT).await.unwrap_or(false);
    node.set_join(&seed);
    node.start().context("restart the removed node")?;
    let promoted = promote_joiner(cluster, via, victim).await?;
    let stop = if clean { "stopped" } else { "killed" };
    Ok(format!(
        "remove node {victim}{role} undrained through {via} ({sent} calls), running {linger:?} more, {stop}, restarted with --join {via}, voter again ({promoted} calls)"
    ))
}

/// Drains `victim` through `via` until nothing is left to move (or the step times
/// out: removal then leaves what is left to failover); a summary.
async fn drain(via: &TestNode, victim: u64) -> String {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let (mut moved, mut calls) = (0, 0);
    loop {
        calls += 1;
        match admin(via).drain_node(victim).await {
            Ok(answer) if answer.failed.is_empty() => {
                moved += answer.moved.len();
                return format!("{moved} moved in {calls} calls");
            }
            Ok(answer) => {
                moved += answer.moved.len();
                if Instant::now() >= deadline {
                    return format!("{moved} moved, still failing: {:?}", answer.failed);
                }
            }
            Err(err) if Instant::now() >= deadline => {
                return format!("{moved} moved, then {err}");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
