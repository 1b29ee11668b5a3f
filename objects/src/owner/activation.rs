//! Activation (a cold start): how an owner's actor resumes an object from its copy.
//!
//! New to the epoch, the owner installs its copy's state on a majority of the replicas
//! under the epoch (which also fences any older owner) and waits out what may be left of
//! the older owner's read lease. Back in an epoch it served before, it needs no install
//! when this process can vouch for its copy (it activated the object and every own write
//! since succeeded) — or when a durable owner marker says this node never served the
//! epoch. Otherwise its copy may lack a write its replicas took before a crash, and a
//! different write with the same number would look "already applied" to them: it takes
//! the next epoch through the directory and installs its copy under it first. A disk too
//! full for that install leaves it serving reads only.

use std::time::Duration;

use larder_base::{Epoch, NodeId};
use larder_directory::ObjectPlacement;
use tokio::time::Instant;

use super::actor::Actor;
use super::round::RoundKind;
use crate::peer_messages::{CopyRequest, InstallRequest};
use crate::placements::Reassigned;
use crate::{ObjectError, ReplicaMeta};

/// How often an owner refused at the next epoch looks whether the hand-over committed.
const HANDOVER_POLL: Duration = Duration::from_millis(50);

/// How an owner resumes an object from its copy, decided from the copy's meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    /// The copy has seen a newer epoch: this node is no longer the owner.
    Deposed { epoch: Epoch },
    /// The copy is the epoch's own and at least as far as any replica: serve from it
    /// (recording first, durably, that this node now serves the epoch when
    /// `mark_owner`). The next write confirms the epoch with a majority.
    ColdStart { mark_owner: bool },
    /// The copy may be behind its replicas and the disk is too full to move on: serve
    /// reads (whatever the copy lacks was never acknowledged, nor read).
    ReadsOnly,
    /// The copy may be behind its replicas: take the next epoch and install it there.
    NextEpoch,
    /// New to the epoch: install the copy on a majority of the replicas.
    Install,
}

impl Resume {
    /// Whether the owner may vouch for its copy afterwards (remember it as settled): not
    /// when serving reads only, whose copy may lack a write its replicas took — vouched
    /// for, the next activation would reuse the epoch and give another write that
    /// write's number.
    pub(super) fn vouches(&self) -> bool {
        !matches!(self, Resume::ReadsOnly | Resume::Deposed { .. })
    }
}

/// How long a new owner waits before serving, after installing its state at `epoch`:
/// what may be left of an older owner's read lease. Its lease began no later than the
/// last time a copy of the new owner's majority accepted anything from it (every
/// majority it had meets this one), `quiet_ms` ago. None at epoch 1 (the first
/// placement: no older owner) nor when the older lease was this node's own.
pub(super) fn lease_wait(
    epoch: Epoch,
    own_lease_gone: bool,
    quiet_ms: u64,
    lease: Duration,
) -> Duration {
    if epoch <= Epoch::FIRST || own_lease_gone {
        return Duration::ZERO;
    }
    lease.saturating_sub(Duration::from_millis(quiet_ms))
}

/// Whether an owner refused at `fenced_at` reclaims that epoch: only when, after the
/// grace for a hand-over to commit, the directory still names it owner one epoch below
/// (an abandoned hand-over); anything else is a hand-over that happened.
pub(super) fn retake_due(placement: &ObjectPlacement, me: NodeId, fenced_at: Epoch) -> bool {
    placement.owner == me && fenced_at == placement.epoch.next()
}

/// What this node knows of its own past with the object; read only when its copy holds
/// writes of the current epoch that this process cannot vouch for.
pub(super) struct OwnPast {
    /// The last epoch in which this node started serving the object as owner.
    pub served: Epoch,
    /// The disk has room for a state transfer.
    pub space: bool,
}

pub(super) fn resume<E>(
    meta: &ReplicaMeta,
    epoch: Epoch,
    settled: bool,
    past: impl FnOnce() -> Result<OwnPast, E>,
) -> Result<Resume, E> {
    if meta.epoch > epoch {
        return Ok(Resume::Deposed { epoch: meta.epoch });
    }
    if meta.write_epoch != epoch {
        // The first owner of a new object, holding nothing. Only the owner of epoch 1
        // writes in it, and it marks itself (durably) before it serves: if it never
        // did, no copy holds anything, and an empty copy takes the first write as it
        // is. Skipping the install saves a creation a replication round.
        if epoch == Epoch::FIRST && meta.version == 0 && past()?.served < epoch {
            return Ok(Resume::ColdStart { mark_owner: true });
        }
        return Ok(Resume::Install);
    }
    if settled {
        return Ok(Resume::ColdStart { mark_owner: false });
    }
    let past = past()?;
    Ok(if past.served < epoch {
        // This node never served the epoch: nothing in it came from here but the state
        // installed on every copy alike.
        Resume::ColdStart { mark_owner: true }
    } else if !past.space {
        Resume::ReadsOnly
    } else {
        Resume::NextEpoch
    })
}

impl Actor {
    pub(super) async fn activate(&mut self) -> Result<(), ObjectError> {
        match self.try_activate().await {
            Err(ObjectError::Superseded { epoch, .. }) if self.retake(epoch).await? => {
                self.try_activate().await
            }
            other => other,
        }
    }

    /// After a replica refused this owner at `fenced_at`: reclaims an abandoned
    /// hand-over and activates again. Returns whether the object can serve on.
    pub(super) async fn recover(&mut self, fenced_at: Epoch) -> bool {
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
    async fn retake(&self, fenced_at: Epoch) -> Result<bool, ObjectError> {
        let config = &self.ctx.config;
        let deadline = Instant::now() + config.lease() * 2 + config.write_timeout();
        while Instant::now() < deadline {
            let known = self.ctx.placements.known(&self.key).await;
            if known.is_none_or(|p| p.epoch >= fenced_at) {
                // The hand-over committed (or the object is gone): nothing to reclaim.
                return Ok(false);
            }
            tokio::time::sleep(HANDOVER_POLL).await;
        }
        let Some(placement) = self.ctx.placements.latest(&self.key).await? else {
            return Ok(false);
        };
        if !retake_due(&placement, self.ctx.placements.me(), fenced_at) {
            return Ok(false);
        }
        let retaken = self.next_epoch(&placement).await?.is_some();
        if retaken {
            tracing::info!(object = %self.key, epoch = %fenced_at, "owner reclaimed the object after an abandoned hand-over");
        }
        Ok(retaken)
    }

    /// Moves the object to the epoch after `placement`'s, with the same owner (this
    /// node) and replicas. Returns the new placement, or None if another reassignment
    /// came first.
    async fn next_epoch(
        &self,
        placement: &ObjectPlacement,
    ) -> Result<Option<ObjectPlacement>, ObjectError> {
        let reassigned = self
            .ctx
            .placements
            .reassign(&self.key, placement.epoch, placement.replicas.clone(), None)
            .await?;
        Ok(match reassigned {
            Reassigned::Placed(next)
                if next.owner == self.ctx.placements.me()
                    && next.epoch == placement.epoch.next() =>
            {
                Some(next)
            }
            _ => None,
        })
    }

    pub(super) async fn try_activate(&mut self) -> Result<(), ObjectError> {
        let mut placement = self.ctx.placements.owned_here(&self.key).await?;
        let copies = &self.ctx.copies;
        let (meta, state) = copies.load(&self.key)?;
        let settled = self.ctx.settled.is_settled(&self.key, placement.epoch);
        let past = || {
            Ok::<_, ObjectError>(OwnPast {
                served: copies.owner_marker(&self.key)?,
                space: copies.check_space().is_ok(),
            })
        };
        self.reads_only = false;
        let resume = resume(&meta, placement.epoch, settled, past)?;
        let (install, own_lease_gone) = match resume {
            Resume::Deposed { epoch } => {
                return Err(ObjectError::Superseded {
                    key: self.key.to_string(),
                    epoch,
                });
            }
            Resume::ColdStart { mark_owner } => {
                if mark_owner {
                    copies.mark_owner(&self.key, placement.epoch).await?;
                }
                (false, false)
            }
            Resume::ReadsOnly => {
                self.reads_only = true;
                (false, false)
            }
            Resume::NextEpoch => {
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
                tracing::info!(object = %self.key, epoch = %placement.epoch, "owner restarted in a new epoch: its copy may have missed unacknowledged writes");
                // The lease of the epoch before was this node's own, held by nobody now.
                (true, true)
            }
            Resume::Install => (true, false),
        };
        self.state = state;
        if install {
            self.install(&placement, own_lease_gone).await?;
        } else {
            // The next write confirms the epoch with a majority; a read first renews
            // the lease.
            self.lease_until = None;
        }
        if resume.vouches() {
            self.ctx.settled.settle(&self.key, placement.epoch);
        }
        self.placement = Some(placement);
        Ok(())
    }

    /// Installs the actor's state on a majority at `placement`'s epoch (fencing any older
    /// owner), marking this node as the epoch's owner meanwhile, then waits out what may
    /// be left of an older owner's lease unless it was this node's own.
    async fn install(
        &mut self,
        placement: &ObjectPlacement,
        own_lease_gone: bool,
    ) -> Result<(), ObjectError> {
        let started = Instant::now();
        let install = CopyRequest::State(InstallRequest {
            key: self.key.clone(),
            epoch: placement.epoch,
            state: self.state.clone(),
        });
        let (round, marked) = tokio::join!(
            self.replicate(placement, install, RoundKind::Install),
            self.ctx.copies.mark_owner(&self.key, placement.epoch)
        );
        let round = round?;
        marked?;
        // An older owner may still answer reads until its lease runs out.
        let lease = self.ctx.config.lease();
        tokio::time::sleep(lease_wait(
            placement.epoch,
            own_lease_gone,
            round.quiet_ms,
            lease,
        ))
        .await;
        self.lease_until = Some(started + self.ctx.config.lease());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(epoch: u64, write_epoch: u64) -> ReplicaMeta {
        ReplicaMeta {
            epoch: Epoch(epoch),
            write_epoch: Epoch(write_epoch),
            version: 9,
        }
    }

    fn past(served: u64, space: bool) -> impl FnOnce() -> Result<OwnPast, ()> {
        move || {
            Ok(OwnPast {
                served: Epoch(served),
                space,
            })
        }
    }

    fn never_asked() -> Result<OwnPast, ()> {
        panic!("the owner's past is read only when its copy cannot be vouched for")
    }

    #[test]
    fn an_owner_resumes_by_what_its_copy_and_past_say() {
        let e = Epoch(5);
        assert_eq!(
            resume(&meta(6, 5), e, false, never_asked),
            Ok(Resume::Deposed { epoch: Epoch(6) })
        );
        // New to the epoch (a failover or move handed it over): install.
        assert_eq!(
            resume(&meta(5, 4), e, false, never_asked),
            Ok(Resume::Install)
        );
        // Back in its epoch, vouched for by this process: no install.
        assert_eq!(
            resume(&meta(5, 5), e, true, never_asked),
            Ok(Resume::ColdStart { mark_owner: false })
        );
        // Written in the epoch, but never served by this node (a hand-over's install).
        assert_eq!(
            resume(&meta(5, 5), e, false, past(4, true)),
            Ok(Resume::ColdStart { mark_owner: true })
        );
        // Served before and cannot vouch: the next epoch, or reads only on a full disk.
        assert_eq!(
            resume(&meta(5, 5), e, false, past(5, true)),
            Ok(Resume::NextEpoch)
        );
        assert_eq!(
            resume(&meta(5, 5), e, false, past(5, false)),
            Ok(Resume::ReadsOnly)
        );
        // A settled copy from an older write epoch is still new to this one.
        assert_eq!(
            resume(&meta(5, 4), e, true, never_asked),
            Ok(Resume::Install)
        );
    }

    /// Regression (review): an owner serving reads only was remembered as settled, so
    /// once space was back it reused the epoch although its copy may lack a write its
    /// replicas took; the next write got that write's number and "already applied".
    #[test]
    fn the_first_owner_of_a_new_object_installs_nothing() {
        let first = Epoch::FIRST;
        let empty = ReplicaMeta::default();
        assert_eq!(
            resume(&empty, first, false, past(0, true)),
            Ok(Resume::ColdStart { mark_owner: true })
        );
        // It served the epoch before (a restart that lost its own copy's writes): its
        // replicas may hold them.
        assert_eq!(
            resume(&empty, first, false, past(1, true)),
            Ok(Resume::Install)
        );
        // Later epochs were handed over from an owner that may have written.
        assert_eq!(
            resume(&empty, Epoch(2), false, never_asked),
            Ok(Resume::Install)
        );
        // A copy holding data is not new, whatever wrote it.
        assert_eq!(
            resume(&meta(1, 0), first, false, never_asked),
            Ok(Resume::Install)
        );
    }

    #[test]
    fn an_owner_serving_reads_only_never_vouches_for_its_copy() {
        assert!(!Resume::ReadsOnly.vouches());
        assert!(Resume::ColdStart { mark_owner: true }.vouches());
        assert!(Resume::Install.vouches() && Resume::NextEpoch.vouches());
        // Not settled, so once space is back the owner moves to the next epoch.
        assert_eq!(
            resume(&meta(5, 5), Epoch(5), false, past(5, true)),
            Ok(Resume::NextEpoch)
        );
    }

    #[test]
    fn a_new_owner_waits_out_only_what_is_left_of_an_older_lease() {
        let lease = Duration::from_millis(1000);
        assert_eq!(
            lease_wait(Epoch(4), false, 300, lease),
            Duration::from_millis(700)
        );
        assert_eq!(lease_wait(Epoch(4), false, u64::MAX, lease), Duration::ZERO);
        assert_eq!(lease_wait(Epoch::FIRST, false, 0, lease), Duration::ZERO);
        assert_eq!(lease_wait(Epoch(4), true, 0, lease), Duration::ZERO);
    }

    #[test]
    fn only_an_abandoned_hand_over_is_retaken() {
        let placement = crate::testing::placement(1, &[1, 2, 3]);
        assert!(retake_due(&placement, NodeId(1), Epoch(4)));
        assert!(
            !retake_due(&placement, NodeId(1), Epoch(5)),
            "fenced further on"
        );
        assert!(
            !retake_due(&placement, NodeId(1), Epoch(3)),
            "the hand-over committed"
        );
        assert!(
            !retake_due(&placement, NodeId(2), Epoch(4)),
            "not the owner"
        );
    }
}
