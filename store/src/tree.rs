use std::ops::{Bound, RangeBounds};

use std::sync::Arc;

use crate::StoreError;
use crate::memory::{MemoryTree, Pair};
use crate::wal::{Change, Op, Wal, apply_changes};

/// An ordered keyspace. Keys sort by bytes.
#[derive(Clone)]
pub struct Tree {
    engine: TreeEngine,
}

#[derive(Clone)]
enum TreeEngine {
    /// Changes go through the store's write-ahead log, named by the tree's name.
    Sled {
        tree: sled::Tree,
        name: Arc<str>,
        wal: Arc<Wal>,
    },
    Memory(MemoryTree),
}

/// Writes applied to one [`Tree`] atomically: after a crash either all or none are present.
#[derive(Default)]
pub struct Batch {
    /// `None` removes the key. Held as sled's own buffers, so that handing them to sled
    /// copies nothing more than sled's `Batch` would have (values reach MiBs).
    changes: Vec<(sled::IVec, Option<sled::IVec>)>,
}

impl Batch {
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.changes
            .push((key.as_ref().into(), Some(value.as_ref().into())));
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.changes.push((key.as_ref().into(), None));
    }
}

fn pair(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Pair, StoreError> {
    let (k, v) = item?;
    Ok((k.to_vec(), v.to_vec()))
}

/// Rows of a range or prefix scan, from either engine.
// A scan lives on the caller's stack for one loop: its size is no concern, and boxing the
// sled iterator would cost an allocation per scan on the hot path.
#[allow(clippy::large_enum_variant)]
enum Rows {
    Sled(sled::Iter),
    /// The memory engine copies the rows out (or the error that stopped it).
    Memory(std::vec::IntoIter<Result<Pair, StoreError>>),
}

impl Rows {
    fn memory(rows: Result<Vec<Pair>, StoreError>) -> Rows {
        let rows = match rows {
            Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(err) => vec![Err(err)],
        };
        Rows::Memory(rows.into_iter())
    }
}

impl Iterator for Rows {
    type Item = Result<Pair, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Rows::Sled(iter) => iter.next().map(pair),
            Rows::Memory(iter) => iter.next(),
        }
    }
}

impl DoubleEndedIterator for Rows {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Rows::Sled(iter) => iter.next_back().map(pair),
            Rows::Memory(iter) => iter.next_back(),
        }
    }
}

impl Tree {
    pub(crate) fn sled(tree: sled::Tree, name: &str, wal: Arc<Wal>) -> Tree {
        Tree {
            engine: TreeEngine::Sled {
                tree,
                name: name.into(),
                wal,
            },
        }
    }

    /// Logs `changes` and applies them to sled atomically.
    fn write_sled(
        tree: &sled::Tree,
        name: &str,
        wal: &Wal,
        changes: &[(sled::IVec, Option<sled::IVec>)],
    ) -> Result<(), StoreError> {
        let logged = changes
            .iter()
            .map(|(key, value)| Change {
                key,
                value: value.as_deref(),
            })
            .collect();
        wal.write(name, Op::Batch(logged), |atomic| {
            let owned = changes
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()));
            apply_changes(tree, owned, atomic)
        })
    }

    pub(crate) fn memory(tree: MemoryTree) -> Tree {
        Tree {
            engine: TreeEngine::Memory(tree),
        }
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.engine {
            TreeEngine::Sled { tree, .. } => Ok(tree.get(key.as_ref())?.map(|v| v.to_vec())),
            TreeEngine::Memory(tree) => tree.get(key.as_ref()),
        }
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        match &self.engine {
            TreeEngine::Sled { tree, name, wal } => Tree::write_sled(
                tree,
                name,
                wal,
                &[(key.as_ref().into(), Some(value.as_ref().into()))],
            ),
            TreeEngine::Memory(tree) => {
                tree.write(vec![(key.as_ref().to_vec(), Some(value.as_ref().to_vec()))])
            }
        }
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), StoreError> {
        match &self.engine {
            TreeEngine::Sled { tree, name, wal } => {
                Tree::write_sled(tree, name, wal, &[(key.as_ref().into(), None)])
            }
            TreeEngine::Memory(tree) => tree.write(vec![(key.as_ref().to_vec(), None)]),
        }
    }

    pub fn apply_batch(&self, batch: Batch) -> Result<(), StoreError> {
        match &self.engine {
            TreeEngine::Sled { tree, name, wal } => {
                Tree::write_sled(tree, name, wal, &batch.changes)
            }
            TreeEngine::Memory(tree) => tree.write(
                batch
                    .changes
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.map(|v| v.to_vec())))
                    .collect(),
            ),
        }
    }

    /// Entries whose keys fall in `range`, in key order.
    pub fn range<K, R>(&self, range: R) -> impl DoubleEndedIterator<Item = Result<Pair, StoreError>>
    where
        K: AsRef<[u8]>,
        R: RangeBounds<K>,
    {
        match &self.engine {
            TreeEngine::Sled { tree, .. } => Rows::Sled(tree.range(range)),
            TreeEngine::Memory(tree) => {
                fn bytes<K: AsRef<[u8]>>(bound: Bound<&K>) -> Bound<&[u8]> {
                    bound.map(|k| k.as_ref())
                }
                Rows::memory(tree.range(bytes(range.start_bound()), bytes(range.end_bound())))
            }
        }
    }

    /// Entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl DoubleEndedIterator<Item = Result<Pair, StoreError>> {
        match &self.engine {
            TreeEngine::Sled { tree, .. } => Rows::Sled(tree.scan_prefix(prefix.as_ref())),
            TreeEngine::Memory(tree) => Rows::memory(tree.scan_prefix(prefix.as_ref())),
        }
    }

    pub fn first(&self) -> Result<Option<Pair>, StoreError> {
        match &self.engine {
            TreeEngine::Sled { tree, .. } => {
                Ok(tree.first()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
            }
            TreeEngine::Memory(tree) => tree.first(),
        }
    }

    pub fn last(&self) -> Result<Option<Pair>, StoreError> {
        match &self.engine {
            TreeEngine::Sled { tree, .. } => {
                Ok(tree.last()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
            }
            TreeEngine::Memory(tree) => tree.last(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.engine {
            TreeEngine::Sled { tree, .. } => tree.len(),
            TreeEngine::Memory(tree) => tree.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.engine {
            TreeEngine::Sled { tree, .. } => tree.is_empty(),
            TreeEngine::Memory(tree) => tree.len() == 0,
        }
    }

    pub fn clear(&self) -> Result<(), StoreError> {
        match &self.engine {
            TreeEngine::Sled { tree, name, wal } => wal.write(name, Op::Clear, |_| {
                tree.clear()?;
                Ok(())
            }),
            TreeEngine::Memory(tree) => tree.clear(),
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (None: no bound):
/// the end of a prefix's range, for seeking past it.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod prefix_tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_handles_overflow() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
