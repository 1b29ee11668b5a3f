use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Version of a KV write: a hybrid logical clock stamp, ties broken by the origin node.
/// Field order is the comparison order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    pub physical_ms: u64,
    pub logical: u32,
    pub origin: NodeId,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}@{}", self.physical_ms, self.logical, self.origin)
    }
}

/// A hybrid logical clock (Kulkarni et al.): stamps follow wall time when it advances and
/// stay strictly increasing when it does not, and never fall behind a stamp this node has
/// observed.
pub struct Hlc {
    node: NodeId,
    last: Mutex<(u64, u32)>,
    /// Remote stamps further ahead of the local wall clock than this are not adopted, so
    /// one node with a clock far in the future cannot drag every clock along.
    forward_drift_max_ms: u64,
}

impl Hlc {
    pub fn new(node: NodeId, forward_drift_max_ms: u64) -> Hlc {
        Hlc {
            node,
            last: Mutex::new((0, 0)),
            forward_drift_max_ms,
        }
    }

    /// A new stamp, greater than every stamp issued or observed before.
    pub fn now(&self, wall_ms: u64) -> Version {
        let mut last = self
            .last
            .lock()
            .expect("HLC lock is never poisoned: no panics under it");
        let next = if wall_ms > last.0 {
            (wall_ms, 0)
        } else if last.1 < u32::MAX {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, 0)
        };
        // A stamp at or below one issued or observed before would let an older write
        // win over this one, silently, on every replica.
        assert!(next > *last, "a hybrid logical clock never goes back");
        *last = next;
        Version {
            physical_ms: next.0,
            logical: next.1,
            origin: self.node,
        }
    }

    /// The greatest stamp issued or observed so far (this node as origin): what must
    /// survive a restart, so that no later stamp falls behind one already seen.
    pub fn last(&self) -> Version {
        let last = self
            .last
            .lock()
            .expect("HLC lock is never poisoned: no panics under it");
        Version {
            physical_ms: last.0,
            logical: last.1,
            origin: self.node,
        }
    }

    /// Takes a stamp seen from elsewhere into account.
    pub fn observe(&self, seen: Version, wall_ms: u64) {
        if seen.physical_ms > wall_ms.saturating_add(self.forward_drift_max_ms) {
            return;
        }
        let mut last = self
            .last
            .lock()
            .expect("HLC lock is never poisoned: no panics under it");
        if (seen.physical_ms, seen.logical) > *last {
            *last = (seen.physical_ms, seen.logical);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_increase_even_when_the_wall_clock_stalls_or_goes_back() {
        let hlc = Hlc::new(NodeId(1), 60_000);
        let a = hlc.now(1000);
        let b = hlc.now(1000);
        let c = hlc.now(900);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(c.physical_ms, 1000);
        let d = hlc.now(2000);
        assert_eq!((d.physical_ms, d.logical), (2000, 0));
    }

    #[test]
    fn observed_stamps_are_exceeded_unless_too_far_ahead() {
        let hlc = Hlc::new(NodeId(1), 1000);
        hlc.observe(
            Version {
                physical_ms: 5000,
                logical: 3,
                origin: NodeId(2),
            },
            4500,
        );
        let next = hlc.now(4600);
        assert_eq!((next.physical_ms, next.logical), (5000, 4));
        hlc.observe(
            Version {
                physical_ms: 99_000,
                logical: 0,
                origin: NodeId(2),
            },
            4600,
        );
        assert!(hlc.now(4700).physical_ms < 99_000);
    }

    #[test]
    fn the_last_stamp_includes_observed_ones_and_restores_a_clock() {
        let hlc = Hlc::new(NodeId(1), 60_000);
        hlc.now(1000);
        hlc.observe(
            Version {
                physical_ms: 3000,
                logical: 7,
                origin: NodeId(2),
            },
            1000,
        );
        let last = hlc.last();
        assert_eq!(
            (last.physical_ms, last.logical, last.origin),
            (3000, 7, NodeId(1))
        );
        // A restarted clock, its wall time still behind, resumes after that stamp.
        let restarted = Hlc::new(NodeId(1), 60_000);
        restarted.observe(last, last.physical_ms);
        let next = restarted.now(1200);
        assert_eq!((next.physical_ms, next.logical), (3000, 8));
    }
}
