//! Hand-overs: an object changes owner or replica set at the next epoch, without losing
//! an acknowledged write and without two owners getting writes acknowledged.
//!
//! Every hand-over follows the same steps: fence a majority of the current replica set
//! at the next epoch (from then on the current owner cannot get a write acknowledged);
//! read the most up-to-date fenced copy, which holds every acknowledged write; install
//! that state on the new replica set; commit the new placement through the directory
//! (`ReassignObject`, which orders it against any concurrent reassignment).
//!
//! - [`choice`]: who owns the object next and which nodes hold it, as pure functions;
//! - [`failover`]: the directory leader's hand-over of objects whose owner is down,
//!   and its background repair of replica sets;
//! - [`mover`]: admin moves, drains and replica-set repairs, with state transfer;
//! - [`rebalance`]: evening out owners among a region's nodes, as bounded moves.

pub mod choice;
pub mod failover;
pub mod mover;
pub mod rebalance;

use larder_base::{Epoch, NodeId};
use larder_directory::ObjectKey;

use crate::ReplicaMeta;
use crate::peers::Peers;

/// Fences each of `nodes`' copies of `key` at `epoch`, one after another; returns the
/// copies that took the fence, with their progress.
async fn fence_copies(
    peers: &Peers,
    key: &ObjectKey,
    nodes: &[NodeId],
    epoch: Epoch,
) -> Vec<(NodeId, ReplicaMeta)> {
    let mut fenced = Vec::with_capacity(nodes.len());
    for node in nodes {
        match peers.fence(*node, key, epoch).await {
            Ok(meta) => fenced.push((*node, meta)),
            Err(err) => {
                tracing::debug!(object = %key, replica = %node, error = %err, "fence failed")
            }
        }
    }
    fenced
}
