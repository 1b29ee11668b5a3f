//! The in-memory engine, for simulation tests: a "disk" that keeps only what was flushed.
//!
//! A [`MemoryDisk`] outlives the simulated processes that open it. Writes land in its live
//! contents at once (as sled's do in its page cache) and are remembered as pending until
//! the next flush makes them durable. [`MemoryDisk::crash`] models the machine dying: of
//! the pending writes only the first `keep` survive (a real disk may have written some
//! unflushed data, in order, and never half a batch), the live contents fall back to
//! what is durable, and every handle opened before the crash stops working, so nothing
//! a crashed process still holds can write after the restart.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::StoreError;

type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;
pub(crate) type Pair = (Vec<u8>, Vec<u8>);
/// One atomic write: a tree and its changes (`None` removes the key).
type Write = (String, Vec<(Vec<u8>, Option<Vec<u8>>)>);

/// A simulated disk shared by the successive processes of one simulated host.
#[derive(Clone, Default)]
pub struct MemoryDisk {
    state: Arc<Mutex<Disk>>,
}

#[derive(Default)]
struct Disk {
    durable: Contents,
    live: Contents,
    /// Writes since the last flush, oldest first.
    pending: Vec<Write>,
    /// Bumped by every crash: handles of an older generation refuse to work.
    generation: u64,
}

impl std::fmt::Debug for MemoryDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let disk = self.lock();
        f.debug_struct("MemoryDisk")
            .field("generation", &disk.generation)
            .field("pending", &disk.pending.len())
            .finish()
    }
}

impl MemoryDisk {
    pub fn new() -> MemoryDisk {
        MemoryDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.state
            .lock()
            .expect("memory disk: no code panics under its lock")
    }

    /// Writes made since the last flush (each batch counts once).
    pub fn pending_writes(&self) -> usize {
        self.lock().pending.len()
    }

    /// The machine dies: the first `keep` pending writes reach the disk, the rest are
    /// lost, and every handle opened so far is dead.
    pub fn crash(&self, keep: usize) {
        let mut disk = self.lock();
        let pending = std::mem::take(&mut disk.pending);
        for write in pending.into_iter().take(keep) {
            apply(&mut disk.durable, write);
        }
        disk.live = disk.durable.clone();
        disk.generation += 1;
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The disk, locked, if `generation` is still the current one.
    fn open(&self, generation: u64) -> Result<MutexGuard<'_, Disk>, StoreError> {
        let disk = self.lock();
        if disk.generation != generation {
            return Err(StoreError::Io(std::io::Error::other(
                "this store handle was opened before a simulated crash",
            )));
        }
        Ok(disk)
    }

    pub(crate) fn flush(&self, generation: u64) -> Result<(), StoreError> {
        let mut disk = self.open(generation)?;
        let pending = std::mem::take(&mut disk.pending);
        for write in pending {
            apply(&mut disk.durable, write);
        }
        Ok(())
    }
}

fn apply(contents: &mut Contents, (tree, changes): Write) {
    let tree = contents.entry(tree).or_default();
    for (key, value) in changes {
        match value {
            Some(value) => tree.insert(key, value),
            None => tree.remove(&key),
        };
    }
}

/// One tree of a [`MemoryDisk`], as seen by the handle that opened it.
#[derive(Clone)]
pub(crate) struct MemoryTree {
    disk: MemoryDisk,
    generation: u64,
    name: String,
}

impl MemoryTree {
    pub(crate) fn new(disk: MemoryDisk, generation: u64, name: &str) -> MemoryTree {
        MemoryTree {
            disk,
            generation,
            name: name.to_string(),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&BTreeMap<Vec<u8>, Vec<u8>>) -> T) -> Result<T, StoreError> {
        let disk = self.disk.open(self.generation)?;
        let empty = BTreeMap::new();
        Ok(f(disk.live.get(&self.name).unwrap_or(&empty)))
    }

    pub(crate) fn write(&self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        let mut disk = self.disk.open(self.generation)?;
        let write = (self.name.clone(), changes);
        apply(&mut disk.live, write.clone());
        disk.pending.push(write);
        Ok(())
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tree| tree.get(key).cloned())
    }

    /// Entries in `(start, end)`, in key order (empty when the bounds are crossed,
    /// where `BTreeMap::range` would panic).
    pub(crate) fn range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> Result<Vec<Pair>, StoreError> {
        let crossed = match (start, end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
                s >= e
            }
            _ => false,
        };
        if crossed {
            return Ok(Vec::new());
        }
        self.read(|tree| {
            tree.range::<[u8], _>((start, end))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Pair>, StoreError> {
        self.read(|tree| {
            tree.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    pub(crate) fn first(&self) -> Result<Option<Pair>, StoreError> {
        self.read(|tree| tree.first_key_value().map(|(k, v)| (k.clone(), v.clone())))
    }

    pub(crate) fn last(&self) -> Result<Option<Pair>, StoreError> {
        self.read(|tree| tree.last_key_value().map(|(k, v)| (k.clone(), v.clone())))
    }

    pub(crate) fn len(&self) -> usize {
        self.read(BTreeMap::len).unwrap_or(0)
    }

    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        let keys = self.read(|tree| tree.keys().cloned().collect::<Vec<_>>())?;
        self.write(keys.into_iter().map(|k| (k, None)).collect())
    }
}

#[cfg(test)]
mod tests {
    //! What only the memory engine has; what a crash keeps is in tests/conformance.
    use crate::{Batch, MemoryDisk, Store};

    #[test]
    fn pending_writes_count_batches_until_a_flush() {
        let disk = MemoryDisk::new();
        let store = Store::open_memory(&disk).expect("open");
        let tree = store.tree("t").expect("tree");
        assert_eq!(
            disk.pending_writes(),
            0,
            "opening flushed the format record"
        );
        tree.insert(b"a", b"1").expect("insert");
        let mut batch = Batch::default();
        batch.insert(b"b", b"2");
        batch.remove(b"a");
        tree.apply_batch(batch).expect("batch");
        tree.clear().expect("clear");
        assert_eq!(disk.pending_writes(), 3, "a batch and a clear count once");
        store.flush_blocking().expect("flush");
        assert_eq!(disk.pending_writes(), 0);
    }

    #[test]
    fn a_handle_from_before_a_crash_is_dead() {
        let disk = MemoryDisk::new();
        let store = Store::open_memory(&disk).expect("open");
        let tree = store.tree("t").expect("tree");
        tree.insert(b"a", b"1").expect("insert");
        store.flush_blocking().expect("flush");
        disk.crash(0);
        assert!(tree.get(b"a").is_err(), "reads fail");
        assert!(
            tree.range::<&[u8], _>(..).any(|row| row.is_err()),
            "scans fail"
        );
        assert!(tree.insert(b"b", b"2").is_err(), "writes fail");
        assert!(store.tree("t").expect("a tree").first().is_err());
        assert!(store.flush_blocking().is_err(), "flushes fail");
        let store = Store::open_memory(&disk).expect("reopen");
        let tree = store.tree("t").expect("tree");
        assert_eq!(tree.get(b"a").expect("get"), Some(b"1".to_vec()));
        assert_eq!(
            tree.get(b"b").expect("get"),
            None,
            "the dead handle wrote nothing"
        );
    }
}
