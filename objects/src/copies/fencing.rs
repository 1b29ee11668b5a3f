//! The rules a copy applies to what an owner offers it, as pure functions of the copy's
//! [`ReplicaMeta`] — the store looks up the meta, asks, and acts on the answer:
//!
//! - **fencing**: anything tagged with an epoch older than the highest this copy has seen
//!   is refused, so a deposed owner can never get a write accepted;
//! - **order**: a write applies only as version = current + 1; an older one is already
//!   here and is acknowledged again; a newer one reports the gap;
//! - **state transfer first**: a new owner's first write is refused (as a gap) until its
//!   state is installed here, since this copy cannot tell whether its data is the new
//!   owner's;
//! - **installs never go backwards**: a state older than writes of its own epoch
//!   already here is refused (it comes from a hand-over that lost the epoch, or from a
//!   repair overtaken by later writes).

use larder_base::Epoch;
use serde::{Deserialize, Serialize};

/// What a copy knows about its object besides the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMeta {
    /// Highest owner epoch seen: older ones are fenced off.
    pub epoch: Epoch,
    /// Epoch of the owner that produced the current data.
    pub write_epoch: Epoch,
    /// Object version of the current data.
    pub version: u64,
}

/// Result of offering a write or a state to a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Applied {
        version: u64,
    },
    /// Already held (a retry): acknowledged again.
    AlreadyApplied {
        version: u64,
    },
    /// Writes between this copy's version and the offered one are missing.
    Gap {
        have: u64,
    },
    /// The sender's epoch is older than `epoch`: it is no longer the owner.
    Fenced {
        epoch: Epoch,
    },
    /// A state transfer took. `quiet_ms`: how long since this copy last accepted
    /// anything from an owner of an older epoch (0 when unknown, e.g. after a restart):
    /// an older owner's read lease began no later than that, so a new owner need only
    /// wait out what is left of it.
    Installed {
        version: u64,
        quiet_ms: u64,
    },
}

impl ApplyOutcome {
    /// The copy now holds what was offered (applied, held already, or installed).
    pub fn holds(&self) -> bool {
        matches!(
            self,
            ApplyOutcome::Applied { .. }
                | ApplyOutcome::AlreadyApplied { .. }
                | ApplyOutcome::Installed { .. }
        )
    }

    /// A copy's quiet time for older owners as this answer tells it (0 unless a state
    /// transfer reports it).
    pub fn quiet_ms(&self) -> u64 {
        match self {
            ApplyOutcome::Installed { quiet_ms, .. } => *quiet_ms,
            _ => 0,
        }
    }
}

/// What a copy does with a replication round: writes numbered `version`,
/// `version + 1`, … of the owner of `epoch` (no writes: a ping at `version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDecision {
    Fenced {
        epoch: Epoch,
    },
    /// Every write of the round is here (a retry, or a ping at this copy's version).
    AlreadyApplied {
        version: u64,
    },
    /// The copy cannot take the round: behind, out of order, or a new owner's first
    /// write before its state transfer. `raise_to`: the copy has now seen this newer
    /// epoch and must record it (durably) before answering, fencing older owners.
    Gap {
        have: u64,
        raise_to: Option<Epoch>,
    },
    /// Apply the round's writes from index `skip` on (a retried round may be partly
    /// here), numbered `first..=last`; the copy's meta becomes (epoch, epoch, last).
    Apply {
        skip: usize,
        first: u64,
        last: u64,
    },
}

pub fn offer_write(meta: &ReplicaMeta, epoch: Epoch, version: u64, writes: usize) -> WriteDecision {
    if epoch < meta.epoch {
        return WriteDecision::Fenced { epoch: meta.epoch };
    }
    let last = version + (writes as u64).saturating_sub(1);
    let same_owner = epoch == meta.write_epoch;
    if same_owner && last <= meta.version {
        return WriteDecision::AlreadyApplied {
            version: meta.version,
        };
    }
    let held = if same_owner && version <= meta.version {
        meta.version + 1 - version
    } else {
        0
    };
    let first = version + held;
    let new_owner_before_install = !same_owner && meta.version != 0;
    if writes == 0 || first != meta.version + 1 || new_owner_before_install {
        return WriteDecision::Gap {
            have: meta.version,
            raise_to: (epoch > meta.epoch).then_some(epoch),
        };
    }
    WriteDecision::Apply {
        skip: held as usize,
        first,
        last,
    }
}

/// The meta of a copy after it applied writes through `version` of the owner of `epoch`.
pub fn after_writes(meta: &ReplicaMeta, epoch: Epoch, version: u64) -> ReplicaMeta {
    let next = ReplicaMeta {
        epoch,
        write_epoch: epoch,
        version,
    };
    assert!(
        next.epoch >= meta.epoch,
        "a copy's fencing epoch never goes backwards ({} -> {})",
        meta.epoch,
        next.epoch
    );
    assert!(
        meta.write_epoch != epoch || version > meta.version,
        "versions strictly increase within a write epoch ({} -> {version} at epoch {epoch})",
        meta.version
    );
    next
}

/// Whether a copy takes the state of the owner of `epoch` at `state_version`; `Err`
/// carries the refusal.
pub fn offer_state(
    meta: &ReplicaMeta,
    epoch: Epoch,
    state_version: u64,
) -> Result<ReplicaMeta, ApplyOutcome> {
    let behind_its_own_epoch = epoch == meta.write_epoch && state_version < meta.version;
    if epoch < meta.epoch || behind_its_own_epoch {
        return Err(ApplyOutcome::Fenced { epoch: meta.epoch });
    }
    Ok(ReplicaMeta {
        epoch,
        write_epoch: epoch,
        version: state_version,
    })
}

/// The meta after a copy learns of the owner of `epoch` (a failover or move fencing it),
/// or `None` when it has seen that epoch already.
pub fn fence(meta: &ReplicaMeta, epoch: Epoch) -> Option<ReplicaMeta> {
    (epoch > meta.epoch).then_some(ReplicaMeta { epoch, ..*meta })
}

/// Whether a copy may be dropped by a hand-over that committed `epoch`: not when it has
/// seen a newer one (a later hand-over made it a replica again).
pub fn may_drop(meta: &ReplicaMeta, epoch: Epoch) -> bool {
    meta.epoch <= epoch
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn meta(epoch: u64, write_epoch: u64, version: u64) -> ReplicaMeta {
        ReplicaMeta {
            epoch: Epoch(epoch),
            write_epoch: Epoch(write_epoch),
            version,
        }
    }

    #[test]
    fn writes_apply_in_order_retries_are_acknowledged_and_gaps_reported() {
        let m = meta(1, 1, 4);
        assert_eq!(
            offer_write(&m, Epoch(1), 5, 2),
            WriteDecision::Apply {
                skip: 0,
                first: 5,
                last: 6
            }
        );
        // A retried round of 3..=6: 3 and 4 are here.
        assert_eq!(
            offer_write(&m, Epoch(1), 3, 4),
            WriteDecision::Apply {
                skip: 2,
                first: 5,
                last: 6
            }
        );
        assert_eq!(
            offer_write(&m, Epoch(1), 3, 2),
            WriteDecision::AlreadyApplied { version: 4 }
        );
        assert_eq!(
            offer_write(&m, Epoch(1), 7, 1),
            WriteDecision::Gap {
                have: 4,
                raise_to: None
            }
        );
        // Pings: at the held version acknowledged, ahead of it a gap.
        assert_eq!(
            offer_write(&m, Epoch(1), 4, 0),
            WriteDecision::AlreadyApplied { version: 4 }
        );
        assert!(matches!(
            offer_write(&m, Epoch(1), 5, 0),
            WriteDecision::Gap { have: 4, .. }
        ));
    }

    #[test]
    fn older_owners_are_fenced_and_new_owners_install_first() {
        let m = meta(3, 2, 4);
        assert_eq!(
            offer_write(&m, Epoch(2), 5, 1),
            WriteDecision::Fenced { epoch: Epoch(3) }
        );
        // The owner of epoch 4 writes before installing: a gap, and the copy now fences
        // epoch 3.
        assert_eq!(
            offer_write(&m, Epoch(4), 5, 1),
            WriteDecision::Gap {
                have: 4,
                raise_to: Some(Epoch(4))
            }
        );
        // The new owner's first write at the copy's version + 1 is not "already applied"
        // however its number compares: the copy cannot tell its data is the new owner's.
        assert_eq!(
            offer_write(&meta(3, 2, 4), Epoch(3), 3, 1),
            WriteDecision::Gap {
                have: 4,
                raise_to: None
            }
        );
        assert!(matches!(
            offer_write(&meta(3, 2, 4), Epoch(3), 5, 1),
            WriteDecision::Gap { have: 4, .. }
        ));
        // An empty copy takes a new owner's first write without a transfer.
        assert!(matches!(
            offer_write(&ReplicaMeta::default(), Epoch(2), 1, 1),
            WriteDecision::Apply { first: 1, .. }
        ));
        assert_eq!(
            offer_state(&m, Epoch(2), 9),
            Err(ApplyOutcome::Fenced { epoch: Epoch(3) })
        );
        assert_eq!(offer_state(&m, Epoch(3), 1), Ok(meta(3, 3, 1)));
    }

    #[test]
    fn an_install_behind_writes_of_its_own_epoch_is_refused() {
        let m = meta(2, 2, 5);
        assert_eq!(
            offer_state(&m, Epoch(2), 4),
            Err(ApplyOutcome::Fenced { epoch: Epoch(2) })
        );
        assert_eq!(offer_state(&m, Epoch(2), 5), Ok(m));
        assert_eq!(offer_state(&m, Epoch(3), 1), Ok(meta(3, 3, 1)));
    }

    #[test]
    fn fencing_only_raises_and_drops_spare_newer_copies() {
        let m = meta(2, 1, 5);
        assert_eq!(fence(&m, Epoch(3)), Some(meta(3, 1, 5)));
        assert_eq!(fence(&m, Epoch(2)), None);
        assert_eq!(fence(&m, Epoch(1)), None);
        assert!(may_drop(&m, Epoch(2)));
        assert!(!may_drop(&m, Epoch(1)));
    }

    #[derive(Debug, Clone)]
    enum Offer {
        Write {
            epoch: u64,
            version: u64,
            writes: usize,
        },
        State {
            epoch: u64,
            version: u64,
        },
        Fence {
            epoch: u64,
        },
    }

    fn offers() -> impl Strategy<Value = Vec<Offer>> {
        let offer = prop_oneof![
            (1..5u64, 0..12u64, 0..4usize).prop_map(|(epoch, version, writes)| Offer::Write {
                epoch,
                version,
                writes
            }),
            (1..5u64, 0..12u64).prop_map(|(epoch, version)| Offer::State { epoch, version }),
            (1..5u64).prop_map(|epoch| Offer::Fence { epoch }),
        ];
        proptest::collection::vec(offer, 0..40)
    }

    proptest! {
        /// Whatever owners offer, in whatever order: the fencing epoch never goes
        /// backwards, nothing older than it is taken, a write epoch's versions only grow,
        /// and an acknowledgement without applying means the copy holds the round.
        #[test]
        fn a_copy_never_goes_backwards(offers in offers()) {
            let mut m = ReplicaMeta::default();
            for offer in offers {
                let before = m;
                match offer {
                    Offer::Write { epoch, version, writes } => {
                        match offer_write(&m, Epoch(epoch), version, writes) {
                            WriteDecision::Fenced { epoch: at } => {
                                prop_assert!(Epoch(epoch) < m.epoch);
                                prop_assert_eq!(at, m.epoch);
                            }
                            WriteDecision::AlreadyApplied { version: held } => {
                                prop_assert_eq!(Epoch(epoch), m.write_epoch);
                                prop_assert!(version + (writes as u64).saturating_sub(1) <= held);
                            }
                            WriteDecision::Gap { raise_to, .. } => {
                                if let Some(to) = raise_to {
                                    m = fence(&m, to).expect("a raise is newer");
                                }
                            }
                            WriteDecision::Apply { skip, first, last } => {
                                prop_assert!(Epoch(epoch) >= m.epoch);
                                prop_assert_eq!(first, m.version + 1);
                                prop_assert_eq!(last - first + 1 + skip as u64, writes as u64);
                                m = after_writes(&m, Epoch(epoch), last);
                            }
                        }
                    }
                    Offer::State { epoch, version } => {
                        if let Ok(next) = offer_state(&m, Epoch(epoch), version) {
                            m = next;
                        }
                    }
                    Offer::Fence { epoch } => {
                        if let Some(next) = fence(&m, Epoch(epoch)) {
                            m = next;
                        }
                    }
                }
                prop_assert!(m.epoch >= before.epoch);
                prop_assert!(m.write_epoch >= before.write_epoch);
                if m.write_epoch == before.write_epoch {
                    prop_assert!(m.version >= before.version);
                }
            }
        }
    }
}
