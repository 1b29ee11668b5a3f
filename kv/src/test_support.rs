//! Helpers of the crate's unit tests: entries, and keyspaces in memory.

use larder_store::{Batch, MemoryDisk, Store, codec};

use crate::keyspace::{Keyspace, entry_key, origin_key};
use crate::{Entry, Namespace, NodeId, Version};

/// A live entry written by `origin` as its write `seq`, stamped at `physical_ms`.
pub fn entry(origin: u64, seq: u64, physical_ms: u64, value: &str) -> Entry {
    Entry {
        value: value.as_bytes().to_vec(),
        metadata: Vec::new(),
        expires_at_ms: None,
        version: Version {
            physical_ms,
            logical: 0,
            origin: NodeId(origin),
        },
        seq,
        tombstone: false,
    }
}

/// An empty keyspace on a fresh memory disk.
pub fn keyspace() -> Keyspace {
    let store = Store::open_memory(&MemoryDisk::new()).expect("memory store");
    Keyspace::open(store).expect("keyspace")
}

/// Stores `entry` as the current entry of `key`, with its origin index row.
pub fn store_entry(keyspace: &Keyspace, namespace: &Namespace, key: &[u8], entry: &Entry) {
    let mut batch = Batch::default();
    batch.insert(origin_key(namespace, entry.version.origin, entry.seq), key);
    batch.insert(
        entry_key(namespace, key),
        codec::encode(entry).expect("encode"),
    );
    keyspace.apply(batch).expect("apply");
}
