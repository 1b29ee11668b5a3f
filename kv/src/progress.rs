use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{Namespace, NodeId};

/// Per namespace and origin node: the highest sequence number `s` such that every write of
/// that origin to that namespace numbered `s` or lower has been received (applied, or
/// found superseded). Anti-entropy exchanges it; read-your-writes tokens are checked
/// against it; watch resume tokens are one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(pub BTreeMap<Namespace, BTreeMap<NodeId, u64>>);

impl VersionVector {
    pub fn get(&self, namespace: &Namespace, origin: NodeId) -> u64 {
        self.0
            .get(namespace)
            .and_then(|origins| origins.get(&origin))
            .copied()
            .unwrap_or(0)
    }

    pub fn namespace(&self, namespace: &Namespace) -> BTreeMap<NodeId, u64> {
        self.0.get(namespace).cloned().unwrap_or_default()
    }

    /// Raises the entry to `seq` if it is lower.
    pub fn raise(&mut self, namespace: &Namespace, origin: NodeId, seq: u64) {
        let slot = self
            .0
            .entry(namespace.clone())
            .or_default()
            .entry(origin)
            .or_insert(0);
        *slot = (*slot).max(seq);
    }

    /// Whether this vector includes every write `other` includes.
    pub fn includes(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(ns, origins)| {
            origins
                .iter()
                .all(|(origin, seq)| self.get(ns, *origin) >= *seq)
        })
    }
}

/// Pending out-of-order ranges kept per (namespace, origin) before the rest is left to
/// anti-entropy.
pub const PENDING_RANGES_MAX: usize = 1024;

/// Replication lag behind one origin in one namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Writes known to exist that are not received in order yet.
    pub writes_behind: u64,
    /// Unix ms since which this replica has been behind (None: caught up).
    pub behind_since_ms: Option<u64>,
    pub last_received_at_ms: Option<u64>,
}

/// What this replica has received: the contiguous [`VersionVector`] plus ranges that
/// arrived ahead of a gap, and what it has heard exists (for lag).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    vector: VersionVector,
    pending: HashMap<(Namespace, NodeId), BTreeMap<u64, u64>>,
    lag: HashMap<(Namespace, NodeId), (u64, Lag)>,
}

impl Progress {
    pub fn new(vector: VersionVector) -> Progress {
        Progress {
            vector,
            ..Progress::default()
        }
    }

    pub fn vector(&self) -> &VersionVector {
        &self.vector
    }

    /// Records that every write of `origin` to `namespace` numbered `from..=to` that this
    /// replica may hold has been received. Returns whether the contiguous point moved.
    pub fn receive_range(
        &mut self,
        namespace: &Namespace,
        origin: NodeId,
        from: u64,
        to: u64,
        now_ms: u64,
    ) -> bool {
        if to < from {
            return false;
        }
        self.heard_of(namespace, origin, to, now_ms);
        let key = (namespace.clone(), origin);
        let current = self.vector.get(namespace, origin);
        if from > current + 1 {
            let pending = self.pending.entry(key.clone()).or_default();
            let end = pending.entry(from).or_insert(to);
            *end = (*end).max(to);
            while pending.len() > PENDING_RANGES_MAX {
                pending.pop_last();
            }
            self.refresh_lag(&key, now_ms);
            return false;
        }
        let mut reached = current.max(to);
        if let Some(pending) = self.pending.get_mut(&key) {
            while let Some((&start, &end)) = pending.first_key_value() {
                if start > reached + 1 {
                    break;
                }
                reached = reached.max(end);
                pending.pop_first();
            }
        }
        let moved = reached > current;
        self.vector.raise(namespace, origin, reached);
        if let Some((_, lag)) = self.lag.get_mut(&key) {
            lag.last_received_at_ms = Some(now_ms);
        }
        self.refresh_lag(&key, now_ms);
        moved
    }

    /// Adopts a peer's contiguous point after anti-entropy delivered everything above ours.
    pub fn merge_namespace(
        &mut self,
        namespace: &Namespace,
        origins: &BTreeMap<NodeId, u64>,
        now_ms: u64,
    ) {
        for (origin, seq) in origins {
            if *seq > self.vector.get(namespace, *origin) {
                self.receive_range(namespace, *origin, 1, *seq, now_ms);
            }
        }
    }

    /// Notes that `origin` has written `seq` in `namespace`, whether or not it arrived.
    pub fn heard_of(&mut self, namespace: &Namespace, origin: NodeId, seq: u64, now_ms: u64) {
        let key = (namespace.clone(), origin);
        let entry = self.lag.entry(key.clone()).or_default();
        entry.0 = entry.0.max(seq);
        self.refresh_lag(&key, now_ms);
    }

    fn refresh_lag(&mut self, key: &(Namespace, NodeId), now_ms: u64) {
        let contiguous = self.vector.get(&key.0, key.1);
        if let Some((known, lag)) = self.lag.get_mut(key) {
            lag.writes_behind = known.saturating_sub(contiguous);
            if lag.writes_behind == 0 {
                lag.behind_since_ms = None;
            } else if lag.behind_since_ms.is_none() {
                lag.behind_since_ms = Some(now_ms);
            }
        }
    }

    /// Lag per origin, summed over namespaces (the oldest "behind since" wins).
    pub fn lag_by_origin(&self) -> BTreeMap<NodeId, Lag> {
        let mut out: BTreeMap<NodeId, Lag> = BTreeMap::new();
        for ((_, origin), (_, lag)) in &self.lag {
            let total = out.entry(*origin).or_default();
            total.writes_behind += lag.writes_behind;
            total.behind_since_ms = match (total.behind_since_ms, lag.behind_since_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            total.last_received_at_ms = total.last_received_at_ms.max(lag.last_received_at_ms);
        }
        out
    }

    /// Forgets a deleted namespace.
    pub fn drop_namespace(&mut self, namespace: &Namespace) {
        self.vector.0.remove(namespace);
        self.pending.retain(|(ns, _), _| ns != namespace);
        self.lag.retain(|(ns, _), _| ns != namespace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);

    fn ns() -> Namespace {
        Namespace::from("ns")
    }

    #[test]
    fn in_order_ranges_advance() {
        let mut p = Progress::default();
        assert!(p.receive_range(&ns(), A, 1, 3, 0));
        assert!(p.receive_range(&ns(), A, 4, 4, 0));
        assert_eq!(p.vector().get(&ns(), A), 4);
    }

    #[test]
    fn a_gap_holds_the_point_until_filled() {
        let mut p = Progress::default();
        p.receive_range(&ns(), A, 1, 2, 10);
        assert!(!p.receive_range(&ns(), A, 5, 6, 20));
        assert!(!p.receive_range(&ns(), A, 8, 9, 20));
        assert_eq!(p.vector().get(&ns(), A), 2);
        let lag = p.lag_by_origin()[&A];
        assert_eq!(lag.writes_behind, 7);
        assert_eq!(lag.behind_since_ms, Some(20));
        assert!(p.receive_range(&ns(), A, 3, 4, 30));
        assert_eq!(
            p.vector().get(&ns(), A),
            6,
            "absorbs 5..=6, stops at the gap before 8"
        );
        assert!(p.receive_range(&ns(), A, 7, 7, 40));
        assert_eq!(p.vector().get(&ns(), A), 9);
        assert_eq!(p.lag_by_origin()[&A].writes_behind, 0);
        assert_eq!(p.lag_by_origin()[&A].behind_since_ms, None);
    }

    #[test]
    fn merging_a_peer_vector_jumps_ahead() {
        let mut p = Progress::default();
        p.receive_range(&ns(), A, 5, 6, 0);
        p.merge_namespace(&ns(), &BTreeMap::from([(A, 4)]), 0);
        assert_eq!(p.vector().get(&ns(), A), 6);
        let mut other = VersionVector::default();
        other.raise(&ns(), A, 6);
        assert!(p.vector().includes(&other));
        other.raise(&ns(), NodeId(2), 1);
        assert!(!p.vector().includes(&other));
    }
}
