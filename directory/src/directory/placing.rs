//! Placing new objects in batches. Concurrent first writes on this node queue their
//! placement; one task takes whatever is queued (up to [`PLACEMENT_BATCH_MAX`]) and
//! proposes it as one [`Command::PlaceObjects`] entry while the next batch gathers, so
//! creation costs one Raft round (and one forward to the leader) per batch, not per
//! object. The log still orders every placement: the first for a key wins, and each
//! caller gets the placement that won.

use std::collections::BTreeMap;
use std::sync::Weak;

use tokio::sync::{mpsc, oneshot};

use super::{Directory, Inner};
use crate::{
    Command, CommandOutcome, DirectoryError, DirectoryRequest, DirectoryResponse, Epoch,
    Jurisdiction, NodeId, ObjectKey, ObjectPlacement, Owner, RegionId, choose_replicas_by_load,
};

/// Placements waiting for the batcher; past it callers wait for room.
const PLACEMENTS_QUEUED_MAX: usize = 4096;

/// Placements in one log entry (each is about a hundred bytes encoded).
pub const PLACEMENT_BATCH_MAX: usize = 256;

/// One object to place, and where its caller waits for the answer.
pub(super) struct PlaceRequest {
    pub key: ObjectKey,
    pub region: RegionId,
    pub jurisdiction: Option<Jurisdiction>,
    pub replication_factor: usize,
    /// The node the call came in at ([`Owner::Near`]); none: the least loaded.
    pub preferred: Option<NodeId>,
    pub answer: oneshot::Sender<Result<ObjectPlacement, DirectoryError>>,
}

/// Starts the batcher of the directory `inner` will be; it ends when the directory is
/// dropped (its queue closes).
pub(super) fn spawn(inner: Weak<Inner>) -> mpsc::Sender<PlaceRequest> {
    let (queue, queued) = mpsc::channel(PLACEMENTS_QUEUED_MAX);
    tokio::spawn(run(inner, queued));
    queue
}

async fn run(inner: Weak<Inner>, mut queued: mpsc::Receiver<PlaceRequest>) {
    let mut batch = Vec::with_capacity(PLACEMENT_BATCH_MAX);
    while queued.recv_many(&mut batch, PLACEMENT_BATCH_MAX).await > 0 {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        Directory { inner }
            .place_batch(std::mem::take(&mut batch))
            .await;
    }
}

impl Directory {
    /// Chooses owner and replicas for every object of `batch` not placed yet — counting
    /// the owners chosen earlier in the batch as load — proposes them in one entry and
    /// answers each caller.
    async fn place_batch(&self, batch: Vec<PlaceRequest>) {
        let now_ms = self.now_ms();
        let chosen = self
            .read_local(|state| {
                let mut chosen_here: BTreeMap<NodeId, usize> = BTreeMap::new();
                let mut proposals = Vec::with_capacity(batch.len());
                for request in batch {
                    if state.incarnation(&request.key.namespace).is_none() {
                        let namespace = request.key.namespace.clone();
                        let _ = request
                            .answer
                            .send(Err(DirectoryError::NamespaceNotFound(namespace)));
                        continue;
                    }
                    if let Some(existing) = state.placement(&request.key) {
                        let _ = request.answer.send(Ok(existing.clone()));
                        continue;
                    }
                    let load =
                        |node| state.owned_by(node) + chosen_here.get(&node).copied().unwrap_or(0);
                    let replicas = choose_replicas_by_load(
                        state,
                        &request.key,
                        &request.region,
                        request.jurisdiction.as_ref(),
                        request.replication_factor,
                        request.preferred.map_or(Owner::Least, Owner::Near),
                        load,
                    );
                    match replicas {
                        Ok(replicas) => {
                            *chosen_here.entry(replicas[0]).or_default() += 1;
                            let placement = ObjectPlacement {
                                key: request.key,
                                region: request.region,
                                jurisdiction: request.jurisdiction,
                                owner: replicas[0],
                                replicas,
                                epoch: Epoch::FIRST,
                                placed_at_ms: now_ms,
                            };
                            proposals.push((placement, request.answer));
                        }
                        Err(err) => {
                            let _ = request
                                .answer
                                .send(Err(DirectoryError::Rejected(err.to_string())));
                        }
                    }
                }
                proposals
            })
            .await;
        if chosen.is_empty() {
            return;
        }
        let (placements, answers): (Vec<_>, Vec<_>) = chosen.into_iter().unzip();
        let expected = placements.len();
        let keys: Vec<ObjectKey> = placements.iter().map(|p| p.key.clone()).collect();
        let command = Command::PlaceObjects(placements);
        let placed = match self.request(DirectoryRequest::Write(command)).await {
            Ok(DirectoryResponse::Outcome {
                outcome: CommandOutcome::PlacedAll(placed),
                ..
            }) if placed.len() == expected => Ok(placed),
            Ok(other) => Err(DirectoryError::Protocol(format!(
                "placing {expected} objects answered with {other:?}"
            ))),
            Err(err) => Err(err),
        };
        match placed {
            Ok(placed) => {
                for ((answer, placement), key) in answers.into_iter().zip(placed).zip(keys) {
                    // None: the namespace was deleted while the batch was on its way.
                    let _ = answer
                        .send(placement.ok_or(DirectoryError::NamespaceNotFound(key.namespace)));
                }
            }
            Err(err) => {
                for answer in answers {
                    let _ = answer.send(Err(err.clone()));
                }
            }
        }
    }
}
