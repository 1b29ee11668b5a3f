//! The wall clock, behind a trait so a simulation can supply its own.
//!
//! Monotonic time is tokio's (`tokio::time::Instant`), which the simulation tier already
//! controls; only the wall clock — hybrid logical clock stamps, expiry, alarm due
//! times — needs injecting.

use std::sync::Arc;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// A clock shared by the parts of one node.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_unix_time() {
        // 2020-09-13: any machine running this is past it.
        assert!(SystemClock.now_ms() > 1_600_000_000_000);
    }
}
