//! One behaviour suite for both storage engines: every test body is written once, generic
//! over [`Engine`], and `conformance!` runs it as `sled::<name>` and `memory::<name>`.
//!
//! Layout:
//! - `point`: key order, get / insert / remove, first / last / len / clear, trees kept apart;
//! - `batches`: a batch applies whole, later changes inside it win;
//! - `scans`: ranges and prefix scans, forwards, backwards and from both ends at once;
//! - `durability`: what a flush makes durable, what a restart keeps, a failed flush;
//! - `model`: property tests — any sequence of writes, flushes and restarts agrees with a
//!   `BTreeMap` model on every read.
//!
//! What only one engine has is tested beside that engine: sled's on-disk format check,
//! its lock hand-over and its free-space reserve (a `MemoryDisk` has no filesystem);
//! the memory engine's dead handles after a crash and its count of pending writes.

mod batches;
mod durability;
mod model;
mod point;
mod scans;

use std::path::PathBuf;

use larder_store::{MemoryDisk, Store, Tree};

/// A store under test on a disk of its own, and what a restart of its process keeps.
pub trait Engine: Sized {
    /// How many cases each property test runs (a sled restart costs a reopen).
    const PROPTEST_CASES: u32;

    /// A fresh, empty store.
    fn new() -> Self;

    /// The current process's handle.
    fn store(&self) -> Store;

    /// The process stops and a new one opens the store. Every [`Tree`] of the old
    /// handle must be dropped first (sled's file lock waits for them).
    /// `unflushed_kept` is how many unflushed writes a simulated crash lets reach the
    /// disk; the answer says which of them the engine promises survived.
    fn restart(&mut self, unflushed_kept: usize) -> Survivors;

    /// Makes this handle's flushes fail from now on.
    fn break_flushes(&self);

    /// Lets flushes succeed again, as far as the disk goes.
    fn heal_flushes(&self);
}

/// Which unflushed writes (a batch counts as one) survived a restart, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survivors {
    /// Exactly the first `n` (the memory engine's crash keeps what it is told).
    Exactly(usize),
    /// The first `n` for some `n`, never part of a batch (sled decides; dropping its last
    /// handle flushes, so in this process it keeps them all).
    SomePrefix,
}

/// sled in a temporary directory.
pub struct SledEngine {
    dir: tempfile::TempDir,
    store: Option<Store>,
}

impl SledEngine {
    fn path(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn flush_failpoint(&self) -> PathBuf {
        self.dir.path().join("fail-flushes")
    }
}

impl Engine for SledEngine {
    const PROPTEST_CASES: u32 = 64;

    fn new() -> SledEngine {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("db")).expect("open sled");
        SledEngine {
            dir,
            store: Some(store),
        }
    }

    fn store(&self) -> Store {
        self.store.clone().expect("open")
    }

    fn restart(&mut self, _unflushed_kept: usize) -> Survivors {
        self.store = None;
        self.store = Some(Store::open(self.path()).expect("reopen sled"));
        Survivors::SomePrefix
    }

    fn break_flushes(&self) {
        let failpoint = self.flush_failpoint();
        std::fs::write(&failpoint, b"").expect("arm the flush failpoint");
        self.store().health().set_flush_failpoint(Some(failpoint));
    }

    fn heal_flushes(&self) {
        std::fs::remove_file(self.flush_failpoint()).expect("disarm the flush failpoint");
    }
}

/// A [`MemoryDisk`]; a restart is a crash of the simulated machine.
pub struct MemoryEngine {
    disk: MemoryDisk,
    store: Store,
}

impl Engine for MemoryEngine {
    const PROPTEST_CASES: u32 = 256;

    fn new() -> MemoryEngine {
        let disk = MemoryDisk::new();
        let store = Store::open_memory(&disk).expect("open memory");
        MemoryEngine { disk, store }
    }

    fn store(&self) -> Store {
        self.store.clone()
    }

    fn restart(&mut self, unflushed_kept: usize) -> Survivors {
        // Opening the store flushes its format record: count what was pending before.
        let pending = self.disk.pending_writes();
        self.disk.crash(unflushed_kept);
        self.store = Store::open_memory(&self.disk).expect("reopen memory");
        Survivors::Exactly(unflushed_kept.min(pending))
    }

    /// A crash: the handle is dead, so its flushes fail (and stay failed).
    fn break_flushes(&self) {
        self.disk.crash(0);
    }

    /// Nothing to heal: a handle from before a crash stays dead.
    fn heal_flushes(&self) {}
}

/// Instantiates each generic test body once per engine.
macro_rules! conformance {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sled {
            $(#[test] fn $test() { crate::$module::$test::<crate::SledEngine>() })*
        }
        mod memory {
            $(#[test] fn $test() { crate::$module::$test::<crate::MemoryEngine>() })*
        }
    };
}

conformance! {
    point::keys_sort_by_bytes,
    point::get_insert_overwrite_and_remove,
    point::first_last_len_and_clear,
    point::trees_are_kept_apart,
    batches::a_batch_applies_whole,
    batches::later_changes_in_a_batch_win,
    scans::ranges_honour_every_kind_of_bound,
    scans::crossed_and_empty_ranges_are_empty,
    scans::prefix_scans_stop_at_the_prefix,
    scans::scans_run_backwards_and_from_both_ends,
    durability::a_flush_makes_every_earlier_write_durable,
    durability::a_restart_keeps_flushed_writes_and_a_prefix_of_whole_batches,
    durability::flushes_from_many_tasks_complete,
    durability::a_failed_flush_is_final_and_announced,
    model::reads_agree_with_a_btreemap,
    model::restarts_keep_flushed_writes_and_a_prefix_of_whole_batches,
}

/// Key-value pairs as stored.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Every row of an iterator, failing the test on an error.
pub fn rows(
    iter: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), larder_store::StoreError>>,
) -> Pairs {
    iter.map(|row| row.expect("row")).collect()
}

/// Every row of a tree, in key order.
pub fn contents(tree: &Tree) -> Pairs {
    rows(tree.range::<&[u8], _>(..))
}

/// Runs a future to its end on a runtime of its own (sled's flush uses the blocking pool).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}
