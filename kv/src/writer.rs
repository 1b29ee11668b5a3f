//! The single writer: every KV mutation (local writes, replicated writes, collection)
//! goes through one task that applies a group of jobs as one atomic batch, flushes once,
//! and only then acknowledges them all (group commit: a flush per request stalls sled
//! under concurrency). What a group does is decided by `GroupStage` (`group_stage.rs`)
//! without I/O; this task reads, applies, flushes and answers.

use std::sync::{Arc, Mutex};

use larder_store::Batch;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use crate::group_stage::LocalOutcome;
use crate::group_stage::{Answer, GroupReads, GroupStage, Head, StagedGroup, Work};
use crate::keyspace::{Keyspace, entry_key};
use crate::{
    ChangeBatch, ClusterView, Entry, Hlc, KvError, Namespace, NodeId, Progress, Segment, Version,
};

/// A write requested by a client of this node.
#[derive(Debug, Clone)]
pub enum Mutation {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        metadata: Vec<u8>,
        expires_at_ms: Option<u64>,
    },
    Delete {
        key: Vec<u8>,
    },
}

impl Mutation {
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }

    /// The key and the entry this mutation writes as this node's write `seq`, stamped
    /// `version`.
    pub(crate) fn into_entry(self, version: Version, seq: u64) -> (Vec<u8>, Entry) {
        match self {
            Mutation::Put {
                key,
                value,
                metadata,
                expires_at_ms,
            } => (
                key,
                Entry {
                    value,
                    metadata,
                    expires_at_ms,
                    version,
                    seq,
                    tombstone: false,
                },
            ),
            Mutation::Delete { key } => (
                key,
                Entry {
                    value: Vec::new(),
                    metadata: Vec::new(),
                    expires_at_ms: None,
                    version,
                    seq,
                    tombstone: true,
                },
            ),
        }
    }
}

/// A job for the writer: what to do, and where its answer goes (None: nobody waits).
pub(crate) struct Job {
    pub work: Work,
    pub reply: Option<Reply>,
}

impl Job {
    /// Writes of a client of this node.
    pub fn local(
        namespace: Namespace,
        mutations: Vec<Mutation>,
        reply: oneshot::Sender<Result<LocalOutcome, KvError>>,
    ) -> Job {
        Job {
            work: Work::Local {
                namespace,
                mutations,
            },
            reply: Some(Reply::Local(reply)),
        }
    }

    /// Writes replicated from other nodes.
    pub fn remote(segments: Vec<Segment>, reply: oneshot::Sender<Result<(), KvError>>) -> Job {
        Job {
            work: Work::Remote { segments },
            reply: Some(Reply::Remote(reply)),
        }
    }

    /// Background work (anti-entropy's progress, collection): nobody waits for it.
    pub fn background(work: Work) -> Job {
        Job { work, reply: None }
    }
}

/// Hands local segments to replication after they are durable.
pub(crate) trait Outgoing: Send + Sync + 'static {
    fn local_segment(&self, segment: Segment);
}

pub(crate) struct Writer {
    pub keyspace: Keyspace,
    pub hlc: Arc<Hlc>,
    pub me: NodeId,
    pub progress: Arc<Mutex<Progress>>,
    pub progress_tx: watch::Sender<u64>,
    pub changes: broadcast::Sender<Arc<ChangeBatch>>,
    pub cluster: watch::Receiver<Arc<ClusterView>>,
    pub outgoing: Arc<dyn Outgoing>,
    pub group_max: usize,
    pub stats: Arc<crate::KvStats>,
    pub clock: larder_base::SharedClock,
}

/// Where a job's answer goes.
pub(crate) enum Reply {
    Local(oneshot::Sender<Result<LocalOutcome, KvError>>),
    Remote(oneshot::Sender<Result<(), KvError>>),
}

impl Reply {
    /// Sends `answer` (a dropped receiver is a caller that gave up waiting).
    fn send(self, answer: Answer) {
        match (self, answer) {
            (Reply::Local(tx), Answer::Local(result)) => drop(tx.send(result)),
            (Reply::Remote(tx), Answer::Remote(result)) => drop(tx.send(result)),
            (reply, answer) => reply.fail(KvError::Internal(format!(
                "a job was answered as another kind: {answer:?}"
            ))),
        }
    }

    fn fail(self, err: KvError) {
        match self {
            Reply::Local(tx) => drop(tx.send(Err(err))),
            Reply::Remote(tx) => drop(tx.send(Err(err))),
        }
    }
}

impl Writer {
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut group_jobs = vec![first];
            while group_jobs.len() < self.group_max {
                match jobs.try_recv() {
                    Ok(job) => group_jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit(group_jobs).await;
        }
    }

    /// One group commit: read what the jobs touch, stage them (`GroupStage`), apply the
    /// batch with one flush, then answer every job and announce the changes.
    async fn commit(&self, jobs: Vec<Job>) {
        let now = self.clock.now_ms();
        let view = self.cluster.borrow().clone();
        let progress = self
            .progress
            .lock()
            .expect("progress lock is never poisoned: no panics under it")
            .clone();
        let (works, replies): (Vec<Work>, Vec<Option<Reply>>) =
            jobs.into_iter().map(|job| (job.work, job.reply)).unzip();
        let reads = self.read(&works);
        let mut stage = GroupStage::new(self.me, &self.hlc, &view, now, progress, reads);
        let mut acknowledged = Vec::with_capacity(replies.len());
        for (work, reply) in works.into_iter().zip(replies) {
            let answer = stage.stage(work);
            match reply {
                // Refused jobs staged nothing: tell them now, not after the flush.
                Some(reply) if answer.is_err() => reply.send(answer),
                Some(reply) => acknowledged.push((reply, answer)),
                None if answer.is_err() => {
                    tracing::warn!(answer = ?answer, "replicated writes not applied")
                }
                None => {}
            }
        }
        let mut staged = stage.finish();
        if let Err(err) = self.persist(&mut staged).await {
            tracing::error!(error = %err, "KV group commit failed; its writes are not acknowledged");
            for (reply, _) in acknowledged {
                reply.fail(err.clone());
            }
            return;
        }
        self.publish(staged, acknowledged);
    }

    /// What staging the jobs needs from the store: the current entry of every key they
    /// touch (an error is kept for the jobs that need that key), and the rows of the
    /// namespaces they drop.
    fn read(&self, works: &[Work]) -> GroupReads {
        let mut reads = GroupReads::default();
        for (namespace, key) in works.iter().flat_map(Work::reads) {
            let ekey = entry_key(namespace, key);
            reads.heads.entry(ekey).or_insert_with(|| {
                self.keyspace
                    .get(namespace, key)
                    .map(|entry| entry.as_ref().map(Head::of))
            });
        }
        for work in works {
            if let Work::DropNamespace { namespace, limit } = work {
                let rows = self
                    .keyspace
                    .namespace_keys(namespace, *limit)
                    .unwrap_or_else(|err| {
                        tracing::warn!(namespace = %namespace, error = %err, "namespace drop skipped");
                        Vec::new()
                    });
                reads.dropped_rows.insert(namespace.clone(), rows);
            }
        }
        reads
    }

    /// Applies the group's batch with the progress and the clock it leads to, and
    /// flushes once.
    async fn persist(&self, staged: &mut StagedGroup) -> Result<(), KvError> {
        let mut batch = Batch::default();
        // Drained: each value is held once, in the batch, not also in the staged rows.
        for (key, value) in staged.rows.drain(..) {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        if let Some(at_ms) = staged.synced_at_ms {
            Keyspace::put_synced_at(&mut batch, at_ms)?;
        }
        Keyspace::put_vector(&mut batch, staged.progress.vector())?;
        // The clock's high-water mark, observed stamps included, goes into the batch
        // that holds the entries carrying them: after a crash the clock resumes above
        // every entry this node stores, so a local write always supersedes the entry it
        // overwrites (a lagging wall clock alone would stamp it older).
        Keyspace::put_clock(&mut batch, &self.hlc.last())?;
        self.keyspace.apply(batch)?;
        self.keyspace.store().flush().await?;
        Ok(())
    }

    /// After the flush: the new progress, the answers, the pushes and the watchers.
    fn publish(&self, staged: StagedGroup, acknowledged: Vec<(Reply, Answer)>) {
        let vector = staged.progress.vector().clone();
        {
            let mut progress = self
                .progress
                .lock()
                .expect("progress lock is never poisoned: no panics under it");
            debug_assert!(
                dropped_only(&vector, progress.vector()) || vector.includes(progress.vector()),
                "a replica's progress never goes back, except for a dropped namespace"
            );
            *progress = staged.progress;
        }
        self.progress_tx.send_modify(|n| *n += 1);
        let counts = staged.counts;
        self.stats.record_group(
            counts.local_writes,
            counts.remote_writes,
            (counts.tombstones_collected, counts.expired_collected),
        );
        for (reply, answer) in acknowledged {
            reply.send(answer);
        }
        for segment in staged.outgoing {
            self.outgoing.local_segment(segment);
        }
        if !staged.changes.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = self.changes.send(Arc::new(ChangeBatch {
                changes: staged.changes,
                vector,
            }));
        }
    }
}

/// Whether `new` lacks a namespace `old` has: progress then goes back by design.
fn dropped_only(new: &crate::VersionVector, old: &crate::VersionVector) -> bool {
    old.0.keys().any(|ns| !new.0.contains_key(ns))
}
