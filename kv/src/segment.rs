use serde::{Deserialize, Serialize};

use crate::{Entry, KvError, Namespace, NodeId};

/// Writes of one namespace travelling between replicas.
///
/// `covered = Some((from, to))` promises that these are all of the writes of `origin`
/// numbered `from..=to` in this namespace, so the receiver may advance its contiguous
/// point; writes from anti-entropy come with `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub namespace: Namespace,
    pub origin: NodeId,
    pub covered: Option<(u64, u64)>,
    pub writes: Vec<(Vec<u8>, Entry)>,
}

impl Segment {
    /// Fails unless every write is the segment origin's, inside the range it covers:
    /// else receiving the range would count another origin's writes, or writes not sent,
    /// as received.
    pub fn check(&self) -> Result<(), KvError> {
        let range = self.covered.unwrap_or((1, u64::MAX));
        let stray = self.writes.iter().find(|(_, entry)| {
            entry.version.origin != self.origin || entry.seq < range.0 || entry.seq > range.1
        });
        match (stray, self.covered) {
            (Some((_, entry)), _) => Err(KvError::InvalidArgument(format!(
                "a segment of node {} covering {:?} in {:?} carries write {} of node {} ({})",
                self.origin,
                self.covered,
                self.namespace,
                entry.seq,
                entry.version.origin,
                entry.version
            ))),
            (None, Some((from, to))) if from > to || from == 0 => {
                Err(KvError::InvalidArgument(format!(
                    "a segment of node {} covers the empty range {from}..={to}",
                    self.origin
                )))
            }
            _ => Ok(()),
        }
    }

    /// Approximate encoded size, for batch and queue limits.
    pub fn bytes(&self) -> usize {
        self.namespace.as_str().len()
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
    pub namespace: Namespace,
    pub key: Vec<u8>,
    pub entry: Entry,
}

/// Changes of one group commit and the namespace progress after it.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    pub vector: crate::VersionVector,
}
