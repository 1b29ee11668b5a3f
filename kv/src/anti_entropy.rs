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
//!
//! The decisions are plain functions and types: [`choose_partner`] and
//! [`full_resync_due`] here, [`SyncExchange`] for one exchange's requests and pages
//! (`sync_exchange`), `SyncPager` for the partner's pages (`sync_pager`). This module
//! only times rounds, sends requests and applies what they decide.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::group_stage::Work;
use crate::peer_messages::SyncResponse;
use crate::sync_exchange::{DeletedElsewhere, Ending, ExchangeLimits, SyncExchange};
use crate::writer::Job;
use crate::{ClusterView, Kv, KvError, NodeId, Segment, wire};

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
        let Some(partner) = choose_partner(&partners, wanted, |n| kv.inner().draws.below(n)) else {
            continue;
        };
        let synced_at = kv.inner().synced_at_ms.load(Ordering::Relaxed);
        let full = kv.full_resync_due();
        if full && synced_at == 0 {
            // Every new node's first exchange (its data so far came by push): expected.
            tracing::info!(peer = %partner, "first anti-entropy exchange of this replica: full sync");
        } else if full {
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

/// The partner of a round: the origin a waiting reader needs if it is a partner,
/// otherwise one drawn at random (`draw(n)` is uniform in `0..n`); None without partners.
pub fn choose_partner(
    partners: &[NodeId],
    wanted: Option<NodeId>,
    draw: impl FnOnce(usize) -> usize,
) -> Option<NodeId> {
    match wanted {
        Some(origin) if partners.contains(&origin) => Some(origin),
        _ if partners.is_empty() => None,
        _ => Some(partners[draw(partners.len())]),
    }
}

/// Whether a round must re-sync fully: its last complete exchange (`synced_at_ms`, 0:
/// never) is older than the tombstone grace period, so deletes may have been collected
/// elsewhere meanwhile. A replica that never synced re-syncs fully if it holds data
/// (it may have arrived by push alone, before the node went away); `holds_data` is only
/// asked then.
pub fn full_resync_due(
    synced_at_ms: u64,
    now_ms: u64,
    tombstone_grace_ms: u64,
    holds_data: impl FnOnce() -> bool,
) -> bool {
    if synced_at_ms == 0 {
        holds_data()
    } else {
        now_ms.saturating_sub(synced_at_ms) > tombstone_grace_ms
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
    let Some(peer) = view.nodes.get(&partner) else {
        return Ok(0);
    };
    let limits = ExchangeLimits::default();
    let Some(mut exchange) =
        SyncExchange::plan(view, partner, &kv.vector(), full, kv.now_ms(), limits)
    else {
        return Ok(0);
    };
    let mut client = kv.inner().replicator.client(&peer.peer_addr)?;
    while let Some(request) = exchange.next_request() {
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
        let step = exchange.answer(page);
        if let Some(keys) = step.stopped_tracking_at {
            tracing::warn!(
                keys,
                "full re-sync too large to track; deleted keys may survive"
            );
        }
        apply(kv, step.apply).await?;
    }
    match exchange.ending() {
        Ending::Unfinished { received } => Ok(received),
        Ending::Complete {
            served,
            deleted,
            synced_at_ms,
            received,
        } => {
            if let Some(deleted) = &deleted {
                drop_deleted(kv, deleted).await?;
            }
            for (namespace, origins) in served {
                kv.submit_background(Job::background(Work::SyncDone {
                    namespace,
                    origins,
                    at_ms: synced_at_ms,
                }))
                .await?;
            }
            kv.inner()
                .synced_at_ms
                .store(synced_at_ms, Ordering::Relaxed);
            Ok(received)
        }
    }
}

/// Applies one page's writes through the writer and waits until they are durable.
async fn apply(kv: &Kv, segments: Vec<Segment>) -> Result<(), KvError> {
    if segments.is_empty() {
        return Ok(());
    }
    kv.keyspace().store().health().check_space()?;
    let (reply, done) = oneshot::channel();
    kv.submit_background(Job::remote(segments, reply)).await?;
    done.await.map_err(|_| KvError::ShuttingDown)?
}

/// After a full re-sync: removes the local entries `deleted` names.
async fn drop_deleted(kv: &Kv, deleted: &DeletedElsewhere) -> Result<usize, KvError> {
    let mut cursor = None;
    let mut dropped = 0;
    loop {
        let (entries, next) = kv
            .keyspace()
            .scan_entries(cursor, kv.config().collect_scan_max)?;
        for (namespace, key, entry) in entries {
            if deleted.drops(&namespace, &key, &entry) {
                kv.submit_background(Job::background(Work::Collect {
                    namespace,
                    key,
                    version: entry.version,
                }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_a_reader_waits_for_goes_first_if_it_is_a_partner() {
        let partners = [NodeId(2), NodeId(3), NodeId(4)];
        assert_eq!(
            choose_partner(&partners, Some(NodeId(4)), |_| 0),
            Some(NodeId(4))
        );
        assert_eq!(
            choose_partner(&partners, Some(NodeId(9)), |n| n - 1),
            Some(NodeId(4)),
            "not a partner: drawn"
        );
        assert_eq!(choose_partner(&partners, None, |_| 1), Some(NodeId(3)));
        assert_eq!(choose_partner(&[], Some(NodeId(2)), |_| 0), None);
    }

    #[test]
    fn a_full_resync_is_due_after_the_grace_period_or_before_a_first_sync_with_data() {
        let grace = 1000;
        assert!(!full_resync_due(5000, 6000, grace, || unreachable!()));
        assert!(full_resync_due(5000, 6001, grace, || unreachable!()));
        assert!(
            !full_resync_due(5000, 4000, grace, || unreachable!()),
            "clock went back"
        );
        assert!(full_resync_due(0, 10, grace, || true));
        assert!(!full_resync_due(0, 10, grace, || false));
    }
}
