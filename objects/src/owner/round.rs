//! One replication round at the owner, as a pure tally of the copies' answers.
//!
//! The owner offers a round (writes, a ping, or a state transfer) to its own copy and to
//! the other replicas at once. The round is acknowledged once a majority of the replica
//! set holds it, **the owner's own copy always among them** — so the owner's copy holds
//! every acknowledged write and can serve reads from memory. Any copy that answers with
//! a newer epoch deposes the owner: the round fails whatever else answered. Replicas
//! that missed earlier writes answer with a gap; when the round cannot reach a majority
//! without them, they get the state after the round installed (which holds the round)
//! and count once it is in; otherwise they are repaired in the background.
//!
//! The async side (`Actor::replicate`) sends, feeds answers in until [`is_decided`],
//! asks for [`catch_up`], and acts on [`finish`]; every decision is here.
//!
//! [`is_decided`]: ReplicationRound::is_decided
//! [`catch_up`]: ReplicationRound::catch_up
//! [`finish`]: ReplicationRound::finish

use larder_base::{Epoch, NodeId};
use larder_directory::ObjectPlacement;

use crate::ApplyOutcome;

/// What a round offers, which decides whether lagging replicas may be caught up in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoundKind {
    /// Writes (or a ping): a replica that missed earlier writes can take the state after
    /// the round instead, which holds it.
    Writes,
    /// A state transfer: it is the catch-up already.
    Install,
}

#[derive(Debug)]
pub(crate) struct ReplicationRound {
    kind: RoundKind,
    /// Acknowledgements needed from the replicas besides the owner's own copy.
    needed: usize,
    replicas: usize,
    acks: usize,
    own_copy_holds: bool,
    lagging: Vec<NodeId>,
    failures: Vec<String>,
    /// The least time any copy of the majority had been quiet for an older owner.
    quiet_ms: u64,
    deposed: Option<Epoch>,
}

/// A round that reached a majority, and what it leaves to do or know.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RoundDone {
    /// Replicas that answered with a gap, to repair in the background.
    pub lagging: Vec<NodeId>,
    /// The least time any copy of the majority had been quiet for an older owner
    /// (`u64::MAX`: none of them ever held the object).
    pub quiet_ms: u64,
}

/// Why a round failed. The outcome of its writes is then unknown: some copies may hold
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoundFailure {
    /// A copy has seen owner epoch `epoch`: this node no longer owns the object.
    Deposed { epoch: Epoch },
    /// The owner's own copy is at `have`, out of step with the owner's memory.
    OwnCopyBehind { have: u64 },
    /// Fewer than a majority acknowledged in time.
    NoMajority {
        /// Copies that hold the round, the owner's included.
        held: usize,
        replicas: usize,
        quorum: usize,
        failures: Vec<String>,
    },
}

/// Whether the owner can still vouch for its copy after it answered an offer: a copy
/// that did not take it may lack what the replicas took (the owner must then not reuse
/// its epoch after a restart).
pub(crate) fn own_copy_vouches<E>(answer: &Result<ApplyOutcome, E>) -> bool {
    answer.as_ref().is_ok_and(|outcome| outcome.holds())
}

impl ReplicationRound {
    pub fn new(placement: &ObjectPlacement, kind: RoundKind) -> ReplicationRound {
        ReplicationRound {
            kind,
            needed: placement.quorum().saturating_sub(1),
            replicas: placement.replicas.len(),
            acks: 0,
            own_copy_holds: false,
            lagging: Vec::new(),
            failures: Vec::new(),
            quiet_ms: u64::MAX,
            deposed: None,
        }
    }

    /// The owner's own copy answered. Err: the round cannot succeed (the copy refused).
    pub fn own_copy(&mut self, outcome: ApplyOutcome) -> Result<(), RoundFailure> {
        match outcome {
            ApplyOutcome::Fenced { epoch } => Err(RoundFailure::Deposed { epoch }),
            ApplyOutcome::Gap { have } => Err(RoundFailure::OwnCopyBehind { have }),
            held => {
                debug_assert!(held.holds());
                self.own_copy_holds = true;
                self.quiet_ms = self.quiet_ms.min(held.quiet_ms());
                Ok(())
            }
        }
    }

    /// A replica answered the round (`Err`: it could not be reached, or its copy failed).
    pub fn replica<E: std::fmt::Display>(
        &mut self,
        replica: NodeId,
        answer: Result<ApplyOutcome, E>,
    ) {
        match answer {
            Ok(ApplyOutcome::Fenced { epoch }) => self.depose(epoch),
            Ok(ApplyOutcome::Gap { .. }) => self.lagging.push(replica),
            Ok(held) => {
                self.acks += 1;
                self.quiet_ms = self.quiet_ms.min(held.quiet_ms());
            }
            Err(err) => self.failures.push(format!("{replica}: {err}")),
        }
    }

    /// Whether more answers can change the outcome: not once deposed, nor once a majority
    /// holds the round.
    pub fn is_decided(&self) -> bool {
        self.deposed.is_some() || self.acks >= self.needed
    }

    /// The lagging replicas whose catch-up (a state transfer of the state after the
    /// round) the round needs to reach a majority; empty when it needs none. They leave
    /// the lagging list: [`Self::caught_up`] reports each back.
    pub fn catch_up(&mut self) -> Vec<NodeId> {
        if self.is_decided() || self.kind == RoundKind::Install {
            return Vec::new();
        }
        std::mem::take(&mut self.lagging)
    }

    /// A lagging replica answered the state transfer of its catch-up.
    pub fn caught_up<E: std::fmt::Display>(
        &mut self,
        replica: NodeId,
        answer: Result<ApplyOutcome, E>,
    ) {
        if matches!(&answer, Ok(outcome) if outcome.holds()) {
            // A copy that just took a state transfer vouches for no quiet time.
            self.quiet_ms = 0;
        }
        self.replica(replica, answer);
    }

    pub fn finish(self) -> Result<RoundDone, RoundFailure> {
        if let Some(epoch) = self.deposed {
            return Err(RoundFailure::Deposed { epoch });
        }
        let held = self.acks + usize::from(self.own_copy_holds);
        if !self.own_copy_holds || self.acks < self.needed {
            return Err(RoundFailure::NoMajority {
                held,
                replicas: self.replicas,
                quorum: self.needed + 1,
                failures: self.failures,
            });
        }
        assert!(
            held > self.replicas / 2,
            "a round is acknowledged only by a majority ({held} of {})",
            self.replicas
        );
        Ok(RoundDone {
            lagging: self.lagging,
            quiet_ms: self.quiet_ms,
        })
    }

    fn depose(&mut self, epoch: Epoch) {
        self.deposed = Some(self.deposed.map_or(epoch, |seen| seen.max(epoch)));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn placement(replicas: u64) -> ObjectPlacement {
        let ids: Vec<u64> = (1..=replicas).collect();
        crate::testing::placement(1, &ids)
    }

    impl ReplicationRound {
        fn new_writes(placement: &ObjectPlacement) -> ReplicationRound {
            ReplicationRound::new(placement, RoundKind::Writes)
        }
    }

    const APPLIED: ApplyOutcome = ApplyOutcome::Applied { version: 7 };
    type Answer = Result<ApplyOutcome, &'static str>;

    #[test]
    fn a_majority_with_the_owners_copy_acknowledges() {
        let mut round = ReplicationRound::new_writes(&placement(3));
        round.own_copy(APPLIED).expect("own copy");
        assert!(!round.is_decided());
        round.replica(NodeId(2), Answer::Err("unreachable"));
        assert!(!round.is_decided());
        round.replica(NodeId(3), Answer::Ok(APPLIED));
        assert!(round.is_decided());
        assert_eq!(
            round.finish(),
            Ok(RoundDone {
                lagging: vec![],
                quiet_ms: 0
            })
        );
    }

    #[test]
    fn without_the_owners_copy_there_is_no_acknowledgement() {
        let mut round = ReplicationRound::new_writes(&placement(3));
        assert_eq!(
            round.own_copy(ApplyOutcome::Gap { have: 4 }),
            Err(RoundFailure::OwnCopyBehind { have: 4 })
        );
        let mut round = ReplicationRound::new_writes(&placement(3));
        round.replica(NodeId(2), Answer::Ok(APPLIED));
        round.replica(NodeId(3), Answer::Ok(APPLIED));
        assert!(matches!(
            round.finish(),
            Err(RoundFailure::NoMajority { held: 2, .. })
        ));
    }

    #[test]
    fn a_newer_epoch_anywhere_deposes_the_owner() {
        let mut round = ReplicationRound::new_writes(&placement(5));
        round.own_copy(APPLIED).expect("own copy");
        round.replica(NodeId(2), Answer::Ok(APPLIED));
        round.replica(
            NodeId(3),
            Answer::Ok(ApplyOutcome::Fenced { epoch: Epoch(4) }),
        );
        assert!(round.is_decided());
        assert_eq!(
            round.finish(),
            Err(RoundFailure::Deposed { epoch: Epoch(4) })
        );
    }

    #[test]
    fn lagging_replicas_are_caught_up_only_when_the_majority_needs_them() {
        // Needed: two lagging copies of three others; one takes the transfer.
        let mut round = ReplicationRound::new_writes(&placement(4));
        round
            .own_copy(ApplyOutcome::Installed {
                version: 1,
                quiet_ms: 900,
            })
            .expect("own copy");
        let quiet = ApplyOutcome::Installed {
            version: 7,
            quiet_ms: 800,
        };
        round.replica(NodeId(2), Answer::Ok(quiet));
        round.replica(NodeId(3), Answer::Ok(ApplyOutcome::Gap { have: 1 }));
        round.replica(NodeId(4), Answer::Ok(ApplyOutcome::Gap { have: 2 }));
        assert_eq!(round.catch_up(), vec![NodeId(3), NodeId(4)]);
        round.caught_up(
            NodeId(3),
            Answer::Ok(ApplyOutcome::Installed {
                version: 7,
                quiet_ms: 50,
            }),
        );
        round.caught_up(NodeId(4), Answer::Ok(ApplyOutcome::Gap { have: 2 }));
        assert_eq!(
            round.finish(),
            Ok(RoundDone {
                lagging: vec![NodeId(4)],
                quiet_ms: 0
            })
        );
        // A majority without them: no catch-up now, a repair later.
        let mut round = ReplicationRound::new_writes(&placement(3));
        round.own_copy(APPLIED).expect("own copy");
        round.replica(NodeId(2), Answer::Ok(ApplyOutcome::Gap { have: 1 }));
        round.replica(NodeId(3), Answer::Ok(APPLIED));
        assert!(round.catch_up().is_empty());
        assert_eq!(round.finish().expect("majority").lagging, vec![NodeId(2)]);
    }

    #[test]
    fn an_install_round_catches_nobody_up_and_a_failed_own_copy_is_not_vouched_for() {
        let mut round = ReplicationRound::new(&placement(3), RoundKind::Install);
        round.own_copy(APPLIED).expect("own copy");
        round.replica(NodeId(2), Answer::Ok(ApplyOutcome::Gap { have: 1 }));
        round.replica(NodeId(3), Answer::Err("unreachable"));
        assert!(round.catch_up().is_empty());
        assert!(matches!(
            round.finish(),
            Err(RoundFailure::NoMajority { held: 1, .. })
        ));
        assert!(own_copy_vouches(&Answer::Ok(APPLIED)));
        assert!(!own_copy_vouches(&Answer::Ok(ApplyOutcome::Gap {
            have: 1
        })));
        assert!(!own_copy_vouches(&Answer::Err("disk full")));
    }

    #[test]
    fn a_single_copy_object_needs_only_its_owner() {
        let mut round = ReplicationRound::new_writes(&placement(1));
        assert!(round.is_decided());
        round.own_copy(APPLIED).expect("own copy");
        assert!(round.finish().is_ok());
    }

    fn answers() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0..4u8, 0..6)
    }

    fn answer(kind: u8) -> Answer {
        match kind {
            0 => Ok(APPLIED),
            1 => Ok(ApplyOutcome::Gap { have: 1 }),
            2 => Ok(ApplyOutcome::Fenced { epoch: Epoch(9) }),
            _ => Err("unreachable"),
        }
    }

    proptest! {
        /// Whatever the replicas answer and however catch-ups go, a round succeeds
        /// exactly when no copy was fenced and the owner's copy plus the replicas that
        /// hold the round make a majority.
        #[test]
        fn a_round_never_acknowledges_below_a_majority(
            size in 1..6u64,
            own in 0..4u8,
            first in answers(),
            catch_ups in answers(),
        ) {
            let placement = placement(size);
            let mut round = ReplicationRound::new_writes(&placement);
            let own_holds = own != 1;
            let own_answer = if own_holds { APPLIED } else { ApplyOutcome::Gap { have: 0 } };
            if round.own_copy(own_answer).is_err() {
                prop_assert!(!own_holds);
                return Ok(());
            }
            let (mut holding, mut fenced) = (1usize, false);
            for (replica, kind) in (2..=size).map(NodeId).zip(first) {
                if round.is_decided() {
                    break;
                }
                holding += usize::from(kind == 0);
                fenced |= kind == 2;
                round.replica(replica, answer(kind));
            }
            for (replica, kind) in round.catch_up().into_iter().zip(catch_ups) {
                holding += usize::from(kind == 0);
                fenced |= kind == 2;
                round.caught_up(replica, answer(kind));
            }
            let majority = holding >= placement.quorum();
            match round.finish() {
                Ok(_) => prop_assert!(majority && !fenced),
                Err(RoundFailure::Deposed { .. }) => prop_assert!(fenced),
                Err(_) => prop_assert!(!majority && !fenced),
            }
        }
    }
}
