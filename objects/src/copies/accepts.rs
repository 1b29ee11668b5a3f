//! When each copy last accepted anything from an owner, per epoch: a new owner's state
//! transfer learns from it how long the copy has been quiet for older owners, and so how
//! much of an older owner's read lease may be left.

use std::collections::HashMap;

use larder_base::Epoch;
use larder_directory::ObjectKey;
use tokio::time::Instant;

/// Copies whose last acceptances are remembered; past it the memory is dropped and new
/// owners wait their full lease.
const ACCEPTS_TRACKED_MAX: usize = 1_000_000;

/// The last acceptance of the latest epoch a copy accepted, and of the one before (a
/// failover installs the new epoch before the new owner asks how long the copy has been
/// quiet for older owners). On tokio's clock, the one leases are measured on.
#[derive(Clone, Copy)]
struct Accepts {
    latest: (Epoch, Instant),
    before: Option<(Epoch, Instant)>,
}

#[derive(Default)]
pub(super) struct AcceptLog {
    accepts: std::sync::Mutex<HashMap<ObjectKey, Accepts>>,
}

impl AcceptLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Accepts>> {
        self.accepts
            .lock()
            .expect("accepts lock: no panics under it")
    }

    /// The copy of `key` accepted something from the owner of `epoch` at `now`.
    pub fn note(&self, key: &ObjectKey, epoch: Epoch, now: Instant) {
        let mut accepts = self.lock();
        if accepts.len() >= ACCEPTS_TRACKED_MAX {
            accepts.clear();
        }
        let next = match accepts.get(key) {
            Some(seen) if epoch > seen.latest.0 => Accepts {
                latest: (epoch, now),
                before: Some(seen.latest),
            },
            Some(seen) if epoch == seen.latest.0 => Accepts {
                latest: (epoch, now),
                before: seen.before,
            },
            // An epoch older than the latest is fenced off, never accepted.
            Some(seen) => *seen,
            None => Accepts {
                latest: (epoch, now),
                before: None,
            },
        };
        accepts.insert(key.clone(), next);
    }

    /// How long, at `now`, the copy of `key` has accepted nothing from an owner older
    /// than `epoch`. `never_held`: the copy holds nothing at all.
    pub fn quiet_before(
        &self,
        key: &ObjectKey,
        epoch: Epoch,
        never_held: bool,
        now: Instant,
    ) -> u64 {
        let since = |at: Instant| now.saturating_duration_since(at).as_millis() as u64;
        match self.lock().get(key) {
            Some(seen) if seen.latest.0 < epoch => since(seen.latest.1),
            Some(seen) => match seen.before {
                Some((older, at)) if older < epoch => since(at),
                _ => 0,
            },
            // A copy that never held anything accepted nothing from anyone.
            None if never_held => u64::MAX,
            // Forgotten (a restart, or the tracking bound): assume just now.
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn quiet_time_counts_from_the_last_acceptance_of_an_older_epoch() {
        let log = AcceptLog::default();
        let key = ObjectKey {
            namespace: "rooms".into(),
            id: "r".into(),
        };
        let t0 = Instant::now();
        assert_eq!(log.quiet_before(&key, Epoch(2), true, t0), u64::MAX);
        assert_eq!(log.quiet_before(&key, Epoch(2), false, t0), 0);
        log.note(&key, Epoch(1), t0);
        let later = t0 + Duration::from_millis(300);
        assert_eq!(log.quiet_before(&key, Epoch(2), false, later), 300);
        // The failover's install at epoch 2 comes first; the new owner's question still
        // counts from the old owner's last acceptance.
        log.note(&key, Epoch(2), t0 + Duration::from_millis(100));
        assert_eq!(log.quiet_before(&key, Epoch(2), false, later), 300);
        // Nothing older than epoch 1 was ever accepted.
        assert_eq!(log.quiet_before(&key, Epoch(1), false, later), 0);
        // A fenced-off epoch does not move the record.
        log.note(&key, Epoch(1), later);
        assert_eq!(log.quiet_before(&key, Epoch(2), false, later), 300);
    }
}
