use serde::{Deserialize, Serialize};

use crate::Version;

/// A stored KV entry: the latest write of a key this replica knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub value: Vec<u8>,
    pub metadata: Vec<u8>,
    /// Unix ms after which the entry reads as absent.
    pub expires_at_ms: Option<u64>,
    pub version: Version,
    /// Sequence number of this write among its origin's writes to this namespace.
    pub seq: u64,
    /// A delete: kept so that older writes cannot bring the key back, until collected.
    pub tombstone: bool,
}

impl Entry {
    /// Whether a read at `now_ms` sees this entry.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.tombstone && self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// Last-writer-wins merge: the entry with the greater version. Commutative, associative
/// and idempotent, so replicas converge whatever order writes arrive in.
pub fn merge(current: Option<Entry>, incoming: Entry) -> Entry {
    match current {
        Some(current) if current.version >= incoming.version => current,
        _ => incoming,
    }
}

/// Whether `incoming` replaces `current` under [`merge`].
pub fn supersedes(current: Option<&Entry>, incoming: &Entry) -> bool {
    current.is_none_or(|current| incoming.version > current.version)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::NodeId;

    /// A write is identified by its version: the same version always carries the same
    /// content, as in the real system (one origin never reuses a stamp).
    fn entry_strategy() -> impl Strategy<Value = Entry> {
        (0u64..5, 0u32..3, 1u64..4).prop_map(|(physical_ms, logical, origin)| {
            let tombstone = (physical_ms + u64::from(logical) + origin) % 3 == 0;
            Entry {
                value: format!("{physical_ms}.{logical}@{origin}").into_bytes(),
                metadata: Vec::new(),
                expires_at_ms: None,
                version: Version {
                    physical_ms,
                    logical,
                    origin: NodeId(origin),
                },
                seq: physical_ms,
                tombstone,
            }
        })
    }

    fn m(a: &Entry, b: &Entry) -> Entry {
        merge(Some(a.clone()), b.clone())
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in entry_strategy(), b in entry_strategy()) {
            prop_assert_eq!(m(&a, &b), m(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in entry_strategy(), b in entry_strategy(), c in entry_strategy()) {
            prop_assert_eq!(m(&m(&a, &b), &c), m(&a, &m(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in entry_strategy(), b in entry_strategy()) {
            prop_assert_eq!(m(&a, &a), a.clone());
            prop_assert_eq!(m(&m(&a, &b), &b), m(&a, &b));
        }

        #[test]
        fn any_delivery_order_converges(writes in proptest::collection::vec(entry_strategy(), 1..12), seed in any::<u64>()) {
            let in_order = writes.iter().cloned().fold(None, |acc, w| Some(merge(acc, w)));
            let mut shuffled = writes.clone();
            // Deterministic shuffle from the seed, with duplicates delivered twice.
            let n = shuffled.len();
            for i in 0..n {
                let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            shuffled.extend(writes.iter().take(2).cloned());
            let any_order = shuffled.into_iter().fold(None, |acc, w| Some(merge(acc, w)));
            prop_assert_eq!(in_order, any_order);
        }
    }

    #[test]
    fn delete_beats_older_put_and_loses_to_newer() {
        let put = |p| Entry {
            value: b"v".to_vec(),
            metadata: vec![],
            expires_at_ms: None,
            version: Version {
                physical_ms: p,
                logical: 0,
                origin: NodeId(1),
            },
            seq: p,
            tombstone: false,
        };
        let delete = Entry {
            tombstone: true,
            value: vec![],
            ..put(5)
        };
        assert!(m(&put(4), &delete).tombstone);
        assert!(!m(&put(6), &delete).tombstone);
        assert!(supersedes(Some(&put(4)), &delete));
        assert!(!supersedes(Some(&delete), &delete));
    }

    #[test]
    fn expiry() {
        let e = Entry {
            value: vec![],
            metadata: vec![],
            expires_at_ms: Some(100),
            version: Version::default(),
            seq: 1,
            tombstone: false,
        };
        assert!(e.is_live(99));
        assert!(!e.is_live(100));
    }
}
