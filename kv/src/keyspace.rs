//! The KV's on-disk layout, in one tree so that one batch updates entries, the origin
//! index and progress atomically.
//!
//! | key | value |
//! |---|---|
//! | `e` ns_len ns key | [`Entry`] |
//! | `o` ns_len ns origin(u64 BE) seq(u64 BE) | key: the entry this write of `origin` produced, while it is current |
//! | `m` name | progress, clock and sync metadata |
//!
//! The origin index holds exactly the current entries, keyed by the write that produced
//! them; anti-entropy and watch resume read "writes of origin O after sequence S" from it.

use larder_store::{Batch, Store, StoreError, Tree, codec, prefix_end};

use crate::{Entry, KvError, Namespace, NodeId, Version, VersionVector};

const TREE: &str = "kv";
const VECTOR_KEY: &[u8] = b"mvector";
const CLOCK_KEY: &[u8] = b"mclock";
const SYNCED_AT_KEY: &[u8] = b"msynced_at";

fn ns_prefix(tag: u8, namespace: &Namespace) -> Vec<u8> {
    let namespace = namespace.as_str();
    let mut out = Vec::with_capacity(2 + namespace.len());
    out.push(tag);
    // Namespace names are at most 64 bytes (checked by the directory).
    out.push(namespace.len() as u8);
    out.extend_from_slice(namespace.as_bytes());
    out
}

pub fn entry_key(namespace: &Namespace, key: &[u8]) -> Vec<u8> {
    let mut out = ns_prefix(b'e', namespace);
    out.extend_from_slice(key);
    out
}

pub fn origin_key(namespace: &Namespace, origin: NodeId, seq: u64) -> Vec<u8> {
    let mut out = ns_prefix(b'o', namespace);
    out.extend_from_slice(&origin.0.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// A page of entries and the key to continue after (None: the end was reached).
pub type EntryPage = (Vec<(Vec<u8>, Entry)>, Option<Vec<u8>>);
/// A page of index writes and the (origin, seq) to continue after.
pub type WritePage = (Vec<IndexedWrite>, Option<(NodeId, u64)>);
/// A page of (namespace, key, entry) and the raw key to continue after.
pub type ScanPage = (Vec<(Namespace, Vec<u8>, Entry)>, Option<Vec<u8>>);

/// A write of one origin, as read from the origin index.
#[derive(Debug, Clone)]
pub struct IndexedWrite {
    pub origin: NodeId,
    pub seq: u64,
    pub key: Vec<u8>,
    pub entry: Entry,
}

/// Read access to the KV tree, and the batch format the writer fills.
#[derive(Clone)]
pub struct Keyspace {
    store: Store,
    tree: Tree,
}

impl Keyspace {
    pub fn open(store: Store) -> Result<Keyspace, StoreError> {
        let tree = store.tree(TREE)?;
        Ok(Keyspace { store, tree })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn get(&self, namespace: &Namespace, key: &[u8]) -> Result<Option<Entry>, KvError> {
        match self.tree.get(entry_key(namespace, key))? {
            None => Ok(None),
            Some(raw) => Ok(Some(codec::decode(&raw)?)),
        }
    }

    /// Live entries under `prefix` after `start_after`, in key order: at most `limit`
    /// entries, examining at most `scan_max` stored ones (tombstones and expired entries
    /// count). Returns the page and whether the scan reached the end of the prefix.
    pub fn list(
        &self,
        namespace: &Namespace,
        prefix: &[u8],
        start_after: &[u8],
        limit: usize,
        scan_max: usize,
        now_ms: u64,
    ) -> Result<EntryPage, KvError> {
        let base = ns_prefix(b'e', namespace);
        let mut full_prefix = base.clone();
        full_prefix.extend_from_slice(prefix);
        let start = if start_after.is_empty() || start_after < prefix {
            std::ops::Bound::Included(full_prefix.clone())
        } else {
            let mut after = base.clone();
            after.extend_from_slice(start_after);
            std::ops::Bound::Excluded(after)
        };
        let end = match prefix_end(&full_prefix) {
            Some(end) => std::ops::Bound::Excluded(end),
            None => std::ops::Bound::Unbounded,
        };
        let mut page = Vec::new();
        let mut last_seen: Option<Vec<u8>> = None;
        for (scanned, row) in self.tree.range::<Vec<u8>, _>((start, end)).enumerate() {
            let (raw_key, raw) = row?;
            let user_key = raw_key[base.len()..].to_vec();
            if page.len() == limit || scanned == scan_max {
                // More follows: resume after the last key examined.
                return Ok((page, last_seen.or(Some(user_key))));
            }
            let entry: Entry = codec::decode(&raw)?;
            if entry.is_live(now_ms) {
                page.push((user_key.clone(), entry));
            }
            last_seen = Some(user_key);
        }
        Ok((page, None))
    }

    /// Current writes of namespace `namespace` from every origin, skipping those at or
    /// below `after` (per origin), in (origin, seq) order, from `(origin, seq)` cursor on.
    /// At most `limit` writes; the second value is the cursor to continue from, if any.
    pub fn writes_after(
        &self,
        namespace: &Namespace,
        after: &std::collections::BTreeMap<NodeId, u64>,
        cursor: Option<(NodeId, u64)>,
        limit: usize,
    ) -> Result<WritePage, KvError> {
        let base = ns_prefix(b'o', namespace);
        let end = prefix_end(&base).ok_or_else(|| KvError::Internal("index prefix".into()))?;
        let mut start = match cursor {
            Some((origin, seq)) => origin_key(namespace, origin, seq.saturating_add(1)),
            None => base.clone(),
        };
        let mut out = Vec::new();
        'seek: loop {
            for row in self.tree.range(start.clone()..end.clone()) {
                let (raw_key, raw_user_key) = row?;
                let tail = &raw_key[base.len()..];
                if tail.len() != 16 {
                    return Err(KvError::Internal(format!(
                        "malformed index key of {} bytes",
                        raw_key.len()
                    )));
                }
                let origin = NodeId(u64::from_be_bytes(tail[..8].try_into().expect("8 bytes")));
                let seq = u64::from_be_bytes(tail[8..].try_into().expect("8 bytes"));
                let floor = after.get(&origin).copied().unwrap_or(0);
                if seq <= floor {
                    // Skip this origin's writes the caller already has.
                    start = origin_key(namespace, origin, floor.saturating_add(1));
                    continue 'seek;
                }
                if out.len() == limit {
                    let last: &IndexedWrite = out.last().expect("limit > 0");
                    return Ok((out.clone(), Some((last.origin, last.seq))));
                }
                if let Some(entry) = self.get(namespace, &raw_user_key)?
                    && entry.version.origin == origin
                    && entry.seq == seq
                {
                    out.push(IndexedWrite {
                        origin,
                        seq,
                        key: raw_user_key,
                        entry,
                    });
                }
            }
            return Ok((out, None));
        }
    }

    /// Every stored entry of every namespace, for background collection: (namespace,
    /// key, entry), starting after `cursor`, at most `limit`.
    pub fn scan_entries(&self, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, KvError> {
        let start = match cursor {
            Some(c) => std::ops::Bound::Excluded(c),
            None => std::ops::Bound::Included(vec![b'e']),
        };
        let mut out = Vec::new();
        for row in self
            .tree
            .range::<Vec<u8>, _>((start, std::ops::Bound::Excluded(vec![b'f'])))
        {
            let (raw_key, raw) = row?;
            if out.len() == limit {
                return Ok((out, Some(raw_key)));
            }
            let ns_len = usize::from(*raw_key.get(1).unwrap_or(&0));
            let ns = Namespace::from(String::from_utf8_lossy(&raw_key[2..2 + ns_len]).into_owned());
            let key = raw_key[2 + ns_len..].to_vec();
            out.push((ns, key, codec::decode(&raw)?));
        }
        Ok((out, None))
    }

    /// Keys (raw) of everything stored for a namespace, at most `limit`.
    pub fn namespace_keys(
        &self,
        namespace: &Namespace,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        let mut keys = Vec::new();
        for tag in [b'e', b'o'] {
            for row in self.tree.scan_prefix(ns_prefix(tag, namespace)) {
                let (raw_key, _) = row?;
                keys.push(raw_key);
                if keys.len() >= limit {
                    return Ok(keys);
                }
            }
        }
        Ok(keys)
    }

    /// Namespaces that have stored entries.
    pub fn stored_namespaces(&self) -> Result<Vec<Namespace>, KvError> {
        let mut out = Vec::new();
        let mut start = vec![b'e'];
        loop {
            let Some(row) = self.tree.range(start.clone()..vec![b'f']).next() else {
                return Ok(out);
            };
            let (raw_key, _) = row?;
            let ns_len = usize::from(raw_key[1]);
            let ns = Namespace::from(String::from_utf8_lossy(&raw_key[2..2 + ns_len]).into_owned());
            start = prefix_end(&ns_prefix(b'e', &ns)).unwrap_or_else(|| vec![b'f']);
            out.push(ns);
        }
    }

    pub fn load_vector(&self) -> Result<VersionVector, KvError> {
        Ok(match self.tree.get(VECTOR_KEY)? {
            Some(raw) => codec::decode(&raw)?,
            None => VersionVector::default(),
        })
    }

    pub fn load_clock(&self) -> Result<Option<Version>, KvError> {
        Ok(match self.tree.get(CLOCK_KEY)? {
            Some(raw) => Some(codec::decode(&raw)?),
            None => None,
        })
    }

    pub fn load_synced_at(&self) -> Result<Option<u64>, KvError> {
        Ok(match self.tree.get(SYNCED_AT_KEY)? {
            Some(raw) => Some(codec::decode(&raw)?),
            None => None,
        })
    }

    pub fn apply(&self, batch: Batch) -> Result<(), KvError> {
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    pub fn put_vector(batch: &mut Batch, vector: &VersionVector) -> Result<(), KvError> {
        batch.insert(VECTOR_KEY, codec::encode(vector)?);
        Ok(())
    }

    pub fn put_clock(batch: &mut Batch, version: &Version) -> Result<(), KvError> {
        batch.insert(CLOCK_KEY, codec::encode(version)?);
        Ok(())
    }

    pub fn put_synced_at(batch: &mut Batch, at_ms: u64) -> Result<(), KvError> {
        batch.insert(SYNCED_AT_KEY, codec::encode(&at_ms)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_do_not_share_key_ranges() {
        // "a" + key "b…" must never sort inside namespace "ab".
        let (a, ab) = (Namespace::from("a"), Namespace::from("ab"));
        assert!(entry_key(&a, b"bzzz") < entry_key(&ab, b""));
        assert!(prefix_end(&ns_prefix(b'e', &a)).expect("end") <= entry_key(&ab, b""));
    }
}
