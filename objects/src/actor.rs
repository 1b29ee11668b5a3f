//! One active object at its owner: calls run one at a time from a bounded mailbox.
//!
//! Activation (cold start): load this node's copy, install it on every replica under the
//! current epoch (a majority must take it — this also fences any older owner), and, when
//! the epoch is new to this node, wait out the lease an older owner may still hold.
//! A write goes to the owner's own copy and the other replicas at once (the owner's
//! flush overlaps the replicas', as a Raft leader's does), and is acknowledged once a
//! majority holds it, the owner's copy always among them. So the owner's copy holds every
//! acknowledged write, but a crash (or a failed write to it) can leave replicas holding
//! an unacknowledged one it lacks. An owner that may be in that position — it served
//! this epoch before and cannot vouch for its copy since — does not go on in the same
//! epoch, where a different write with the same number would look "already applied" to
//! those replicas: it takes the next epoch and installs its copy under it first.
//! A read is answered locally while the lease from the last majority round holds;
//! otherwise a majority confirms first that no newer owner exists.

use std::time::Duration;

use larder_directory::{
    Command, CommandOutcome, DirectoryRequest, DirectoryResponse, NodeId, ObjectKey,
    ObjectPlacement,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::host::{ObjectHost, Offer};
use crate::op::{Answer, Op};
use crate::peer_messages::{InstallRequest, ReplicateRequest};
use crate::{ApplyOutcome, Mutation, ObjectError, ObjectState};

pub(crate) struct Call {
    pub op: Op,
    pub request_id: Option<String>,
    pub reply: oneshot::Sender<Result<Answer, ObjectError>>,
}

pub(crate) struct Actor {
    host: ObjectHost,
    key: ObjectKey,
    placement: Option<ObjectPlacement>,
    state: ObjectState,
    lease_until: Option<Instant>,
    /// Serving reads only: this copy needs a new epoch before it may write, and the
    /// disk is too full for the state transfer that takes.
    reads_only: bool,
}

impl Actor {
    pub fn new(host: ObjectHost, key: ObjectKey) -> Actor {
        Actor {
            host,
            key,
            placement: None,
            state: ObjectState::default(),
            lease_until: None,
            reads_only: false,
        }
    }

    pub async fn run(mut self, mut mailbox: mpsc::Receiver<Call>) {
        let idle = Duration::from_millis(self.host.inner().config.idle_after_ms);
        // Why activation failed: what every queued call is answered.
        let mut refused = None;
        match self.activate().await {
            Ok(()) => loop {
                let first = match tokio::time::timeout(idle, mailbox.recv()).await {
                    Ok(Some(call)) => call,
                    // Idle: leave memory; the next call starts from storage.
                    _ => break,
                };
                let calls = take_batch(first, &mut mailbox);
                let Err(err) = self.handle_batch(calls).await else {
                    continue;
                };
                // The calls' outcome is unknown to their callers, who retry with the
                // same request ids. After an abandoned hand-over the object serves on;
                // otherwise this actor stops (its memory may hold writes that did not
                // reach a majority) and the next call starts from storage.
                if let ObjectError::Superseded { epoch, .. } = &err
                    && self.recover(*epoch).await
                {
                    continue;
                }
                break;
            },
            Err(err) => {
                tracing::warn!(object = %self.key, error = %err, "object activation failed");
                refused = Some(err);
            }
        }
        mailbox.close();
        while let Some(call) = mailbox.recv().await {
            match &refused {
                Some(err) => {
                    let _ = call.reply.send(Err(err.clone()));
                }
                // Queued behind a stop (idle, or a failed round): never run. Dropping
                // the reply sender makes the host run it on a fresh actor.
                None => drop(call),
            }
        }
        self.host.forget(&self.key);
    }

    async fn current_placement(&self) -> Result<ObjectPlacement, ObjectError> {
        let me = self.host.inner().directory.me().id;
        let directory = &self.host.inner().directory;
        let key = &self.key;
        let local = directory
            .read_local(|s| {
                let placement = s.placement(key).cloned()?;
                let owner_api = s.node(placement.owner).map(|n| n.spec.api_addr.clone());
                Some((placement, owner_api))
            })
            .await;
        if let Some((placement, owner_api)) = local {
            if placement.owner != me {
                return Err(ObjectError::Unavailable {
                    reason: format!("{} is now owned by node {}", self.key, placement.owner),
                    retry_at: owner_api,
                });
            }
            return Ok(placement);
        }
        // Placed through the leader a moment ago: catch up with the log first.
        let state = directory.linearizable_state().await?;
        let placement =
            state
                .placement(&self.key)
                .cloned()
                .ok_or_else(|| ObjectError::Unavailable {
                    reason: format!("{} has no placement", self.key),
                    retry_at: None,
                })?;
        if placement.owner != me {
            return Err(ObjectError::Unavailable {
                reason: format!("{} is now owned by node {}", self.key, placement.owner),
                retry_at: state.node(placement.owner).map(|n| n.spec.api_addr.clone()),
            });
        }
        Ok(placement)
    }

    async fn activate(&mut self) -> Result<(), ObjectError> {
        match self.try_activate().await {
            Err(ObjectError::Superseded { epoch, .. }) if self.retake(epoch).await? => {
                self.try_activate().await
            }
            other => other,
        }
    }

    /// After a replica refused this owner at `fenced_at`: reclaims an abandoned
    /// hand-over and activates again. Returns whether the object can serve on.
    async fn recover(&mut self, fenced_at: u64) -> bool {
        matches!(self.retake(fenced_at).await, Ok(true)) && self.try_activate().await.is_ok()
    }

    /// A failover or move that fenced the replicas at the next epoch and then gave up
    /// (no majority, lost race) leaves this node named owner but refused by its replicas.
    /// It claims that epoch through the directory — which orders it against any
    /// concurrent reassignment — and activates again. Returns whether it did.
    ///
    /// A hand-over in progress looks the same for a while (a move fences first, waits out
    /// the lease, installs, then commits), so the owner first gives it time to commit;
    /// reclaiming at once would beat every move under load (its installs at that epoch
    /// are then refused, as they must be, and the move fails).
    async fn retake(&self, fenced_at: u64) -> Result<bool, ObjectError> {
        let directory = &self.host.inner().directory;
        let config = &self.host.inner().config;
        let grace = config.lease() * 2 + config.write_timeout();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let epoch = directory
                .read_local(|s| s.placement(&self.key).map(|p| p.epoch))
                .await;
            if epoch.is_none_or(|epoch| epoch >= fenced_at) {
                // The hand-over committed (or the object is gone): nothing to reclaim.
                return Ok(false);
            }
            tokio::time::sleep(HANDOVER_POLL).await;
        }
        let state = directory.linearizable_state().await?;
        let Some(placement) = state.placement(&self.key) else {
            return Ok(false);
        };
        if placement.owner != directory.me().id || fenced_at != placement.epoch + 1 {
            return Ok(false);
        }
        let retaken = self.next_epoch(placement).await?.is_some();
        if retaken {
            tracing::info!(object = %self.key, epoch = fenced_at, "owner reclaimed the object after an abandoned hand-over");
        }
        Ok(retaken)
    }

    /// Moves the object to the epoch after `placement`'s, with the same owner (this
    /// node) and replicas, through the directory (which orders it against any
    /// concurrent reassignment). Returns the new placement, or None if another
    /// reassignment came first.
    async fn next_epoch(
        &self,
        placement: &ObjectPlacement,
    ) -> Result<Option<ObjectPlacement>, ObjectError> {
        let directory = &self.host.inner().directory;
        let command = Command::ReassignObject {
            key: self.key.clone(),
            expected_epoch: placement.epoch,
            replicas: placement.replicas.clone(),
            region: None,
        };
        match directory.request(DirectoryRequest::Write(command)).await? {
            DirectoryResponse::Outcome {
                outcome: CommandOutcome::Placed(next),
                ..
            } if next.owner == directory.me().id && next.epoch == placement.epoch + 1 => {
                Ok(Some(*next))
            }
            _ => Ok(None),
        }
    }

    async fn try_activate(&mut self) -> Result<(), ObjectError> {
        let mut placement = self.current_placement().await?;
        let copies = &self.host.inner().copies;
        let (meta, state) = copies.load(&self.key)?;
        if meta.epoch > placement.epoch {
            return Err(deposed(&self.key, meta.epoch));
        }
        // Whether the lease of the epoch before `placement`'s was this node's own, held
        // by nobody now: a stopped actor or a process that is gone.
        let mut own_lease_gone = false;
        if meta.write_epoch == placement.epoch && !self.host.is_settled(&self.key, placement.epoch)
        {
            if copies.owner_marker(&self.key)? < placement.epoch {
                // This node never served the epoch: nothing in it came from here
                // but the state installed on every copy alike.
                copies.mark_owner(&self.key, placement.epoch).await?;
            } else if copies.check_space().is_err() {
                // Reads of this copy are still right: whatever it may lack was never
                // acknowledged (nor read). Writes wait for space and a new epoch.
                self.reads_only = true;
            } else {
                // It served the epoch before, and its copy may have missed writes
                // its replicas took (see the module comment): take the next epoch.
                placement =
                    self.next_epoch(&placement)
                        .await?
                        .ok_or_else(|| ObjectError::Unavailable {
                            reason: format!(
                                "{} changed placement while its owner restarted",
                                self.key
                            ),
                            retry_at: None,
                        })?;
                own_lease_gone = true;
                tracing::info!(object = %self.key, epoch = placement.epoch, "owner restarted in a new epoch: its copy may have missed unacknowledged writes");
            }
        }
        if meta.write_epoch == placement.epoch {
            // A cold start of this owner's own epoch: its copy is at least as far as
            // any replica, so there is nothing to install. The next write confirms
            // the epoch with a majority; a read first renews the lease.
            self.lease_until = None;
        } else {
            // New to this epoch: install the state on a majority, which also fences any
            // older owner.
            let started = Instant::now();
            let install = Offer::State(InstallRequest {
                key: self.key.clone(),
                epoch: placement.epoch,
                state: state.clone(),
            });
            let (round, marked) = tokio::join!(
                self.offer_all(&placement, install, None),
                copies.mark_owner(&self.key, placement.epoch)
            );
            let round = round?;
            marked?;
            if placement.epoch > 1 && !own_lease_gone {
                // An older owner may still answer reads until its lease runs out
                // (epoch 1 is the first placement: there was none). Its lease began no
                // later than the last time a copy of this majority accepted anything
                // from it (every majority it had meets this one), usually long ago.
                let lease = self.host.inner().config.lease();
                let left = lease.saturating_sub(Duration::from_millis(round.quiet_ms));
                tokio::time::sleep(left).await;
            }
            self.lease_until = Some(started + self.host.inner().config.lease());
        }
        self.host.settle(&self.key, placement.epoch);
        self.state = state;
        self.placement = Some(placement);
        Ok(())
    }

    /// Runs queued calls in order and answers them. Their writes apply in memory one
    /// after another (each call sees the ones before it) and go to the replicas as one
    /// replication round; nobody hears an answer before that round reaches a majority
    /// (reads that saw a write included). Err: the round failed — every call of the
    /// batch gets the error, and the actor must not serve from this memory again.
    async fn handle_batch(&mut self, calls: Vec<Call>) -> Result<(), ObjectError> {
        let placement = match self.current_placement().await {
            Ok(placement) if self.placement.as_ref().map(|p| p.epoch) == Some(placement.epoch) => {
                placement
            }
            Ok(placement) => {
                let err = ObjectError::Unavailable {
                    reason: format!("{} changed placement (epoch {})", self.key, placement.epoch),
                    retry_at: None,
                };
                return answer_all(calls, err);
            }
            Err(err) => return answer_all(calls, err),
        };
        let limits = &self.host.inner().config.limits;
        let first_version = self.state.version() + 1;
        let (mut writes, mut answers, mut needs_lease) = (Vec::new(), Vec::new(), false);
        let mut refused_writes = false;
        for call in calls {
            let executed = self
                .state
                .execute_request(&call.op, call.request_id.as_deref(), limits);
            match executed {
                Ok((_, mutations)) if !mutations.is_empty() && self.reads_only => {
                    let full = self.host.inner().copies.check_space().err();
                    refused_writes = true;
                    answers.push((
                        call.reply,
                        Err(full.map_or_else(
                            || ObjectError::Unavailable {
                                reason: format!(
                                    "{}: space is back; the owner resumes writes",
                                    self.key
                                ),
                                retry_at: None,
                            },
                            ObjectError::from,
                        )),
                    ));
                }
                Ok((reply, mutations)) if !mutations.is_empty() => {
                    self.state.apply(&mutations);
                    writes.push(mutations);
                    answers.push((call.reply, Ok(reply)));
                }
                // A firing with nothing due reads nothing that needs the lease.
                Ok((reply, _)) if matches!(call.op, Op::FireAlarms { .. }) => {
                    answers.push((call.reply, Ok(reply)));
                }
                // Reads, and retried writes answered from memory, need the lease.
                Ok((reply, _)) => {
                    needs_lease = true;
                    answers.push((call.reply, Ok(reply)));
                }
                Err(err) => answers.push((call.reply, Err(err))),
            }
        }
        let started = Instant::now();
        let lease_expired = self.lease_until.is_none_or(|until| started >= until);
        if !writes.is_empty() || (needs_lease && lease_expired) {
            // A ping (no writes) confirms with a majority that this node still owns
            // the object.
            let round = Offer::Write(ReplicateRequest {
                key: self.key.clone(),
                epoch: placement.epoch,
                version: if writes.is_empty() {
                    self.state.version()
                } else {
                    first_version
                },
                writes: writes.clone(),
            });
            match self.offer_all(&placement, round, Some(&self.state)).await {
                Ok(round) => {
                    self.lease_until = Some(started + self.host.inner().config.lease());
                    self.repair(&placement, round.lagging);
                }
                Err(err) => {
                    for (reply, _) in answers {
                        let _ = reply.send(Err(err.clone()));
                    }
                    return Err(err);
                }
            }
        }
        let events: Vec<_> = writes
            .iter()
            .flatten()
            .filter_map(|m| match m {
                Mutation::AppendEvent(event) => Some(event.clone()),
                _ => None,
            })
            .collect();
        self.host.inner().events.publish(&self.key, &events);
        for (reply, answer) in answers {
            let answer = answer.map(|reply| Answer {
                reply,
                owner: placement.owner.0,
                epoch: placement.epoch,
            });
            let _ = reply.send(answer);
        }
        if refused_writes {
            // Stop: the next call starts a fresh actor, which writes once there is space.
            return Err(ObjectError::Unavailable {
                reason: format!("{}: writes wait for disk space", self.key),
                retry_at: None,
            });
        }
        Ok(())
    }

    /// Offers to the other replicas and to this node's copy at once; returns once a
    /// majority holds it, this copy always among them, with the replicas that reported
    /// a gap. Err: deposed, or no majority in time — the outcome of a write is then
    /// unknown.
    ///
    /// `caught_up`: the state after this round. When a majority cannot be had without
    /// replicas that missed earlier writes (they answer with a gap), those get this
    /// state installed — which holds the round — and count once it is in; otherwise a
    /// replica set whose majority includes a lagging copy would refuse every round.
    async fn offer_all(
        &self,
        placement: &ObjectPlacement,
        offer: Offer,
        caught_up: Option<&ObjectState>,
    ) -> Result<Round, ObjectError> {
        let stores_something = match &offer {
            Offer::Write(round) => !round.writes.is_empty(),
            Offer::State(_) => true,
        };
        if stores_something {
            // Refused here before any replica has it: this copy is not left behind
            // (a copy that is forces a new epoch, which needs space too).
            self.host.inner().copies.check_space()?;
        }
        let me = self.host.inner().directory.me().id;
        let others: Vec<NodeId> = placement
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != me)
            .collect();
        let needed = placement.quorum().saturating_sub(1);
        let (tx, mut rx) = mpsc::channel(others.len().max(1));
        for replica in &others {
            let (host, offer, tx, replica) =
                (self.host.clone(), offer.clone(), tx.clone(), *replica);
            tokio::spawn(async move {
                let _ = tx.send((replica, host.offer(replica, offer).await)).await;
            });
        }
        drop(tx);
        // The replicas have the offer already; this node's copy takes it meanwhile.
        let mut quiet_ms = u64::MAX;
        let own = self.host.offer_own_copy(offer.clone()).await;
        if !matches!(
            own,
            Ok(ApplyOutcome::Applied { .. }
                | ApplyOutcome::AlreadyApplied { .. }
                | ApplyOutcome::Installed { .. })
        ) {
            // Replicas may hold what this copy does not.
            self.host.unsettle(&self.key);
        }
        match own {
            Ok(
                outcome @ (ApplyOutcome::Applied { .. }
                | ApplyOutcome::AlreadyApplied { .. }
                | ApplyOutcome::Installed { .. }),
            ) => quiet_ms = quiet_ms.min(quiet(&outcome)),
            Ok(ApplyOutcome::Fenced { epoch }) => return Err(deposed(&self.key, epoch)),
            Ok(ApplyOutcome::Gap { have }) => {
                return Err(ObjectError::Unavailable {
                    reason: format!(
                        "{}: this node's copy is at version {have}, out of step",
                        self.key
                    ),
                    retry_at: None,
                });
            }
            Err(err) => return Err(err.into()),
        }
        let deadline = Instant::now() + self.host.inner().config.write_timeout();
        let (mut acks, mut lagging, mut failures) = (0usize, Vec::new(), Vec::new());
        while acks < needed {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((
                    _,
                    Ok(
                        outcome @ (ApplyOutcome::Applied { .. }
                        | ApplyOutcome::AlreadyApplied { .. }
                        | ApplyOutcome::Installed { .. }),
                    ),
                ))) => {
                    acks += 1;
                    quiet_ms = quiet_ms.min(quiet(&outcome));
                }
                Ok(Some((replica, Ok(ApplyOutcome::Gap { .. })))) => lagging.push(replica),
                Ok(Some((_, Ok(ApplyOutcome::Fenced { epoch })))) => {
                    return Err(deposed(&self.key, epoch));
                }
                Ok(Some((replica, Err(err)))) => failures.push(format!("{replica}: {err}")),
                Ok(None) | Err(_) => break,
            }
        }
        if acks < needed
            && !lagging.is_empty()
            && let Some(state) = caught_up
        {
            let installs = lagging.iter().map(|replica| {
                let install = Offer::State(InstallRequest {
                    key: self.key.clone(),
                    epoch: placement.epoch,
                    state: state.clone(),
                });
                self.host.offer(*replica, install)
            });
            let results = futures::future::join_all(installs).await;
            let mut still_lagging = Vec::new();
            for (replica, result) in lagging.into_iter().zip(results) {
                match result {
                    Ok(
                        ApplyOutcome::Applied { .. }
                        | ApplyOutcome::AlreadyApplied { .. }
                        | ApplyOutcome::Installed { .. },
                    ) => {
                        acks += 1;
                        quiet_ms = 0;
                    }
                    Ok(ApplyOutcome::Fenced { epoch }) => return Err(deposed(&self.key, epoch)),
                    Ok(ApplyOutcome::Gap { .. }) => still_lagging.push(replica),
                    Err(err) => failures.push(format!("{replica}: {err}")),
                }
            }
            lagging = still_lagging;
        }
        if acks < needed {
            return Err(ObjectError::Unavailable {
                reason: format!(
                    "{}: {} of {} replicas acknowledged, {} needed (failures: {}); a write may or may not have been applied",
                    self.key,
                    acks + 1,
                    placement.replicas.len(),
                    placement.quorum(),
                    failures.join("; ")
                ),
                retry_at: None,
            });
        }
        Ok(Round { lagging, quiet_ms })
    }

    /// Brings replicas that missed writes up to date with a state transfer, in the
    /// background.
    fn repair(&self, placement: &ObjectPlacement, lagging: Vec<NodeId>) {
        for replica in lagging {
            let offer = Offer::State(InstallRequest {
                key: self.key.clone(),
                epoch: placement.epoch,
                state: self.state.clone(),
            });
            let host = self.host.clone();
            let key = self.key.clone();
            tokio::spawn(async move {
                if let Err(err) = host.offer(replica, offer).await {
                    tracing::debug!(object = %key, replica = %replica, error = %err, "replica repair failed");
                }
            });
        }
    }
}

/// What a round that reached a majority leaves to do or know.
struct Round {
    /// Replicas that answered with a gap, to repair.
    lagging: Vec<NodeId>,
    /// The least time any copy of the majority had been quiet for an older owner.
    quiet_ms: u64,
}

/// A copy's quiet time as its answer tells it (0 unless a state transfer reports it).
fn quiet(outcome: &ApplyOutcome) -> u64 {
    match outcome {
        ApplyOutcome::Installed { quiet_ms, .. } => *quiet_ms,
        _ => 0,
    }
}

/// How often an owner refused at the next epoch looks whether the hand-over committed.
const HANDOVER_POLL: Duration = Duration::from_millis(50);

/// Calls run under one replication round, at most.
const BATCH_CALLS_MAX: usize = 64;
/// Bytes of keys and values (estimated from the calls) under one replication round;
/// a single larger call still goes alone.
const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// `first` and the calls queued behind it, up to the batch limits.
fn take_batch(first: Call, mailbox: &mut mpsc::Receiver<Call>) -> Vec<Call> {
    let mut bytes = first.op.payload_bytes();
    let mut calls = vec![first];
    while calls.len() < BATCH_CALLS_MAX && bytes < BATCH_BYTES_MAX {
        let Ok(call) = mailbox.try_recv() else {
            break;
        };
        bytes += call.op.payload_bytes();
        calls.push(call);
    }
    calls
}

/// Answers every call with `err` (the batch did not run) and passes it on: the actor
/// stops, and the next call activates a fresh one under the current placement.
fn answer_all(calls: Vec<Call>, err: ObjectError) -> Result<(), ObjectError> {
    for call in calls {
        let _ = call.reply.send(Err(err.clone()));
    }
    Err(err)
}

fn deposed(key: &ObjectKey, epoch: u64) -> ObjectError {
    ObjectError::Superseded {
        key: key.to_string(),
        epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(bytes: usize) -> (Call, oneshot::Receiver<Result<Answer, ObjectError>>) {
        let (reply, rx) = oneshot::channel();
        let op = Op::Put {
            entries: vec![(b"k".to_vec(), vec![0; bytes.saturating_sub(1)])],
        };
        let call = Call {
            op,
            request_id: None,
            reply,
        };
        (call, rx)
    }

    #[test]
    fn a_batch_stops_at_its_call_and_byte_limits_and_leaves_the_rest_queued() {
        let (tx, mut mailbox) = mpsc::channel(BATCH_CALLS_MAX * 2);
        let mut replies = Vec::new();
        for _ in 0..BATCH_CALLS_MAX + 5 {
            let (call, rx) = put(10);
            replies.push(rx);
            assert!(tx.try_send(call).is_ok());
        }
        let first = mailbox.try_recv().expect("queued");
        assert_eq!(take_batch(first, &mut mailbox).len(), BATCH_CALLS_MAX);
        let first = mailbox.try_recv().expect("the rest stays queued");
        assert_eq!(take_batch(first, &mut mailbox).len(), 5);

        // Large calls: the batch closes once it reaches the byte limit.
        let big = BATCH_BYTES_MAX / 2;
        for _ in 0..5 {
            let (call, rx) = put(big);
            replies.push(rx);
            assert!(tx.try_send(call).is_ok());
        }
        let first = mailbox.try_recv().expect("queued");
        assert_eq!(take_batch(first, &mut mailbox).len(), 2);
        // A single call over the limit still goes, alone.
        let (call, _rx) = put(BATCH_BYTES_MAX + 1);
        assert_eq!(take_batch(call, &mut mailbox).len(), 1);
    }
}
