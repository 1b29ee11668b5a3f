//! What keeps the store from acknowledging a write it cannot keep.
//!
//! - **Free-space guard.** sled cannot recover from running out of space: after one
//!   `ENOSPC` every later write and flush fails until the process reopens the store,
//!   even once space is freed (measured; docs/reliability.md has the reproduction). So
//!   writers ask [`StoreHealth::check_space`] first, and it refuses while the
//!   filesystem has less than a reserve left: the node answers `RESOURCE_EXHAUSTED`,
//!   keeps serving reads, and takes writes again as soon as space is freed.
//! - **Fail-stop.** A failed flush means writes the node was about to acknowledge may
//!   not be durable, and sled refuses every write after an I/O error. The store latches
//!   the failure ([`StoreHealth::failure`]): every later flush fails at once, and the
//!   node, watching the latch, exits so a supervisor restarts it on a reopened store.
//! - **Failpoints**, read at open, for fault tests only: while a file exists at
//!   `LARDER_FAILPOINT_FLUSH=<path>`, flushes fail as if the disk returned EIO; while one
//!   exists at `LARDER_FAILPOINT_STALL_WRITES=<path>`, writers that call
//!   [`StoreHealth::stall_point`] wait (a disk that stopped answering, or a process
//!   about to crash before its write is durable).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::StoreError;

/// How long a free-space reading is reused.
const SPACE_RECHECK: Duration = Duration::from_millis(100);
const FLUSH_FAILPOINT_ENV: &str = "LARDER_FAILPOINT_FLUSH";
const STALL_FAILPOINT_ENV: &str = "LARDER_FAILPOINT_STALL_WRITES";
/// How often a stalled writer looks whether the stall failpoint is still armed.
const STALL_POLL: Duration = Duration::from_millis(5);

pub struct StoreHealth {
    path: PathBuf,
    min_free_bytes: AtomicU64,
    /// Free bytes at the last reading, and when it was taken (ms since `epoch`).
    free_bytes: AtomicU64,
    read_at_ms: AtomicU64,
    epoch: Instant,
    failure: watch::Sender<Option<String>>,
    flush_failpoint: Mutex<Option<PathBuf>>,
    stall_failpoint: Option<PathBuf>,
    /// Called when a write is refused for space: the write-ahead log can give back
    /// what it holds by checkpointing.
    low_space: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl StoreHealth {
    pub(crate) fn new(path: &Path) -> StoreHealth {
        StoreHealth {
            path: path.to_path_buf(),
            min_free_bytes: AtomicU64::new(0),
            free_bytes: AtomicU64::new(u64::MAX),
            read_at_ms: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            failure: watch::channel(None).0,
            flush_failpoint: Mutex::new(std::env::var_os(FLUSH_FAILPOINT_ENV).map(PathBuf::from)),
            stall_failpoint: std::env::var_os(STALL_FAILPOINT_ENV).map(PathBuf::from),
            low_space: OnceLock::new(),
        }
    }

    /// Writes are refused while fewer than `bytes` are free (0: never).
    pub fn set_min_free_bytes(&self, bytes: u64) {
        self.min_free_bytes.store(bytes, Ordering::Relaxed);
        self.read_at_ms.store(u64::MAX, Ordering::Relaxed);
    }

    /// `Err(DiskFull)` while the filesystem holding the store has less free space than
    /// the reserve; cheap (one `statvfs` per 100 ms at most).
    pub fn check_space(&self) -> Result<(), StoreError> {
        let min = self.min_free_bytes.load(Ordering::Relaxed);
        if min == 0 {
            return Ok(());
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let read_at = self.read_at_ms.load(Ordering::Relaxed);
        let free = if read_at == u64::MAX
            || now.saturating_sub(read_at) >= SPACE_RECHECK.as_millis() as u64
        {
            let free = free_bytes(&self.path).unwrap_or(u64::MAX);
            self.free_bytes.store(free, Ordering::Relaxed);
            self.read_at_ms.store(now, Ordering::Relaxed);
            free
        } else {
            self.free_bytes.load(Ordering::Relaxed)
        };
        if free < min {
            if let Some(low_space) = self.low_space.get() {
                low_space();
            }
            return Err(StoreError::DiskFull {
                free_bytes: free,
                min_free_bytes: min,
            });
        }
        Ok(())
    }

    /// What to call when a write is refused for space (set once, at open).
    pub(crate) fn on_low_space(&self, call: impl Fn() + Send + Sync + 'static) {
        let _ = self.low_space.set(Box::new(call));
    }

    /// The storage failure that stopped this store, once there is one.
    pub fn failure(&self) -> watch::Receiver<Option<String>> {
        self.failure.subscribe()
    }

    pub(crate) fn failed(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    pub(crate) fn record_failure(&self, reason: &str) {
        if self.failed().is_none() {
            tracing::error!(path = %self.path.display(), error = reason, "storage failed; this store acknowledges nothing more");
            self.failure.send_replace(Some(reason.to_string()));
        }
    }

    /// Flushes fail while a file exists at `path` (as `LARDER_FAILPOINT_FLUSH` does).
    pub fn set_flush_failpoint(&self, path: Option<PathBuf>) {
        *self
            .flush_failpoint
            .lock()
            .expect("failpoint lock: no panics under it") = path;
    }

    /// Waits while the stall failpoint is armed (returns at once when it is not set).
    pub async fn stall_point(&self) {
        let Some(path) = &self.stall_failpoint else {
            return;
        };
        while path.exists() {
            tokio::time::sleep(STALL_POLL).await;
        }
    }

    /// Whether the flush failpoint is armed now.
    pub(crate) fn flush_should_fail(&self) -> bool {
        self.flush_failpoint
            .lock()
            .expect("failpoint lock: no panics under it")
            .as_ref()
            .is_some_and(|path| path.exists())
    }
}

// The statvfs field types differ in width across platforms.
#[allow(clippy::useless_conversion)]
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    Some(u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size())))
}

#[cfg(test)]
mod tests {
    use crate::Store;

    /// The fault tests' failpoint: armed only while its file exists. (What a failed flush
    /// does next, on either engine, is in tests/conformance.)
    #[tokio::test]
    async fn the_flush_failpoint_fails_flushes_while_its_file_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("db")).expect("open");
        let trigger = dir.path().join("fail");
        store.health().set_flush_failpoint(Some(trigger.clone()));
        store.flush().await.expect("not armed yet");
        std::fs::write(&trigger, b"").expect("arm");
        let err = store.flush().await.expect_err("armed");
        assert!(err.to_string().contains("simulated EIO"), "{err}");
    }

    /// sled only: a `MemoryDisk` has no filesystem to measure.
    #[test]
    fn writes_are_refused_below_the_free_space_reserve() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.health().check_space().expect("no reserve set");
        store.health().set_min_free_bytes(u64::MAX);
        let err = store
            .health()
            .check_space()
            .expect_err("never that much free");
        assert!(
            err.to_string().contains("limits.disk_free_min_bytes"),
            "{err}"
        );
        store.health().set_min_free_bytes(1);
        store.health().check_space().expect("a byte is free");
    }
}
