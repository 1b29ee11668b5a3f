//! What one group commit does, decided without I/O: the writer reads the current entries
//! its jobs touch ([`Work::reads`]) and the rows of namespaces they drop, and [`GroupStage`] turns the jobs into the writes of
//! one atomic batch (entries, origin index rows), the progress after it, each job's
//! answer, the changes for watchers and the segments to push. The writer then applies
//! the batch, flushes once and sends the answers (`writer.rs`).
//!
//! Each job is staged whole or not at all: a job whose reads failed, or whose entries do
//! not encode, changes nothing and is answered with the error.

use std::collections::{BTreeMap, HashMap};

use larder_store::codec;

use crate::keyspace::{entry_key, origin_key};
use crate::writer::Mutation;
use crate::{
    Change, ClusterView, Entry, Hlc, KvError, Namespace, NodeId, Progress, Segment, Version,
};

/// What merge needs of a stored entry: which write produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub version: Version,
    pub seq: u64,
    pub tombstone: bool,
}

impl Head {
    pub fn of(entry: &Entry) -> Head {
        Head {
            version: entry.version,
            seq: entry.seq,
            tombstone: entry.tombstone,
        }
    }
}

/// The current entries a group reads, by [`entry_key`], as read before staging (an
/// error fails the jobs that need that entry).
pub(crate) type StoredHeads = HashMap<Vec<u8>, Result<Option<Head>, KvError>>;

/// What the writer reads for a group before staging it.
#[derive(Debug, Default)]
pub(crate) struct GroupReads {
    pub heads: StoredHeads,
    /// Per namespace dropped by the group: the stored rows to remove.
    pub dropped_rows: HashMap<Namespace, Vec<Vec<u8>>>,
}

/// One row of the batch: a key of the KV tree and its new value (None removes it).
pub(crate) type Row = (Vec<u8>, Option<Vec<u8>>);

/// Result of a local write job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOutcome {
    pub versions: Vec<Version>,
    /// Sequence number of the job's last write in its namespace.
    pub last_seq: u64,
}

/// What a job asks of the writer, without the channel its answer goes to.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    /// Writes of a client of this node.
    Local {
        namespace: Namespace,
        mutations: Vec<Mutation>,
    },
    /// Writes replicated from other nodes.
    Remote { segments: Vec<Segment> },
    /// Anti-entropy finished a namespace: adopt the partner's progress.
    SyncDone {
        namespace: Namespace,
        origins: BTreeMap<NodeId, u64>,
        at_ms: u64,
    },
    /// Remove an expired entry or an old tombstone, if it is still the stored version.
    Collect {
        namespace: Namespace,
        key: Vec<u8>,
        version: Version,
    },
    /// Replace an expired entry by a tombstone of its version, if it is still the stored
    /// version.
    Bury {
        namespace: Namespace,
        key: Vec<u8>,
        version: Version,
    },
    /// Drop up to `limit` stored rows of a deleted namespace.
    DropNamespace { namespace: Namespace, limit: usize },
}

impl Work {
    /// The (namespace, key) pairs whose current entries staging this job needs.
    pub fn reads(&self) -> Vec<(&Namespace, &[u8])> {
        match self {
            Work::Local {
                namespace,
                mutations,
            } => mutations.iter().map(|m| (namespace, m.key())).collect(),
            Work::Remote { segments } => segments
                .iter()
                .flat_map(|s| {
                    s.writes
                        .iter()
                        .map(|(key, _)| (&s.namespace, key.as_slice()))
                })
                .collect(),
            Work::Collect { namespace, key, .. } | Work::Bury { namespace, key, .. } => {
                vec![(namespace, key.as_slice())]
            }
            Work::SyncDone { .. } | Work::DropNamespace { .. } => Vec::new(),
        }
    }
}

/// A job's answer, once the batch is durable.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Local(Result<LocalOutcome, KvError>),
    Remote(Result<(), KvError>),
    /// Background work: nobody waits for it.
    None,
}

impl Answer {
    /// A refused job: it staged nothing.
    pub fn is_err(&self) -> bool {
        matches!(self, Answer::Local(Err(_)) | Answer::Remote(Err(_)))
    }
}

/// Counters of one group, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupCounts {
    pub local_writes: u64,
    pub remote_writes: u64,
    pub tombstones_collected: u64,
    pub expired_collected: u64,
}

/// What a staged group comes to.
#[derive(Debug)]
pub(crate) struct StagedGroup {
    /// The batch's rows, in order (a later row of a key wins).
    pub rows: Vec<Row>,
    /// The latest sync time to record, if anti-entropy completed in this group.
    pub synced_at_ms: Option<u64>,
    pub progress: Progress,
    pub changes: Vec<Change>,
    /// This node's new writes, to push once durable.
    pub outgoing: Vec<Segment>,
    pub counts: GroupCounts,
}

/// A write staged for the batch: the key, its entry and the entry encoded.
struct StagedWrite {
    namespace: Namespace,
    key: Vec<u8>,
    entry: Entry,
    encoded: Vec<u8>,
}

/// Stages the jobs of one group commit, in order, against the entries read for them.
pub(crate) struct GroupStage<'a> {
    me: NodeId,
    hlc: &'a Hlc,
    view: &'a ClusterView,
    now_ms: u64,
    stored: StoredHeads,
    dropped_rows: HashMap<Namespace, Vec<Vec<u8>>>,
    /// Entries this group has staged so far, by entry key (None: removed).
    overlay: HashMap<Vec<u8>, Option<Head>>,
    out: StagedGroup,
}

impl<'a> GroupStage<'a> {
    /// Starts a group at `now_ms` from `progress`, with what was read for it.
    pub fn new(
        me: NodeId,
        hlc: &'a Hlc,
        view: &'a ClusterView,
        now_ms: u64,
        progress: Progress,
        reads: GroupReads,
    ) -> GroupStage<'a> {
        GroupStage {
            me,
            hlc,
            view,
            now_ms,
            stored: reads.heads,
            dropped_rows: reads.dropped_rows,
            overlay: HashMap::new(),
            out: StagedGroup {
                rows: Vec::new(),
                synced_at_ms: None,
                progress,
                changes: Vec::new(),
                outgoing: Vec::new(),
                counts: GroupCounts::default(),
            },
        }
    }

    /// Stages one job; returns its answer (sent once the batch is durable, or replaced
    /// by the error if the batch fails).
    pub fn stage(&mut self, work: Work) -> Answer {
        match work {
            Work::Local {
                namespace,
                mutations,
            } => Answer::Local(self.local(namespace, mutations)),
            Work::Remote { segments } => Answer::Remote(self.remote(segments)),
            Work::SyncDone {
                namespace,
                origins,
                at_ms,
            } => {
                // An exchange begun before its namespace was deleted brings no progress
                // back for it (the rows it sent were refused the same way).
                if !self.view.is_deleted(&namespace) {
                    self.out
                        .progress
                        .merge_namespace(&namespace, &origins, self.now_ms);
                }
                self.out.synced_at_ms = Some(at_ms);
                Answer::None
            }
            Work::Collect {
                namespace,
                key,
                version,
            } => {
                self.collect(&namespace, &key, version);
                Answer::None
            }
            Work::Bury {
                namespace,
                key,
                version,
            } => {
                self.bury(&namespace, &key, version);
                Answer::None
            }
            Work::DropNamespace { namespace, .. } => {
                let rows = self.dropped_rows.remove(&namespace).unwrap_or_default();
                self.out
                    .rows
                    .extend(rows.into_iter().map(|row| (row, None)));
                self.out.progress.drop_namespace(&namespace);
                Answer::None
            }
        }
    }

    pub fn finish(self) -> StagedGroup {
        self.out
    }

    /// The current entry of `key`: staged by this group, else as read.
    fn current(&self, namespace: &Namespace, key: &[u8]) -> Result<Option<Head>, KvError> {
        let ekey = entry_key(namespace, key);
        if let Some(staged) = self.overlay.get(&ekey) {
            return Ok(*staged);
        }
        match self.stored.get(&ekey) {
            Some(read) => read.clone(),
            None => Err(KvError::Internal(format!(
                "the writer did not read a key of namespace {namespace:?} before staging"
            ))),
        }
    }

    /// Fails if staging `writes` would need an entry that could not be read.
    fn check_reads(&self, writes: &[StagedWrite]) -> Result<(), KvError> {
        for write in writes {
            self.current(&write.namespace, &write.key)?;
        }
        Ok(())
    }

    fn local(
        &mut self,
        namespace: Namespace,
        mutations: Vec<Mutation>,
    ) -> Result<LocalOutcome, KvError> {
        if mutations.is_empty() {
            return Err(KvError::InvalidArgument(
                "a write needs at least one key".into(),
            ));
        }
        let first_seq = self.out.progress.vector().get(&namespace, self.me) + 1;
        let mut writes = Vec::with_capacity(mutations.len());
        let mut versions: Vec<Version> = Vec::with_capacity(mutations.len());
        for (seq, mutation) in (first_seq..).zip(mutations) {
            let version = self.hlc.now(self.now_ms);
            assert!(
                version.origin == self.me
                    && versions.last().is_none_or(|previous| version > *previous),
                "the writer stamps its own writes with strictly increasing versions"
            );
            let (key, entry) = mutation.into_entry(version, seq);
            let encoded = codec::encode(&entry)?;
            versions.push(version);
            writes.push(StagedWrite {
                namespace: namespace.clone(),
                key,
                entry,
                encoded,
            });
        }
        self.check_reads(&writes)?;
        let last_seq = first_seq + writes.len() as u64 - 1;
        let mut segment = Vec::with_capacity(writes.len());
        for write in writes {
            // A fresh stamp exceeds everything this node has seen (before a restart too:
            // the clock is persisted), so it applies — unless the key holds a stamp from
            // a clock beyond kv.clock_forward_drift_max_ms ahead, which this node does not
            // follow: then the write is superseded at once (last writer wins).
            segment.push((write.key.clone(), write.entry.clone()));
            self.apply(write);
        }
        let moved =
            self.out
                .progress
                .receive_range(&namespace, self.me, first_seq, last_seq, self.now_ms);
        assert!(
            moved && self.out.progress.vector().get(&namespace, self.me) >= last_seq,
            "this node numbers its own writes without gaps, after those it holds"
        );
        self.out.counts.local_writes += versions.len() as u64;
        self.out.outgoing.push(Segment {
            namespace,
            origin: self.me,
            covered: Some((first_seq, last_seq)),
            writes: segment,
        });
        Ok(LocalOutcome { versions, last_seq })
    }

    fn remote(&mut self, segments: Vec<Segment>) -> Result<(), KvError> {
        self.out.counts.remote_writes +=
            segments.iter().map(|s| s.writes.len() as u64).sum::<u64>();
        let mut accepted = Vec::with_capacity(segments.len());
        let mut writes = Vec::new();
        for segment in segments {
            if self.view.is_deleted(&segment.namespace) {
                // Late writes of a deleted namespace: nothing would ever read them.
                continue;
            }
            let known = self.view.namespaces.contains_key(&segment.namespace);
            if known && !self.view.allows(&segment.namespace, self.me) {
                // Residency: never store a namespace this node may not hold.
                tracing::warn!(namespace = %segment.namespace, origin = %segment.origin, "refused writes of a namespace this node may not hold");
                continue;
            }
            segment.check()?;
            for (key, entry) in &segment.writes {
                self.hlc.observe(entry.version, self.now_ms);
                writes.push(StagedWrite {
                    namespace: segment.namespace.clone(),
                    key: key.clone(),
                    entry: entry.clone(),
                    encoded: codec::encode(entry)?,
                });
            }
            accepted.push((segment.namespace, segment.origin, segment.covered));
        }
        self.check_reads(&writes)?;
        for write in writes {
            self.apply(write);
        }
        for (namespace, origin, covered) in accepted {
            if let Some((from, to)) = covered {
                self.out
                    .progress
                    .receive_range(&namespace, origin, from, to, self.now_ms);
            }
        }
        Ok(())
    }

    /// Stages `write` if it supersedes the current entry of its key (last writer wins).
    /// Its reads were checked.
    fn apply(&mut self, write: StagedWrite) {
        let StagedWrite {
            namespace,
            key,
            entry,
            encoded,
        } = write;
        let current = self
            .current(&namespace, &key)
            .expect("reads are checked before a job is staged");
        if let Some(old) = current {
            if entry.version == old.version {
                // One origin never reuses a stamp: the same version is the same write
                // (an expired one perhaps already buried on one side).
                debug_assert!(
                    entry.seq == old.seq,
                    "one version names one write: {} arrived as seq {} over seq {}",
                    entry.version,
                    entry.seq,
                    old.seq
                );
                return;
            }
            if entry.version < old.version {
                return;
            }
            self.out
                .rows
                .push((origin_key(&namespace, old.version.origin, old.seq), None));
        }
        let head = Head::of(&entry);
        self.out.rows.push((
            origin_key(&namespace, entry.version.origin, entry.seq),
            Some(key.clone()),
        ));
        let ekey = entry_key(&namespace, &key);
        self.out.rows.push((ekey.clone(), Some(encoded)));
        self.overlay.insert(ekey, Some(head));
        self.out.changes.push(Change {
            namespace,
            key,
            entry,
        });
    }

    /// Replaces the expired entry of `key` by a tombstone of its version if it is still
    /// `version` (its origin index row stays: same write).
    fn bury(&mut self, namespace: &Namespace, key: &[u8], version: Version) {
        let old = match self.current(namespace, key) {
            Ok(Some(old)) if old.version == version && !old.tombstone => old,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(namespace = %namespace, error = %err, "collection skipped");
                return;
            }
        };
        let tombstone = Entry {
            value: Vec::new(),
            metadata: Vec::new(),
            expires_at_ms: None,
            version,
            seq: old.seq,
            tombstone: true,
        };
        let encoded = match codec::encode(&tombstone) {
            Ok(encoded) => encoded,
            Err(err) => {
                tracing::warn!(namespace = %namespace, error = %err, "collection skipped");
                return;
            }
        };
        let ekey = entry_key(namespace, key);
        self.out.rows.push((ekey.clone(), Some(encoded)));
        self.overlay.insert(ekey, Some(Head::of(&tombstone)));
        self.out.counts.expired_collected += 1;
    }

    /// Removes the entry of `key` if it is still `version` (else a newer write replaced
    /// it, and stays).
    fn collect(&mut self, namespace: &Namespace, key: &[u8], version: Version) {
        let old = match self.current(namespace, key) {
            Ok(Some(old)) if old.version == version => old,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(namespace = %namespace, error = %err, "collection skipped");
                return;
            }
        };
        self.out
            .rows
            .push((origin_key(namespace, old.version.origin, old.seq), None));
        let ekey = entry_key(namespace, key);
        self.out.rows.push((ekey.clone(), None));
        self.overlay.insert(ekey, None);
        if old.tombstone {
            self.out.counts.tombstones_collected += 1;
        } else {
            self.out.counts.expired_collected += 1;
        }
    }
}

#[cfg(test)]
mod tests;
