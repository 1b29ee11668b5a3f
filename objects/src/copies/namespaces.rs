//! Copies of deleted namespaces: finding them on this node and removing them.
//!
//! A namespace deleted (or deleted and created again) leaves its objects' copies
//! stored under its old incarnation, which no call resolves to any more: they are only
//! garbage, removed in bounded steps by the namespace sweep.

use std::collections::BTreeSet;

use larder_directory::{Namespace, ObjectKey};
use larder_store::{Batch, StoreError, prefix_end};

use super::records::{ALL_TAGS, namespace_prefix, object_prefix, parse_object_prefix};
use super::{ObjectStore, corrupted, stripe};

impl ObjectStore {
    /// The namespace incarnations with any record stored on this node: one seek per
    /// incarnation and record kind, however many objects each holds.
    pub fn stored_namespaces(&self) -> Result<BTreeSet<Namespace>, StoreError> {
        let mut found = BTreeSet::new();
        for tag in ALL_TAGS {
            let end = [tag + 1];
            let mut start = vec![tag];
            while let Some(row) = self.tree.range(start.clone()..end.to_vec()).next() {
                let (raw_key, _) = row?;
                let (key, _) = parse_object_prefix(&raw_key)
                    .ok_or_else(|| corrupted("unreadable object record key"))?;
                start = prefix_end(&namespace_prefix(tag, &key.namespace))
                    .unwrap_or_else(|| end.to_vec());
                found.insert(key.namespace);
            }
        }
        Ok(found)
    }

    /// Removes every record of up to `max` objects of the incarnation `namespace`,
    /// each object as one batch under its lock, flushed once at the end. Returns how
    /// many it removed: fewer than `max` when none is left.
    pub async fn drop_namespace(
        &self,
        namespace: &Namespace,
        max: usize,
    ) -> Result<usize, StoreError> {
        let objects = self.objects_of(namespace, max)?;
        for key in &objects {
            let _guard = self.locks[stripe(key)].lock().await;
            let mut batch = Batch::default();
            for tag in ALL_TAGS {
                self.clear(&mut batch, tag, key)?;
            }
            self.tree.apply_batch(batch)?;
            self.alarms.set(key, None);
        }
        if !objects.is_empty() {
            self.store.flush().await?;
        }
        Ok(objects.len())
    }

    /// Up to `max` objects of `namespace` with any record here (seeking from object to
    /// object, not reading every record).
    fn objects_of(
        &self,
        namespace: &Namespace,
        max: usize,
    ) -> Result<BTreeSet<ObjectKey>, StoreError> {
        let mut objects = BTreeSet::new();
        // Every kind of record: a crash or a late write can leave some without a meta.
        for tag in ALL_TAGS {
            let base = namespace_prefix(tag, namespace);
            let Some(end) = prefix_end(&base) else {
                continue;
            };
            let mut start = base;
            while objects.len() < max {
                let Some(row) = self.tree.range(start.clone()..end.clone()).next() else {
                    break;
                };
                let (raw_key, _) = row?;
                let (key, _) = parse_object_prefix(&raw_key)
                    .ok_or_else(|| corrupted("unreadable object record key"))?;
                start = prefix_end(&object_prefix(tag, &key)).unwrap_or_else(|| end.clone());
                objects.insert(key);
            }
        }
        Ok(objects)
    }
}
