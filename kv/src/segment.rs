use serde::{Deserialize, Serialize};

use crate::{Entry, NodeId};

/// Writes of one namespace travelling between replicas.
///
/// `covered = Some((from, to))` promises that these are all of the writes of `origin`
/// numbered `from..=to` in this namespace, so the receiver may advance its contiguous
/// point; writes from anti-entropy come with `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub namespace: String,
    pub origin: NodeId,
    pub covered: Option<(u64, u64)>,
    pub writes: Vec<(Vec<u8>, Entry)>,
}

impl Segment {
    /// Approximate encoded size, for batch and queue limits.
    pub fn bytes(&self) -> usize {
        self.namespace.len()
            + 32
            + self
                .writes
                .iter()
                .map(|(key, entry)| key.len() + entry.value.len() + entry.metadata.len() + 48)
                .sum::<usize>()
    }
}

/// One applied change, announced to watchers after it is durable.
#[derive(Debug, Clone)]
pub struct Change {
    pub namespace: String,
    pub key: Vec<u8>,
    pub entry: Entry,
}

/// Changes of one group commit and the namespace progress after it.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    pub vector: crate::VersionVector,
}
