use std::ops::RangeBounds;

use crate::StoreError;

/// An ordered keyspace. Keys sort by bytes.
#[derive(Clone)]
pub struct Tree {
    tree: sled::Tree,
}

/// Writes applied to one [`Tree`] atomically: after a crash either all or none are present.
#[derive(Default)]
pub struct Batch {
    batch: sled::Batch,
}

impl Batch {
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.batch.insert(key.as_ref(), value.as_ref());
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.batch.remove(key.as_ref());
    }
}

type Pair = (Vec<u8>, Vec<u8>);

fn pair(item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Pair, StoreError> {
    let (k, v) = item?;
    Ok((k.to_vec(), v.to_vec()))
}

impl Tree {
    pub(crate) fn new(tree: sled::Tree) -> Tree {
        Tree { tree }
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key.as_ref())?.map(|v| v.to_vec()))
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StoreError> {
        self.tree.insert(key.as_ref(), value.as_ref())?;
        Ok(())
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), StoreError> {
        self.tree.remove(key.as_ref())?;
        Ok(())
    }

    pub fn apply_batch(&self, batch: Batch) -> Result<(), StoreError> {
        self.tree.apply_batch(batch.batch)?;
        Ok(())
    }

    /// Entries whose keys fall in `range`, in key order.
    pub fn range<K, R>(&self, range: R) -> impl DoubleEndedIterator<Item = Result<Pair, StoreError>>
    where
        K: AsRef<[u8]>,
        R: RangeBounds<K>,
    {
        self.tree.range(range).map(pair)
    }

    /// Entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl DoubleEndedIterator<Item = Result<Pair, StoreError>> {
        self.tree.scan_prefix(prefix.as_ref()).map(pair)
    }

    pub fn first(&self) -> Result<Option<Pair>, StoreError> {
        Ok(self.tree.first()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    pub fn last(&self) -> Result<Option<Pair>, StoreError> {
        Ok(self.tree.last()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    pub fn clear(&self) -> Result<(), StoreError> {
        self.tree.clear()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn batch_and_range_in_key_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let tree = store.tree("t").expect("tree");
        let mut batch = super::Batch::default();
        for i in [3u64, 1, 2, 5] {
            batch.insert(i.to_be_bytes(), i.to_string());
        }
        batch.remove(5u64.to_be_bytes());
        tree.apply_batch(batch).expect("batch");
        let keys: Vec<u64> = tree
            .range(2u64.to_be_bytes()..)
            .map(|r| {
                let (k, _) = r.expect("row");
                u64::from_be_bytes(k.try_into().expect("8 bytes"))
            })
            .collect();
        assert_eq!(keys, vec![2, 3]);
        let last = tree.last().expect("last").expect("some");
        assert_eq!(last.1, b"3".to_vec());
    }
}
