//! Background collection: expired entries (they already read as absent everywhere),
//! tombstones older than the grace period, and the data of deleted namespaces. Each
//! removal goes through the writer, which removes an entry only if it is still the
//! version that was found expired, so a newer write is never lost to collection.
//!
//! An expired entry is first buried — replaced by a tombstone of its version, its value
//! dropped — and removed only once older than the grace period, like a delete's
//! tombstone: removed at once, it would let an older write of the key that arrives late
//! (after a partition) come back to life on that replica alone.

use std::time::Duration;

use tokio::sync::watch;

use crate::group_stage::Work;
use crate::writer::Job;
use crate::{Entry, Kv};

/// What collection does with a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Keep,
    /// Expired: replace it by a tombstone of its version.
    Bury,
    Remove,
}

/// What collection does at `now_ms` with `entry`. A dead entry (a tombstone, or expired)
/// goes once its write is older than `grace_ms`: an older write of the key was written
/// before it, so it has reached every replica by then unless a partition lasted longer
/// than the grace. Until then an expired entry stays as a tombstone, which keeps such a
/// late write out.
pub fn collection(entry: &Entry, now_ms: u64, grace_ms: u64) -> Collection {
    let expired = entry.expires_at_ms.is_some_and(|at| at <= now_ms);
    let old = entry.version.physical_ms.saturating_add(grace_ms) < now_ms;
    match (entry.tombstone || expired, old) {
        (false, _) => Collection::Keep,
        (true, true) => Collection::Remove,
        (true, false) if entry.tombstone => Collection::Keep,
        (true, false) => Collection::Bury,
    }
}

pub async fn run(kv: Kv, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(kv.config().collect_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(err) = collect_once(&kv).await {
            tracing::warn!(error = %err, "KV collection round failed");
        }
    }
}

/// One pass over every stored entry. Returns how many removals were queued.
pub async fn collect_once(kv: &Kv) -> Result<usize, crate::KvError> {
    let grace = kv.config().tombstone_grace_ms;
    let step = kv.config().collect_scan_max;
    let view = kv.view();
    let mut queued = 0;
    for namespace in kv.keyspace().stored_namespaces()? {
        if view.deleted_namespaces.contains(&namespace) && !view.namespaces.contains_key(&namespace)
        {
            kv.submit_background(Job::background(Work::DropNamespace {
                namespace,
                limit: step,
            }))
            .await?;
            queued += 1;
        }
    }
    let mut cursor = None;
    loop {
        let (entries, next) = kv.keyspace().scan_entries(cursor, step)?;
        let now = kv.now_ms();
        for (namespace, key, entry) in entries {
            let version = entry.version;
            let work = match collection(&entry, now, grace) {
                Collection::Keep => continue,
                Collection::Bury => Work::Bury {
                    namespace,
                    key,
                    version,
                },
                Collection::Remove => Work::Collect {
                    namespace,
                    key,
                    version,
                },
            };
            kv.submit_background(Job::background(work)).await?;
            queued += 1;
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(queued),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::entry;

    #[test]
    fn dead_entries_go_after_the_grace_period_and_expired_ones_are_buried_before() {
        let grace = 1000;
        let live = entry(1, 1, 100, "v");
        assert_eq!(collection(&live, 5000, grace), Collection::Keep);
        let expiring = Entry {
            expires_at_ms: Some(300),
            ..live.clone()
        };
        assert_eq!(collection(&expiring, 299, grace), Collection::Keep);
        assert_eq!(collection(&expiring, 300, grace), Collection::Bury);
        assert_eq!(collection(&expiring, 1101, grace), Collection::Remove);
        let tombstone = Entry {
            tombstone: true,
            ..live
        };
        assert_eq!(collection(&tombstone, 1100, grace), Collection::Keep);
        assert_eq!(collection(&tombstone, 1101, grace), Collection::Remove);
    }
}
