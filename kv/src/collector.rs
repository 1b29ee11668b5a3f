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

/// How soon a drop pass runs again while a deleted namespace still has rows: a
/// namespace of N rows is gone in about N / `collect_scan_max` of these.
const DROP_AGAIN_AFTER: Duration = Duration::from_millis(100);

pub async fn run(kv: Kv, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(kv.config().collect_interval_ms);
    let mut views = kv.inner().cluster.clone();
    let mut next_collection = tokio::time::Instant::now() + interval;
    // At once at start too: a node that was down when a namespace was deleted may have
    // caught up with the directory before the KV started.
    let mut drop_again = Some(tokio::time::Instant::now());
    // Deleted namespaces with rows here at the last pass: logged once all are gone.
    let mut dropping = std::collections::BTreeSet::new();
    loop {
        // A namespace deleted (a new view) is dropped at once, not at the next round.
        let drop_due = async {
            match drop_again {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next_collection) => {
                next_collection = tokio::time::Instant::now() + interval;
                if let Err(err) = collect_once(&kv).await {
                    tracing::warn!(error = %err, "KV collection round failed");
                }
            }
            changed = views.changed() => if changed.is_err() { return },
            _ = drop_due => {}
            _ = shutdown.changed() => return,
        }
        drop_again = match drop_deleted(&kv).await {
            Ok(found) => {
                for gone in dropping.difference(&found) {
                    tracing::info!(namespace = ?gone, "a deleted namespace's entries are all dropped");
                }
                let again = !found.is_empty();
                dropping = found;
                again.then(|| tokio::time::Instant::now() + DROP_AGAIN_AFTER)
            }
            Err(err) => {
                tracing::warn!(error = %err, "dropping deleted namespaces failed");
                None
            }
        };
    }
}

/// Queues the removal of up to `collect_scan_max` rows of each namespace incarnation
/// stored here that the directory deleted (or created again since). Returns those it
/// found.
pub async fn drop_deleted(
    kv: &Kv,
) -> Result<std::collections::BTreeSet<crate::Namespace>, crate::KvError> {
    let view = kv.view();
    let mut found = std::collections::BTreeSet::new();
    for namespace in kv.keyspace().stored_namespaces()? {
        if view.is_deleted(&namespace) {
            tracing::info!(namespace = ?namespace, "dropping a deleted namespace's entries");
            kv.submit_background(Job::background(Work::DropNamespace {
                namespace: namespace.clone(),
                limit: kv.config().collect_scan_max,
            }))
            .await?;
            found.insert(namespace);
        }
    }
    Ok(found)
}

/// One pass over every stored entry. Returns how many removals were queued.
pub async fn collect_once(kv: &Kv) -> Result<usize, crate::KvError> {
    let grace = kv.config().tombstone_grace_ms;
    let step = kv.config().collect_scan_max;
    let mut queued = drop_deleted(kv).await?.len();
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
