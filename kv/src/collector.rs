//! Background collection: expired entries (they already read as absent everywhere),
//! tombstones older than the grace period, and the data of deleted namespaces. Each
//! removal goes through the writer, which removes an entry only if it is still the
//! version that was found expired, so a newer write is never lost to collection.

use std::time::Duration;

use tokio::sync::watch;

use crate::Kv;
use crate::writer::Job;

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
            kv.submit_background(Job::DropNamespace {
                namespace,
                limit: step,
            })
            .await?;
            queued += 1;
        }
    }
    let mut cursor = None;
    loop {
        let (entries, next) = kv.keyspace().scan_entries(cursor, step)?;
        let now = kv.now_ms();
        for (namespace, key, entry) in entries {
            let expired = !entry.tombstone && entry.expires_at_ms.is_some_and(|at| at <= now);
            let old_tombstone =
                entry.tombstone && entry.version.physical_ms.saturating_add(grace) < now;
            if expired || old_tombstone {
                kv.submit_background(Job::Collect {
                    namespace,
                    key,
                    version: entry.version,
                })
                .await?;
                queued += 1;
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(queued),
        }
    }
}
