use std::sync::atomic::{AtomicU64, Ordering};

/// KV counters since the node started (exported as Prometheus counters).
#[derive(Debug, Default)]
pub struct KvStats {
    pub local_writes: AtomicU64,
    pub replicated_writes_received: AtomicU64,
    pub group_commits: AtomicU64,
    pub tombstones_collected: AtomicU64,
    pub expired_collected: AtomicU64,
}

impl KvStats {
    pub(crate) fn record_group(&self, local: u64, remote: u64, collected: (u64, u64)) {
        self.group_commits.fetch_add(1, Ordering::Relaxed);
        self.local_writes.fetch_add(local, Ordering::Relaxed);
        self.replicated_writes_received
            .fetch_add(remote, Ordering::Relaxed);
        self.tombstones_collected
            .fetch_add(collected.0, Ordering::Relaxed);
        self.expired_collected
            .fetch_add(collected.1, Ordering::Relaxed);
    }

    /// (name, help, value) of each counter.
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 5] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "kv_local_writes",
                "KV writes accepted at this node",
                get(&self.local_writes),
            ),
            (
                "kv_replicated_writes_received",
                "KV writes received from peers (before merge)",
                get(&self.replicated_writes_received),
            ),
            (
                "kv_group_commits",
                "KV group commits (one flush each)",
                get(&self.group_commits),
            ),
            (
                "kv_tombstones_collected",
                "Tombstones removed after the grace period",
                get(&self.tombstones_collected),
            ),
            (
                "kv_expired_collected",
                "Expired entries turned into tombstones, or removed once past the grace period",
                get(&self.expired_collected),
            ),
        ]
    }
}
