//! One active object at its owner: calls run one batch at a time from a bounded mailbox.
//!
//! A write goes to the owner's own copy and the other replicas at once (the owner's
//! flush overlaps the replicas', as a Raft leader's does), and is acknowledged once a
//! majority holds it, the owner's copy always among them (see [`super::round`]). So the
//! owner's copy holds every acknowledged write, but a crash (or a failed write to it)
//! can leave replicas holding an unacknowledged one it lacks; activation deals with
//! that (see [`super::activation`]).
//! A read is answered locally while the lease from the last majority round holds;
//! otherwise a majority confirms first that no newer owner exists.

use std::time::Duration;

use larder_base::NodeId;
use larder_directory::{ObjectKey, ObjectPlacement};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::OwnerContext;
use super::batch::{self, Call};
use super::round::{self, ReplicationRound, RoundDone, RoundFailure, RoundKind};
use crate::peer_messages::{CopyRequest, InstallRequest, ReplicateRequest};
use crate::{ObjectError, ObjectState};

pub(super) struct Actor {
    pub(super) ctx: OwnerContext,
    pub(super) key: ObjectKey,
    pub(super) placement: Option<ObjectPlacement>,
    pub(super) state: ObjectState,
    pub(super) lease_until: Option<Instant>,
    /// Serving reads only: this copy needs a new epoch before it may write, and the
    /// disk is too full for the state transfer that takes.
    pub(super) reads_only: bool,
}

impl Actor {
    pub fn new(ctx: OwnerContext, key: ObjectKey) -> Actor {
        Actor {
            ctx,
            key,
            placement: None,
            state: ObjectState::default(),
            lease_until: None,
            reads_only: false,
        }
    }

    /// Serves the mailbox until the object goes idle or this node stops owning it; then
    /// closes the mailbox and settles what is queued.
    pub async fn run(mut self, mut mailbox: mpsc::Receiver<Call>, leave: &Notify) {
        let idle = Duration::from_millis(self.ctx.config.idle_after_ms);
        let refused = match self.activate().await {
            Ok(()) => {
                self.serve(&mut mailbox, idle, leave).await;
                None
            }
            Err(err) => {
                tracing::warn!(object = %self.key, error = %err, "object activation failed");
                Some(err)
            }
        };
        mailbox.close();
        while let Some(call) = mailbox.recv().await {
            match &refused {
                // Why activation failed: what every queued call is answered.
                Some(err) => {
                    let _ = call.reply.send(Err(err.clone()));
                }
                // Queued behind a stop (idle, or a failed round): never run. Dropping
                // the reply sender makes the registry run it on a fresh actor.
                None => drop(call),
            }
        }
    }

    async fn serve(&mut self, mailbox: &mut mpsc::Receiver<Call>, idle: Duration, leave: &Notify) {
        loop {
            let first = tokio::select! {
                call = tokio::time::timeout(idle, mailbox.recv()) => match call {
                    Ok(Some(call)) => call,
                    // Idle: leave memory; the next call starts from storage.
                    _ => return,
                },
                // Evicted for another object (active_objects_max): as idle.
                () = leave.notified() => return,
            };
            let calls = batch::take_batch(first, mailbox);
            let Err(err) = self.handle_batch(calls).await else {
                continue;
            };
            // The calls' outcome is unknown to their callers, who retry with the same
            // request ids. After an abandoned hand-over the object serves on; otherwise
            // this actor stops (its memory may hold writes that did not reach a
            // majority) and the next call starts from storage.
            let recovered = match &err {
                ObjectError::Superseded { epoch, .. } => self.recover(*epoch).await,
                _ => false,
            };
            if !recovered {
                return;
            }
        }
    }

    /// Runs queued calls in order and answers them. Their writes apply in memory one
    /// after another and go to the replicas as one replication round; nobody hears an
    /// answer before that round reaches a majority (reads that saw a write included).
    /// Err: the round failed — every call of the batch gets the error, and the actor
    /// must not serve from this memory again.
    async fn handle_batch(&mut self, calls: Vec<Call>) -> Result<(), ObjectError> {
        let placement = match self.ctx.placements.owned_here(&self.key).await {
            Ok(placement) if self.placement.as_ref().map(|p| p.epoch) == Some(placement.epoch) => {
                placement
            }
            Ok(placement) => {
                let err = ObjectError::Unavailable {
                    reason: format!("{} changed placement (epoch {})", self.key, placement.epoch),
                    retry_at: None,
                };
                batch::refuse_all(calls, &err);
                return Err(err);
            }
            Err(err) => {
                batch::refuse_all(calls, &err);
                return Err(err);
            }
        };
        let refusal = self.reads_only.then(|| self.writes_refused());
        let limits = &self.ctx.config.limits;
        let executed = batch::execute(&mut self.state, calls, limits, refusal.as_ref());
        let started = Instant::now();
        let lease_expired = self.lease_until.is_none_or(|until| started >= until);
        if let Some(version) = executed.round_version(lease_expired) {
            let round = CopyRequest::Write(ReplicateRequest {
                key: self.key.clone(),
                epoch: placement.epoch,
                version,
                writes: executed.writes.clone(),
            });
            match self.replicate(&placement, round, RoundKind::Writes).await {
                Ok(done) => {
                    self.lease_until = Some(started + self.ctx.config.lease());
                    self.repair(&placement, done.lagging);
                }
                Err(err) => {
                    executed.fail(&err);
                    return Err(err);
                }
            }
        }
        self.ctx.events.publish(&self.key, &executed.events());
        let refused_writes = executed.refused_writes;
        executed.answer(&placement);
        if refused_writes {
            // Stop: the next call starts a fresh actor, which writes once there is space.
            return Err(ObjectError::Unavailable {
                reason: format!("{}: writes wait for disk space", self.key),
                retry_at: None,
            });
        }
        Ok(())
    }

    /// What a write gets while this owner serves reads only.
    fn writes_refused(&self) -> ObjectError {
        match self.ctx.copies.check_space() {
            Err(full) => full.into(),
            Ok(()) => ObjectError::Unavailable {
                reason: format!("{}: space is back; the owner resumes writes", self.key),
                retry_at: None,
            },
        }
    }

    /// One replication round: offers to the other replicas and to this node's copy at
    /// once, and returns once a majority holds it, this copy always among them. Err:
    /// deposed, or no majority in time — the outcome of a write is then unknown.
    ///
    /// A write round catches up the lagging replicas its majority needs with the state
    /// after the round (the actor's state holds it).
    pub(super) async fn replicate(
        &self,
        placement: &ObjectPlacement,
        offer: CopyRequest,
        kind: RoundKind,
    ) -> Result<RoundDone, ObjectError> {
        if offer.stores_something() {
            // Refused here before any replica has it: this copy is not left behind
            // (a copy that is forces a new epoch, which needs space too).
            self.ctx.copies.check_space()?;
        }
        let me = self.ctx.placements.me();
        let others: Vec<NodeId> = placement
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != me)
            .collect();
        let (tx, mut answers) = mpsc::channel(others.len().max(1));
        for replica in others {
            let (peers, offer, tx) = (self.ctx.peers.clone(), offer.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send((replica, peers.offer(replica, offer).await)).await;
            });
        }
        drop(tx);
        let mut round = ReplicationRound::new(placement, kind);
        // The replicas have the offer already; this node's copy takes it meanwhile.
        let own = self.ctx.copies.take(&offer).await;
        if !round::own_copy_vouches(&own) {
            // Replicas may hold what this copy does not.
            self.ctx.settled.unsettle(&self.key);
        }
        round
            .own_copy(own?)
            .map_err(|failure| self.round_error(failure))?;
        let deadline = Instant::now() + self.ctx.config.write_timeout();
        while !round.is_decided() {
            match tokio::time::timeout_at(deadline, answers.recv()).await {
                Ok(Some((replica, answer))) => round.replica(replica, answer),
                Ok(None) | Err(_) => break,
            }
        }
        let lagging = round.catch_up();
        if !lagging.is_empty() {
            let installs = lagging.iter().map(|replica| {
                let install = self.install_request(placement);
                self.ctx.peers.offer(*replica, install)
            });
            let results = futures::future::join_all(installs).await;
            for (replica, result) in lagging.into_iter().zip(results) {
                round.caught_up(replica, result);
            }
        }
        round.finish().map_err(|failure| self.round_error(failure))
    }

    fn round_error(&self, failure: RoundFailure) -> ObjectError {
        match failure {
            RoundFailure::Deposed { epoch } => ObjectError::Superseded {
                key: self.key.to_string(),
                epoch,
            },
            RoundFailure::OwnCopyBehind { have } => ObjectError::Unavailable {
                reason: format!(
                    "{}: this node's copy is at version {have}, out of step",
                    self.key
                ),
                retry_at: None,
            },
            RoundFailure::NoMajority {
                held,
                replicas,
                quorum,
                failures,
            } => ObjectError::Unavailable {
                reason: format!(
                    "{}: {held} of {replicas} replicas acknowledged, {quorum} needed (failures: {}); a write may or may not have been applied",
                    self.key,
                    failures.join("; ")
                ),
                retry_at: None,
            },
        }
    }

    /// The actor's state, offered as a state transfer at `placement`'s epoch.
    fn install_request(&self, placement: &ObjectPlacement) -> CopyRequest {
        CopyRequest::State(InstallRequest {
            key: self.key.clone(),
            epoch: placement.epoch,
            state: self.state.clone(),
        })
    }

    /// Brings replicas that missed writes up to date with a state transfer, in the
    /// background.
    fn repair(&self, placement: &ObjectPlacement, lagging: Vec<NodeId>) {
        for replica in lagging {
            let offer = self.install_request(placement);
            let (peers, key) = (self.ctx.peers.clone(), self.key.clone());
            tokio::spawn(async move {
                if let Err(err) = peers.offer(replica, offer).await {
                    tracing::debug!(object = %key, replica = %replica, error = %err, "replica repair failed");
                }
            });
        }
    }
}
