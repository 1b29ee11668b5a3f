//! Anti-entropy: every interval (with jitter) this node picks one partner — a random up
//! node sharing a namespace, or the origin a waiting reader needs — sends its progress,
//! and applies the pages of writes it lacks. Then it adopts the partner's progress for
//! the namespaces the partner served. One exchange per node per interval: O(N) exchanges
//! per round cluster-wide, each carrying a progress vector of O(namespaces × origins).
//!
//! A node whose last complete exchange is older than the tombstone grace period (or that
//! never completed one but holds data) may hold
//! keys whose deletes were already collected everywhere else. It re-syncs fully: it asks
//! for everything, then drops each local entry the partner did not send that the
//! partner's progress covers (deleted, with its tombstone collected). Entries newer than
//! the partner's progress are kept, so a full re-sync never loses a write the partner has
//! not seen.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::peer_messages::{SyncRequest, SyncResponse};
use crate::writer::Job;
use crate::{ClusterView, Kv, KvError, NodeId, wire};

/// Pages one exchange may take before it stops (the next round continues).
const SYNC_PAGES_MAX: usize = 1000;
/// Keys a full re-sync remembers to decide what to drop; past it the drop is skipped
/// (and logged) rather than using unbounded memory.
const FULL_RESYNC_KEYS_MAX: usize = 5_000_000;

pub async fn run(kv: Kv, mut shutdown: watch::Receiver<bool>) {
    let interval = kv.config().anti_entropy_interval();
    loop {
        let jitter = Duration::from_millis(kv.inner().draws.up_to(interval.as_millis() as u64 / 4));
        let wanted = tokio::select! {
            _ = tokio::time::sleep(interval + jitter) => None,
            nudged = kv.inner().replicator.nudged() => nudged,
            _ = shutdown.changed() => return,
        };
        let view = kv.view();
        let partners = view.sync_partners();
        let partner = match wanted {
            Some(origin) if partners.contains(&origin) => origin,
            _ if partners.is_empty() => continue,
            _ => partners[kv.inner().draws.below(partners.len())],
        };
        let synced_at = kv.inner().synced_at_ms.load(Ordering::Relaxed);
        // Never synced: data may have arrived by push alone, so a node that went away
        // before its first exchange gets the same treatment (cheap when it holds nothing).
        let full = if synced_at == 0 {
            kv.keyspace()
                .stored_namespaces()
                .map(|ns| !ns.is_empty())
                .unwrap_or(true)
        } else {
            kv.now_ms().saturating_sub(synced_at) > kv.config().tombstone_grace_ms
        };
        if full {
            tracing::warn!(peer = %partner, synced_at_ms = synced_at, "no sync within the tombstone grace period: full re-sync");
        }
        match sync_with(&kv, &view, partner, full).await {
            Ok(0) => {}
            Ok(writes) => {
                tracing::debug!(peer = %partner, writes, "anti-entropy applied missing writes")
            }
            Err(err) => tracing::debug!(peer = %partner, error = %err, "anti-entropy round failed"),
        }
    }
}

/// One anti-entropy exchange with `partner`; returns how many writes it received.
/// `full`: ask for everything and drop what the partner shows was deleted.
pub async fn sync_with(
    kv: &Kv,
    view: &Arc<ClusterView>,
    partner: NodeId,
    full: bool,
) -> Result<usize, KvError> {
    let me = kv.me();
    let Some(peer) = view.nodes.get(&partner) else {
        return Ok(0);
    };
    let mine = kv.vector();
    let namespaces: BTreeMap<String, BTreeMap<NodeId, u64>> = view
        .namespaces
        .keys()
        .filter(|ns| view.allows(ns, me) && view.allows(ns, partner))
        .map(|ns| {
            (
                ns.clone(),
                if full {
                    BTreeMap::new()
                } else {
                    mine.namespace(ns)
                },
            )
        })
        .collect();
    if namespaces.is_empty() {
        return Ok(0);
    }
    let started_at = kv.now_ms();
    let mut client = kv.inner().replicator.client(&peer.peer_addr)?;
    let mut cursor = None;
    let mut served = None;
    let mut received = 0;
    let mut seen: Option<HashSet<(String, Vec<u8>)>> = full.then(HashSet::new);
    for _ in 0..SYNC_PAGES_MAX {
        let request = SyncRequest {
            from: me,
            namespaces: namespaces.clone(),
            cursor: cursor.take(),
        };
        let mut call = tonic::Request::new(wire::KV_WIRE.seal(&request)?);
        call.set_timeout(kv.config().peer_rpc_timeout());
        let response = client
            .sync(call)
            .await
            .map_err(|status| KvError::Unreachable {
                peer: peer.peer_addr.clone(),
                reason: format!("{}: {}", status.code(), status.message()),
            })?;
        let page: SyncResponse = wire::KV_WIRE.open(response.get_ref())?;
        if served.is_none() {
            served = Some(page.served);
        }
        if let Some(keys) = seen.as_mut() {
            for segment in &page.segments {
                keys.extend(
                    segment
                        .writes
                        .iter()
                        .map(|(key, _)| (segment.namespace.clone(), key.clone())),
                );
            }
            if keys.len() > FULL_RESYNC_KEYS_MAX {
                tracing::warn!(
                    keys = keys.len(),
                    "full re-sync too large to track; deleted keys may survive"
                );
                seen = None;
            }
        }
        if !page.segments.is_empty() {
            received += page.segments.iter().map(|s| s.writes.len()).sum::<usize>();
            kv.keyspace().store().health().check_space()?;
            let (reply, done) = oneshot::channel();
            kv.submit_background(Job::Remote {
                segments: page.segments,
                reply: Some(reply),
            })
            .await?;
            done.await.map_err(|_| KvError::ShuttingDown)??;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => {
                let served = served.unwrap_or_default();
                if let Some(seen) = &seen {
                    drop_deleted(kv, &served, seen).await?;
                }
                for (namespace, origins) in served {
                    kv.submit_background(Job::SyncDone {
                        namespace,
                        origins,
                        at_ms: started_at,
                    })
                    .await?;
                }
                kv.inner().synced_at_ms.store(started_at, Ordering::Relaxed);
                return Ok(received);
            }
        }
    }
    Ok(received)
}

/// After a full re-sync: removes local entries of the served namespaces that the partner
/// did not send although its progress covers them.
async fn drop_deleted(
    kv: &Kv,
    served: &BTreeMap<String, BTreeMap<NodeId, u64>>,
    seen: &HashSet<(String, Vec<u8>)>,
) -> Result<usize, KvError> {
    let mut cursor = None;
    let mut dropped = 0;
    loop {
        let (entries, next) = kv
            .keyspace()
            .scan_entries(cursor, kv.config().collect_scan_max)?;
        for (namespace, key, entry) in entries {
            let Some(progress) = served.get(&namespace) else {
                continue;
            };
            let covered = progress
                .get(&entry.version.origin)
                .is_some_and(|seq| entry.seq <= *seq);
            if covered && !seen.contains(&(namespace.clone(), key.clone())) {
                kv.submit_background(Job::Collect {
                    namespace,
                    key,
                    version: entry.version,
                })
                .await?;
                dropped += 1;
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "full re-sync dropped entries deleted elsewhere while this node was away"
        );
    }
    Ok(dropped)
}
