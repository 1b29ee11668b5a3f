use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ObjectLimits;

/// Object settings: limits, replication and timings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectsConfig {
    pub limits: ObjectLimits,
    /// Copies of each object (owner included), capped by the up nodes of its region.
    pub replication_factor: usize,
    /// How long a write waits for a majority of replicas.
    pub write_timeout_ms: u64,
    /// Calls queued per active object.
    pub mailbox_max: usize,
    /// Objects kept in memory at once.
    pub active_objects_max: usize,
    /// An object with no call for this long leaves memory.
    pub idle_after_ms: u64,
    /// An owner serves reads without asking its replicas for this long after a majority
    /// last confirmed it; a new owner waits this long before serving. Keep it well below
    /// `directory.node_down_after_ms`.
    pub lease_ms: u64,
    pub peer_rpc_timeout_ms: u64,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        ObjectsConfig {
            limits: ObjectLimits::default(),
            replication_factor: 3,
            write_timeout_ms: 5000,
            mailbox_max: 1024,
            active_objects_max: 100_000,
            idle_after_ms: 60_000,
            lease_ms: 1000,
            peer_rpc_timeout_ms: 5000,
        }
    }
}

impl ObjectsConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in [
            ("replication_factor", self.replication_factor as u64),
            ("write_timeout_ms", self.write_timeout_ms),
            ("mailbox_max", self.mailbox_max as u64),
            ("active_objects_max", self.active_objects_max as u64),
            ("idle_after_ms", self.idle_after_ms),
            ("lease_ms", self.lease_ms),
            ("peer_rpc_timeout_ms", self.peer_rpc_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("objects.{field} = 0: must be at least 1"));
            }
        }
        if self.replication_factor > larder_directory::placement::REPLICATION_FACTOR_MAX {
            return Err(format!(
                "objects.replication_factor = {}: at most {}",
                self.replication_factor,
                larder_directory::placement::REPLICATION_FACTOR_MAX
            ));
        }
        Ok(())
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    pub fn peer_rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_rpc_timeout_ms)
    }
}
