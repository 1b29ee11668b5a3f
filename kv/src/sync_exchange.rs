//! The asking side of one anti-entropy exchange, as a plain state machine: what to ask
//! the partner for (per namespace, the progress per origin this replica already holds),
//! what to do with each page it answers, and what the exchange comes to — adopt the
//! partner's progress, and after a full re-sync, drop what it shows was deleted.
//! `anti_entropy::sync_with` only sends the requests and applies what this decides.

use std::collections::{BTreeMap, HashSet};

use crate::peer_messages::{SyncCursor, SyncRequest, SyncResponse};
use crate::{ClusterView, Entry, Namespace, NodeId, Segment, VersionVector};

/// Pages one exchange may take before it stops (the next round starts over).
pub const SYNC_PAGES_MAX: usize = 1000;
/// Keys a full re-sync remembers to decide what to drop; past it the drop is skipped
/// (and logged) rather than using unbounded memory.
pub const FULL_RESYNC_KEYS_MAX: usize = 5_000_000;

/// Per namespace, the highest sequence number per origin.
pub type NamespaceProgress = BTreeMap<Namespace, BTreeMap<NodeId, u64>>;

/// Bounds of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeLimits {
    pub pages_max: usize,
    pub full_resync_keys_max: usize,
}

impl Default for ExchangeLimits {
    fn default() -> Self {
        ExchangeLimits {
            pages_max: SYNC_PAGES_MAX,
            full_resync_keys_max: FULL_RESYNC_KEYS_MAX,
        }
    }
}

/// One exchange with one partner, from the first request to its ending.
#[derive(Debug)]
pub struct SyncExchange {
    me: NodeId,
    /// What each request carries: per namespace both ends may hold, the progress this
    /// replica holds (empty for a full re-sync: it asks for everything).
    asked: NamespaceProgress,
    limits: ExchangeLimits,
    started_at_ms: u64,
    /// Where the next request resumes; None once the partner sent its last page.
    next: Option<Option<SyncCursor>>,
    pages: usize,
    served: Option<NamespaceProgress>,
    /// Full re-sync: every key the partner sent (None: not a full re-sync, or too many
    /// keys to track).
    seen: Option<HashSet<(Namespace, Vec<u8>)>>,
    received: usize,
}

/// What one answered page asks of the caller.
#[derive(Debug, Default)]
pub struct PageStep {
    /// Writes to apply (through the writer) before the next request.
    pub apply: Vec<Segment>,
    /// Set when this page took a full re-sync past the keys it can track: deleted keys
    /// will not be dropped this time (the count of keys seen).
    pub stopped_tracking_at: Option<usize>,
}

/// How an exchange ended.
#[derive(Debug)]
pub enum Ending {
    /// Every page is applied: adopt the partner's progress for the namespaces it served
    /// and record `synced_at_ms`; after a full re-sync, first remove what `deleted` names.
    Complete {
        served: NamespaceProgress,
        deleted: Option<DeletedElsewhere>,
        synced_at_ms: u64,
        received: usize,
    },
    /// Stopped at the page limit before the partner's last page: nothing is adopted.
    Unfinished { received: usize },
}

impl SyncExchange {
    /// Plans an exchange with `partner` from progress `mine`, begun at `started_at_ms`;
    /// `full` asks for everything. None when the two share no namespace.
    pub fn plan(
        view: &ClusterView,
        partner: NodeId,
        mine: &VersionVector,
        full: bool,
        started_at_ms: u64,
        limits: ExchangeLimits,
    ) -> Option<SyncExchange> {
        let me = view.me;
        let asked: NamespaceProgress = view
            .namespaces
            .keys()
            .filter(|ns| view.allows(ns, me) && view.allows(ns, partner))
            .map(|ns| {
                let holds = if full {
                    BTreeMap::new()
                } else {
                    mine.namespace(ns)
                };
                (ns.clone(), holds)
            })
            .collect();
        if asked.is_empty() {
            return None;
        }
        Some(SyncExchange {
            me,
            asked,
            limits,
            started_at_ms,
            next: Some(None),
            pages: 0,
            served: None,
            seen: full.then(HashSet::new),
            received: 0,
        })
    }

    /// The next request to send; None once the exchange has ended.
    pub fn next_request(&self) -> Option<SyncRequest> {
        let cursor = self.next.as_ref()?;
        if self.pages >= self.limits.pages_max {
            return None;
        }
        Some(SyncRequest {
            from: self.me,
            namespaces: self.asked.clone(),
            cursor: cursor.clone(),
        })
    }

    /// Takes the partner's answer to [`SyncExchange::next_request`].
    pub fn answer(&mut self, page: SyncResponse) -> PageStep {
        assert!(
            self.next.is_some() && self.pages < self.limits.pages_max,
            "an answer to a request that was not sent"
        );
        self.pages += 1;
        if self.served.is_none() {
            self.served = Some(page.served);
        }
        let mut step = PageStep::default();
        if let Some(keys) = self.seen.as_mut() {
            for segment in &page.segments {
                keys.extend(
                    segment
                        .writes
                        .iter()
                        .map(|(key, _)| (segment.namespace.clone(), key.clone())),
                );
            }
            if keys.len() > self.limits.full_resync_keys_max {
                step.stopped_tracking_at = Some(keys.len());
                self.seen = None;
            }
        }
        self.received += page.segments.iter().map(|s| s.writes.len()).sum::<usize>();
        self.next = page.next.map(Some);
        step.apply = page.segments;
        step
    }

    /// How the exchange ended, once [`SyncExchange::next_request`] has no more requests.
    pub fn ending(self) -> Ending {
        if self.next.is_some() {
            return Ending::Unfinished {
                received: self.received,
            };
        }
        let served = self.served.unwrap_or_default();
        let deleted = self.seen.map(|seen| DeletedElsewhere {
            served: served.clone(),
            seen,
        });
        Ending::Complete {
            served,
            deleted,
            synced_at_ms: self.started_at_ms,
            received: self.received,
        }
    }
}

/// After a full re-sync: which local entries were deleted elsewhere while this replica was
/// away — those of a served namespace that the partner's progress covers but that it did
/// not send (deleted, and the tombstone collected). Entries newer than the partner's
/// progress are kept: the partner has not seen them.
#[derive(Debug)]
pub struct DeletedElsewhere {
    served: NamespaceProgress,
    seen: HashSet<(Namespace, Vec<u8>)>,
}

impl DeletedElsewhere {
    /// Whether the local `entry` of `key` in `namespace` is to be removed.
    pub fn drops(&self, namespace: &Namespace, key: &[u8], entry: &Entry) -> bool {
        let Some(progress) = self.served.get(namespace) else {
            return false;
        };
        let covered = progress
            .get(&entry.version.origin)
            .is_some_and(|seq| entry.seq <= *seq);
        covered && !self.seen.contains(&(namespace.clone(), key.to_vec()))
    }
}

#[cfg(test)]
mod tests;
