use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::flusher::Flusher;
use crate::memory::{MemoryDisk, MemoryTree};
use crate::wal::Wal;
use crate::{StoreError, StoreHealth, Tree};

/// Version of the on-disk layout written by this build. Bump it when the layout changes
/// and teach [`Store::open`] to migrate from the previous one.
///
/// 2: a write-ahead log (`wal/`) holds writes sled has not made durable, so a build
/// that does not read it must not open the store. A version 1 store has no log and
/// opens as it is.
pub const FORMAT_VERSION: u32 = 2;

const META_TREE: &str = "__larder_meta";
/// Attempts (50 ms apart) to take the store's lock while a previous in-process handle
/// lets go of it.
const LOCK_RETRIES_MAX: u32 = 40;
const FORMAT_KEY: &[u8] = b"format_version";

/// One database directory (or, in simulation tests, one [`MemoryDisk`]).
#[derive(Clone)]
pub struct Store {
    engine: Engine,
    path: PathBuf,
    health: Arc<StoreHealth>,
}

#[derive(Clone)]
enum Engine {
    Sled {
        db: sled::Db,
        wal: Arc<Wal>,
        flusher: Flusher,
    },
    /// The handle of one generation of the disk: dead after the disk's next crash.
    Memory { disk: MemoryDisk, generation: u64 },
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `path` and checks its format version.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let config = sled::Config::new()
            .path(&path)
            // Every durability point flushes explicitly (see `flush`); sled's own
            // background flush every 500 ms adds nothing but periodic stalls.
            .flush_every_ms(None);
        let mut attempt = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                // A handle dropped a moment ago in this process releases sled's file lock
                // only when its background threads finish: wait a little for it.
                // sled reports it as `Other` with this text.
                Err(sled::Error::Io(err))
                    if err.to_string().starts_with("could not acquire lock")
                        && attempt < LOCK_RETRIES_MAX =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(err) => {
                    return Err(StoreError::Open {
                        path: path.clone(),
                        source: std::io::Error::other(err.to_string()),
                    });
                }
            }
        };
        // Refuse a newer layout before replaying a log this build may not understand.
        check_format_version(&path, db.open_tree(META_TREE)?.get(FORMAT_KEY)?)?;
        let wal = Wal::open(&path, db.clone())?;
        let health = Arc::new(StoreHealth::new(&path));
        let log = Arc::downgrade(&wal);
        health.on_low_space(move || {
            if let Some(log) = log.upgrade() {
                log.checkpoint_soon();
            }
        });
        let store = Store {
            engine: Engine::Sled {
                db,
                wal,
                flusher: Flusher::new(),
            },
            health,
            path,
        };
        store.check_format()?;
        Ok(store)
    }

    /// Opens the store kept on a simulated disk (simulation tests): what it holds is
    /// what was there when the disk's last process crashed or stopped.
    pub fn open_memory(disk: &MemoryDisk) -> Result<Store, StoreError> {
        let path = PathBuf::from("<memory>");
        let store = Store {
            engine: Engine::Memory {
                disk: disk.clone(),
                generation: disk.generation(),
            },
            health: Arc::new(StoreHealth::new(&path)),
            path,
        };
        store.check_format()?;
        Ok(store)
    }

    /// Records this build's format version in a store that has none or an older one.
    fn check_format(&self) -> Result<(), StoreError> {
        let meta = self.tree(META_TREE)?;
        let found = check_format_version(&self.path, meta.get(FORMAT_KEY)?)?;
        if found != Some(FORMAT_VERSION) {
            meta.insert(FORMAT_KEY, FORMAT_VERSION.to_be_bytes())?;
            self.flush_blocking()?;
        }
        Ok(())
    }

    /// Directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (or creates) the named tree.
    pub fn tree(&self, name: &str) -> Result<Tree, StoreError> {
        match &self.engine {
            Engine::Sled { db, wal, .. } => Ok(Tree::sled(db.open_tree(name)?, name, wal.clone())),
            Engine::Memory { disk, generation } => Ok(Tree::memory(MemoryTree::new(
                disk.clone(),
                *generation,
                name,
            ))),
        }
    }

    /// Makes every write issued before this call durable.
    ///
    /// Writes out the write-ahead log and `fdatasync`s it (see `wal`) on the blocking
    /// pool, shared: concurrent callers wait for one flush that started after their call
    /// instead of each queueing their own (group commit). sled itself is not flushed
    /// here; its log makes it durable at checkpoints.
    ///
    /// A failure is final (see [`StoreHealth`]): it is latched, and every later flush
    /// fails at once.
    pub async fn flush(&self) -> Result<(), StoreError> {
        if let Some(reason) = self.health.failed() {
            return Err(StoreError::Failed(reason));
        }
        let result = match &self.engine {
            Engine::Sled { wal, flusher, .. } => {
                let (wal, health) = (wal.clone(), self.health.clone());
                flusher
                    .flush(move || {
                        if health.flush_should_fail() {
                            return Err(StoreError::Io(std::io::Error::other(
                                "flush failpoint armed: simulated EIO",
                            )));
                        }
                        wal.sync()
                    })
                    .await
            }
            // In memory a flush is instant: no blocking pool, which would also take the
            // simulation's scheduling out of its hands.
            Engine::Memory { disk, generation } => disk.flush(*generation),
        };
        if let Err(err) = &result {
            self.health.record_failure(&err.to_string());
        }
        result
    }

    #[cfg(test)]
    pub(crate) fn wal(&self) -> Option<&Arc<Wal>> {
        match &self.engine {
            Engine::Sled { wal, .. } => Some(wal),
            Engine::Memory { .. } => None,
        }
    }

    /// Free space, failures and the fault-test failpoint of this store.
    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// Blocking form of [`Store::flush`], for shutdown paths and synchronous code.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sled { wal, .. } => wal.sync(),
            Engine::Memory { disk, generation } => disk.flush(*generation),
        }
    }
}

/// The format version a store records (None: a new store), if this build can open it.
fn check_format_version(
    path: &Path,
    raw: Option<impl AsRef<[u8]>>,
) -> Result<Option<u32>, StoreError> {
    let Some(raw) = raw else { return Ok(None) };
    let raw = raw.as_ref();
    let bytes: [u8; 4] = raw.try_into().map_err(|_| {
        StoreError::Corrupted(format!("format version record has {} bytes", raw.len()))
    })?;
    match u32::from_be_bytes(bytes) {
        found if found <= FORMAT_VERSION => Ok(Some(found)),
        found => Err(StoreError::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    //! What only sled has; the behaviour both engines share is in tests/conformance.
    use super::*;

    #[test]
    fn reopens_right_after_a_handle_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0u32..20 {
            let store = Store::open(dir.path()).expect("open while the last handle lets go");
            store
                .tree("t")
                .expect("tree")
                .insert(i.to_be_bytes(), b"v")
                .expect("insert");
            store.flush_blocking().expect("flush");
        }
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.tree("t").expect("tree").len(), 20);
    }

    /// Writes a newer format version, then opens again with `open`.
    fn refuses_a_newer_format(open: impl Fn() -> Result<Store, StoreError>) {
        {
            let store = open().expect("open");
            let meta = store.tree(META_TREE).expect("meta");
            meta.insert(FORMAT_KEY, (FORMAT_VERSION + 1).to_be_bytes())
                .expect("insert");
            store.flush_blocking().expect("flush");
        }
        let err = open().expect_err("newer format must be refused");
        assert!(
            matches!(err, StoreError::UnsupportedFormat { found, .. } if found == FORMAT_VERSION + 1)
        );
    }

    #[test]
    fn sled_refuses_a_newer_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        refuses_a_newer_format(|| Store::open(dir.path()));
    }

    #[test]
    fn memory_refuses_a_newer_format() {
        let disk = MemoryDisk::new();
        refuses_a_newer_format(|| Store::open_memory(&disk));
    }
}
