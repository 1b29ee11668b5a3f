//! One active object at its owner: calls run one at a time from a bounded mailbox.
//!
//! Activation (cold start): load this node's copy, install it on every replica under the
//! current epoch (a majority must take it — this also fences any older owner), and, when
//! the epoch is new to this node, wait out the lease an older owner may still hold.
//! A write applies to the owner's own copy first, then to the other replicas in
//! parallel, and is acknowledged once a majority (the owner's copy included) holds it.
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
}

impl Actor {
    pub fn new(host: ObjectHost, key: ObjectKey) -> Actor {
        Actor {
            host,
            key,
            placement: None,
            state: ObjectState::default(),
            lease_until: None,
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
    async fn retake(&self, fenced_at: u64) -> Result<bool, ObjectError> {
        let directory = &self.host.inner().directory;
        let me = directory.me().id;
        let state = directory.linearizable_state().await?;
        let Some(placement) = state.placement(&self.key) else {
            return Ok(false);
        };
        if placement.owner != me || fenced_at != placement.epoch + 1 {
            return Ok(false);
        }
        let command = Command::ReassignObject {
            key: self.key.clone(),
            expected_epoch: placement.epoch,
            replicas: placement.replicas.clone(),
            region: None,
        };
        let outcome = directory.request(DirectoryRequest::Write(command)).await?;
        let retaken = matches!(
            outcome,
            DirectoryResponse::Outcome { outcome: CommandOutcome::Placed(ref p), .. } if p.owner == me
        );
        if retaken {
            tracing::info!(object = %self.key, epoch = fenced_at, "owner reclaimed the object after an abandoned hand-over");
        }
        Ok(retaken)
    }

    async fn try_activate(&mut self) -> Result<(), ObjectError> {
        let placement = self.current_placement().await?;
        let (meta, state) = self.host.inner().copies.load(&self.key)?;
        if meta.epoch > placement.epoch {
            return Err(deposed(&self.key, meta.epoch));
        }
        if meta.write_epoch == placement.epoch {
            // A cold start of this owner's own epoch: its copy is the most advanced
            // (it applies every write first), so there is nothing to install. The next
            // write confirms the epoch with a majority; a read first renews the lease.
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
            let round = self.offer_all(&placement, install, None).await?;
            if placement.epoch > 1 {
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
        for call in calls {
            let executed = self
                .state
                .execute_request(&call.op, call.request_id.as_deref(), limits);
            match executed {
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
        Ok(())
    }

    /// Offers to this node's copy first, then to the other replicas in parallel; returns
    /// once a majority (this copy included) holds it, with the replicas that reported a
    /// gap. Err: deposed, or no majority in time — the outcome of a write is then unknown.
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
        let me = self.host.inner().directory.me().id;
        let mut quiet_ms = u64::MAX;
        match self.host.offer_own_copy(offer.clone()).await {
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
