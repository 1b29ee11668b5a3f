//! Anti-entropy: every interval (with jitter) this node picks one partner — a random up
//! node sharing a namespace, or the origin a waiting reader needs — sends its progress,
//! and applies the pages of writes it lacks. Then it adopts the partner's progress for
//! the namespaces the partner served. One exchange per node per interval: O(N) exchanges
//! per round cluster-wide, each carrying a progress vector of O(namespaces × origins).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::peer_messages::{SyncRequest, SyncResponse};
use crate::writer::Job;
use crate::{ClusterView, Kv, KvError, NodeId, wire};

/// Pages one exchange may take before it stops (the next round continues).
const SYNC_PAGES_MAX: usize = 1000;

pub async fn run(kv: Kv, mut shutdown: watch::Receiver<bool>) {
    let interval = kv.config().anti_entropy_interval();
    loop {
        let jitter = Duration::from_millis(rand::random_range(0..=interval.as_millis() as u64 / 4));
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
            _ => partners[rand::random_range(0..partners.len())],
        };
        match sync_with(&kv, &view, partner).await {
            Ok(0) => {}
            Ok(writes) => {
                tracing::debug!(peer = %partner, writes, "anti-entropy applied missing writes")
            }
            Err(err) => tracing::debug!(peer = %partner, error = %err, "anti-entropy round failed"),
        }
    }
}

/// One anti-entropy exchange with `partner`; returns how many writes it received.
pub async fn sync_with(
    kv: &Kv,
    view: &Arc<ClusterView>,
    partner: NodeId,
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
        .map(|ns| (ns.clone(), mine.namespace(ns)))
        .collect();
    if namespaces.is_empty() {
        return Ok(0);
    }
    let mut client = kv.inner().replicator.client(&peer.peer_addr)?;
    let mut cursor = None;
    let mut served = None;
    let mut received = 0;
    for _ in 0..SYNC_PAGES_MAX {
        let request = SyncRequest {
            from: me,
            namespaces: namespaces.clone(),
            cursor: cursor.take(),
        };
        let mut call = tonic::Request::new(wire::seal(&request)?);
        call.set_timeout(kv.config().peer_rpc_timeout());
        let response = client
            .sync(call)
            .await
            .map_err(|status| KvError::Unreachable {
                peer: peer.peer_addr.clone(),
                reason: format!("{}: {}", status.code(), status.message()),
            })?;
        let page: SyncResponse = wire::open(response.get_ref())?;
        if served.is_none() {
            served = Some(page.served);
        }
        if !page.segments.is_empty() {
            received += page.segments.iter().map(|s| s.writes.len()).sum::<usize>();
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
                for (namespace, origins) in served.unwrap_or_default() {
                    kv.submit_background(Job::SyncDone { namespace, origins })
                        .await?;
                }
                return Ok(received);
            }
        }
    }
    Ok(received)
}
