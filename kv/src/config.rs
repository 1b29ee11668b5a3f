use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits and timings of the KV. Every queue, batch and wait has a bound here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    pub metadata_bytes_max: usize,
    pub get_many_keys_max: usize,
    pub write_many_items_max: usize,
    pub list_page_max: usize,
    /// Stored entries (tombstones and expired ones included) one list page may examine.
    pub list_scan_max: usize,
    /// Write jobs waiting for the group-commit task.
    pub write_queue_max: usize,
    /// Jobs committed together under one flush.
    pub group_commit_jobs_max: usize,
    /// How long a read carrying a consistency token waits for this replica to catch up.
    pub read_your_writes_wait_ms: u64,
    /// Deleted keys keep a tombstone this long; longer than any partition we tolerate.
    pub tombstone_grace_ms: u64,
    /// How often expired entries and old tombstones are collected.
    pub collect_interval_ms: u64,
    /// Entries examined per collection step.
    pub collect_scan_max: usize,
    pub push_batch_writes_max: usize,
    pub push_batch_bytes_max: usize,
    /// Per peer: queued bytes before the oldest queued pushes are dropped (anti-entropy
    /// repairs what is dropped).
    pub outbox_bytes_max: usize,
    pub outbox_segments_max: usize,
    pub anti_entropy_interval_ms: u64,
    pub sync_page_writes_max: usize,
    pub sync_page_bytes_max: usize,
    /// Change events buffered for watchers before a slow watcher falls back to a scan.
    pub watch_buffer_events: usize,
    /// Events buffered per watch stream toward its client.
    pub watch_stream_buffer: usize,
    pub clock_forward_drift_max_ms: u64,
    pub peer_rpc_timeout_ms: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            key_bytes_max: 512,
            value_bytes_max: 25 * 1024 * 1024,
            metadata_bytes_max: 1024,
            get_many_keys_max: 100,
            write_many_items_max: 10_000,
            list_page_max: 1000,
            list_scan_max: 10_000,
            write_queue_max: 4096,
            group_commit_jobs_max: 512,
            read_your_writes_wait_ms: 2000,
            tombstone_grace_ms: 24 * 3600 * 1000,
            collect_interval_ms: 30_000,
            collect_scan_max: 10_000,
            push_batch_writes_max: 1000,
            push_batch_bytes_max: 4 * 1024 * 1024,
            outbox_bytes_max: 64 * 1024 * 1024,
            outbox_segments_max: 100_000,
            anti_entropy_interval_ms: 2000,
            sync_page_writes_max: 1000,
            sync_page_bytes_max: 8 * 1024 * 1024,
            watch_buffer_events: 4096,
            watch_stream_buffer: 1024,
            clock_forward_drift_max_ms: 60_000,
            peer_rpc_timeout_ms: 5000,
        }
    }
}

/// A KV setting that cannot work, named with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kv.{field} = {value}: {reason}")]
pub struct KvConfigError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl KvConfig {
    pub fn validate(&self) -> Result<(), KvConfigError> {
        let positive: [(&'static str, u64); 20] = [
            ("key_bytes_max", self.key_bytes_max as u64),
            ("value_bytes_max", self.value_bytes_max as u64),
            ("get_many_keys_max", self.get_many_keys_max as u64),
            ("write_many_items_max", self.write_many_items_max as u64),
            ("list_page_max", self.list_page_max as u64),
            ("list_scan_max", self.list_scan_max as u64),
            ("write_queue_max", self.write_queue_max as u64),
            ("group_commit_jobs_max", self.group_commit_jobs_max as u64),
            ("collect_interval_ms", self.collect_interval_ms),
            ("collect_scan_max", self.collect_scan_max as u64),
            ("push_batch_writes_max", self.push_batch_writes_max as u64),
            ("push_batch_bytes_max", self.push_batch_bytes_max as u64),
            ("outbox_bytes_max", self.outbox_bytes_max as u64),
            ("outbox_segments_max", self.outbox_segments_max as u64),
            ("anti_entropy_interval_ms", self.anti_entropy_interval_ms),
            ("sync_page_writes_max", self.sync_page_writes_max as u64),
            ("sync_page_bytes_max", self.sync_page_bytes_max as u64),
            ("watch_buffer_events", self.watch_buffer_events as u64),
            ("watch_stream_buffer", self.watch_stream_buffer as u64),
            ("peer_rpc_timeout_ms", self.peer_rpc_timeout_ms),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(KvConfigError {
                    field,
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.list_scan_max < self.list_page_max {
            return Err(KvConfigError {
                field: "list_scan_max",
                value: self.list_scan_max.to_string(),
                reason: format!("must be at least list_page_max ({})", self.list_page_max),
            });
        }
        if self.tombstone_grace_ms < 1000
            || self.tombstone_grace_ms < 2 * self.anti_entropy_interval_ms
        {
            return Err(KvConfigError {
                field: "tombstone_grace_ms",
                value: self.tombstone_grace_ms.to_string(),
                reason: format!(
                    "must be at least 1000 and twice anti_entropy_interval_ms ({}); set it longer than any partition to tolerate without a full re-sync",
                    self.anti_entropy_interval_ms
                ),
            });
        }
        Ok(())
    }

    pub fn read_your_writes_wait(&self) -> Duration {
        Duration::from_millis(self.read_your_writes_wait_ms)
    }

    pub fn anti_entropy_interval(&self) -> Duration {
        Duration::from_millis(self.anti_entropy_interval_ms)
    }

    pub fn peer_rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_rpc_timeout_ms)
    }
}
