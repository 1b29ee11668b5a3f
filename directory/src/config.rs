use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the directory's Raft group and liveness tracking.
///
/// Defaults suit links between regions (tens to a couple of hundred ms of round trip):
/// a leader sends heartbeats every 250 ms and followers start an election after 1.5–3 s
/// of silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log before it) after this many applied entries.
    pub snapshot_after_entries: u64,
    /// Log entries kept behind a snapshot, so lagging members catch up from the log
    /// instead of a whole snapshot.
    pub log_entries_kept_after_snapshot: u64,
    /// A node whose last acknowledgement to the leader is older than this is marked down.
    pub node_down_after_ms: u64,
    /// How often the leader compares acknowledgements with the recorded liveness.
    pub liveness_check_interval_ms: u64,
    /// Deadline of one peer RPC that is not a Raft message (forwarded requests).
    pub peer_rpc_timeout_ms: u64,
    /// Largest peer message (Raft append, snapshot, forwarded request).
    pub peer_message_bytes_max: usize,
    /// How many times a request is retried while there is no reachable leader.
    pub request_attempts_max: u32,
    /// Source address of outgoing peer connections: the peer listener's address when
    /// it names one (set by the node, not read from the file), so that every host of a
    /// multi-address machine — and every test host on 127.0.0.x — is told apart by the
    /// address its traffic comes from.
    #[serde(skip)]
    pub peer_source_ip: Option<std::net::IpAddr>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            heartbeat_interval_ms: 250,
            election_timeout_min_ms: 1500,
            election_timeout_max_ms: 3000,
            snapshot_after_entries: 5000,
            log_entries_kept_after_snapshot: 1000,
            node_down_after_ms: 5000,
            liveness_check_interval_ms: 500,
            peer_rpc_timeout_ms: 5000,
            peer_message_bytes_max: 64 * 1024 * 1024,
            request_attempts_max: 20,
            peer_source_ip: None,
        }
    }
}

/// A configuration value that cannot work, named with the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("directory.{field} = {value}: {reason}")]
pub struct DirectoryConfigError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl DirectoryConfig {
    pub fn validate(&self) -> Result<(), DirectoryConfigError> {
        let fail = |field: &'static str, value: &dyn std::fmt::Display, reason: &str| {
            Err(DirectoryConfigError {
                field,
                value: value.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.heartbeat_interval_ms == 0 {
            return fail("heartbeat_interval_ms", &0, "must be at least 1");
        }
        if self.election_timeout_min_ms <= self.heartbeat_interval_ms {
            return fail(
                "election_timeout_min_ms",
                &self.election_timeout_min_ms,
                &format!(
                    "must exceed heartbeat_interval_ms ({})",
                    self.heartbeat_interval_ms
                ),
            );
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return fail(
                "election_timeout_max_ms",
                &self.election_timeout_max_ms,
                &format!(
                    "must exceed election_timeout_min_ms ({})",
                    self.election_timeout_min_ms
                ),
            );
        }
        if self.snapshot_after_entries == 0 {
            return fail("snapshot_after_entries", &0, "must be at least 1");
        }
        if self.node_down_after_ms <= self.heartbeat_interval_ms {
            return fail(
                "node_down_after_ms",
                &self.node_down_after_ms,
                &format!(
                    "must exceed heartbeat_interval_ms ({})",
                    self.heartbeat_interval_ms
                ),
            );
        }
        if self.liveness_check_interval_ms == 0 {
            return fail("liveness_check_interval_ms", &0, "must be at least 1");
        }
        if self.peer_rpc_timeout_ms == 0 {
            return fail("peer_rpc_timeout_ms", &0, "must be at least 1");
        }
        if self.peer_message_bytes_max < 1024 * 1024 {
            return fail(
                "peer_message_bytes_max",
                &self.peer_message_bytes_max,
                "must be at least 1048576 (1 MiB)",
            );
        }
        if self.request_attempts_max == 0 {
            return fail("request_attempts_max", &0, "must be at least 1");
        }
        Ok(())
    }

    pub fn node_down_after(&self) -> Duration {
        Duration::from_millis(self.node_down_after_ms)
    }

    pub fn liveness_check_interval(&self) -> Duration {
        Duration::from_millis(self.liveness_check_interval_ms)
    }

    pub fn peer_rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_rpc_timeout_ms)
    }

    pub(crate) fn raft_config(&self) -> Result<openraft::Config, DirectoryConfigError> {
        let config = openraft::Config {
            cluster_name: "larder-directory".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.log_entries_kept_after_snapshot,
            max_payload_entries: crate::raft_types::APPEND_ENTRIES_MAX,
            ..Default::default()
        };
        config.validate().map_err(|err| DirectoryConfigError {
            field: "raft",
            value: String::new(),
            reason: err.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        DirectoryConfig::default().validate().expect("defaults");
        DirectoryConfig::default()
            .raft_config()
            .expect("raft defaults");
        let bad = DirectoryConfig {
            election_timeout_max_ms: 100,
            ..Default::default()
        };
        let err = bad.validate().expect_err("max below min");
        assert_eq!(err.field, "election_timeout_max_ms");
        assert!(err.to_string().contains("100"), "{err}");
    }
}
