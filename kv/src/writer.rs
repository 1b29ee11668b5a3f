//! The single writer: every KV mutation (local writes, replicated writes, collection)
//! goes through one task that applies a group of jobs as one atomic batch, flushes once,
//! and only then acknowledges them all (group commit; DESIGN.md §7).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use larder_store::{Batch, codec};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::entry::supersedes;
use crate::keyspace::{Keyspace, entry_key, origin_key};
use crate::{
    Change, ChangeBatch, ClusterView, Entry, Hlc, KvError, NodeId, Progress, Segment, Version,
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

/// Result of a local write job.
#[derive(Debug, Clone)]
pub struct LocalOutcome {
    pub versions: Vec<Version>,
    /// Sequence number of the job's last write in its namespace.
    pub last_seq: u64,
}

pub(crate) enum Job {
    Local {
        namespace: String,
        mutations: Vec<Mutation>,
        reply: oneshot::Sender<Result<LocalOutcome, KvError>>,
    },
    Remote {
        segments: Vec<Segment>,
        reply: Option<oneshot::Sender<Result<(), KvError>>>,
    },
    /// Anti-entropy finished a namespace: adopt the partner's progress.
    SyncDone {
        namespace: String,
        origins: BTreeMap<NodeId, u64>,
        at_ms: u64,
    },
    /// Remove an expired entry or an old tombstone, if it is still the stored version.
    Collect {
        namespace: String,
        key: Vec<u8>,
        version: Version,
    },
    /// Drop up to `limit` stored records of a deleted namespace.
    DropNamespace { namespace: String, limit: usize },
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

/// Staged state of one group: the batch and what it will make the store look like.
struct Group {
    batch: Batch,
    overlay: HashMap<Vec<u8>, Option<Entry>>,
    changes: Vec<Change>,
    outgoing: Vec<Segment>,
}

impl Group {
    fn current(
        &self,
        keyspace: &Keyspace,
        namespace: &str,
        key: &[u8],
    ) -> Result<Option<Entry>, KvError> {
        match self.overlay.get(&entry_key(namespace, key)) {
            Some(staged) => Ok(staged.clone()),
            None => keyspace.get(namespace, key),
        }
    }

    /// Stages `entry` if it supersedes the stored one; returns whether it did.
    fn stage(
        &mut self,
        keyspace: &Keyspace,
        namespace: &str,
        key: &[u8],
        entry: Entry,
    ) -> Result<bool, KvError> {
        let current = self.current(keyspace, namespace, key)?;
        if !supersedes(current.as_ref(), &entry) {
            return Ok(false);
        }
        if let Some(old) = &current {
            self.batch
                .remove(origin_key(namespace, old.version.origin, old.seq));
        }
        self.batch
            .insert(origin_key(namespace, entry.version.origin, entry.seq), key);
        let ekey = entry_key(namespace, key);
        self.batch.insert(&ekey, codec::encode(&entry)?);
        self.overlay.insert(ekey, Some(entry.clone()));
        self.changes.push(Change {
            namespace: namespace.to_string(),
            key: key.to_vec(),
            entry,
        });
        Ok(true)
    }

    fn remove(
        &mut self,
        keyspace: &Keyspace,
        namespace: &str,
        key: &[u8],
        version: Version,
    ) -> Result<Option<Entry>, KvError> {
        if let Some(old) = self.current(keyspace, namespace, key)?
            && old.version == version
        {
            self.batch
                .remove(origin_key(namespace, old.version.origin, old.seq));
            let ekey = entry_key(namespace, key);
            self.batch.remove(&ekey);
            self.overlay.insert(ekey, None);
            return Ok(Some(old));
        }
        Ok(None)
    }
}

enum Reply {
    Local(oneshot::Sender<Result<LocalOutcome, KvError>>, LocalOutcome),
    Remote(oneshot::Sender<Result<(), KvError>>),
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

    async fn commit(&self, jobs: Vec<Job>) {
        let now = self.clock.now_ms();
        let view = self.cluster.borrow().clone();
        let mut progress = self
            .progress
            .lock()
            .expect("progress lock is never poisoned: no panics under it")
            .clone();
        let mut group = Group {
            batch: Batch::default(),
            overlay: HashMap::new(),
            changes: Vec::new(),
            outgoing: Vec::new(),
        };
        let mut replies = Vec::new();
        let mut failures: Vec<(Reply, KvError)> = Vec::new();
        // (tombstones, other entries) removed by collection in this group.
        let mut collected = (0u64, 0u64);
        let (mut local_writes, mut remote_writes) = (0u64, 0u64);
        for job in jobs {
            match job {
                Job::Local {
                    namespace,
                    mutations,
                    reply,
                } => {
                    match self.stage_local(&mut group, &mut progress, &namespace, mutations, now) {
                        Ok(outcome) => {
                            local_writes += outcome.versions.len() as u64;
                            replies.push(Reply::Local(reply, outcome));
                        }
                        Err(err) => {
                            let _ = reply.send(Err(err));
                        }
                    }
                }
                Job::Remote { segments, reply } => {
                    remote_writes += segments.iter().map(|s| s.writes.len() as u64).sum::<u64>();
                    let result = self.stage_remote(&mut group, &mut progress, &view, segments, now);
                    match (reply, result) {
                        (Some(reply), Ok(())) => replies.push(Reply::Remote(reply)),
                        (Some(reply), Err(err)) => failures.push((Reply::Remote(reply), err)),
                        (None, Err(err)) => {
                            tracing::warn!(error = %err, "replicated writes not applied")
                        }
                        (None, Ok(())) => {}
                    }
                }
                Job::SyncDone {
                    namespace,
                    origins,
                    at_ms,
                } => {
                    progress.merge_namespace(&namespace, &origins, now);
                    if let Err(err) = Keyspace::put_synced_at(&mut group.batch, at_ms) {
                        tracing::warn!(error = %err, "cannot record the sync time");
                    }
                }
                Job::Collect {
                    namespace,
                    key,
                    version,
                } => match group.remove(&self.keyspace, &namespace, &key, version) {
                    Ok(Some(removed)) if removed.tombstone => collected.0 += 1,
                    Ok(Some(_)) => collected.1 += 1,
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(namespace = %namespace, error = %err, "collection skipped")
                    }
                },
                Job::DropNamespace { namespace, limit } => {
                    match self.keyspace.namespace_keys(&namespace, limit) {
                        Ok(keys) => keys.into_iter().for_each(|k| group.batch.remove(k)),
                        Err(err) => {
                            tracing::warn!(namespace = %namespace, error = %err, "namespace drop skipped")
                        }
                    }
                    progress.drop_namespace(&namespace);
                }
            }
        }
        for (reply, err) in failures {
            if let Reply::Remote(reply) = reply {
                let _ = reply.send(Err(err));
            }
        }
        let durable = self.persist(group.batch, &progress).await;
        if let Err(err) = durable {
            tracing::error!(error = %err, "KV group commit failed; its writes are not acknowledged");
            for reply in replies {
                match reply {
                    Reply::Local(tx, _) => drop(tx.send(Err(err.clone()))),
                    Reply::Remote(tx) => drop(tx.send(Err(err.clone()))),
                }
            }
            return;
        }
        let vector = progress.vector().clone();
        *self
            .progress
            .lock()
            .expect("progress lock is never poisoned: no panics under it") = progress;
        self.progress_tx.send_modify(|n| *n += 1);
        self.stats
            .record_group(local_writes, remote_writes, collected);
        for reply in replies {
            match reply {
                Reply::Local(tx, outcome) => drop(tx.send(Ok(outcome))),
                Reply::Remote(tx) => drop(tx.send(Ok(()))),
            }
        }
        for segment in group.outgoing {
            self.outgoing.local_segment(segment);
        }
        if !group.changes.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = self.changes.send(Arc::new(ChangeBatch {
                changes: group.changes,
                vector,
            }));
        }
    }

    async fn persist(&self, mut batch: Batch, progress: &Progress) -> Result<(), KvError> {
        crate::keyspace::Keyspace::put_vector(&mut batch, progress.vector())?;
        // The clock's high-water mark, observed stamps included, goes into the batch
        // that holds the entries carrying them: after a crash the clock resumes above
        // every entry this node stores, so a local write always supersedes the entry it
        // overwrites (a lagging wall clock alone would stamp it older).
        crate::keyspace::Keyspace::put_clock(&mut batch, &self.hlc.last())?;
        self.keyspace.apply(batch)?;
        self.keyspace.store().flush().await?;
        Ok(())
    }

    fn stage_local(
        &self,
        group: &mut Group,
        progress: &mut Progress,
        namespace: &str,
        mutations: Vec<Mutation>,
        now: u64,
    ) -> Result<LocalOutcome, KvError> {
        let first_seq = progress.vector().get(namespace, self.me) + 1;
        let mut seq = first_seq - 1;
        let mut versions = Vec::with_capacity(mutations.len());
        let mut writes = Vec::with_capacity(mutations.len());
        for mutation in mutations {
            seq += 1;
            let version = self.hlc.now(now);
            let (key, entry) = match mutation {
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
            };
            // A fresh stamp exceeds everything this node has seen (before a restart too:
            // the clock is persisted), so it applies — unless the key holds a stamp from
            // a clock beyond kv.clock_forward_drift_max_ms ahead, which this node does not
            // follow: then the write is superseded at once (last writer wins).
            group.stage(&self.keyspace, namespace, &key, entry.clone())?;
            versions.push(version);
            writes.push((key, entry));
        }
        progress.receive_range(namespace, self.me, first_seq, seq, now);
        group.outgoing.push(Segment {
            namespace: namespace.to_string(),
            origin: self.me,
            covered: Some((first_seq, seq)),
            writes,
        });
        Ok(LocalOutcome {
            versions,
            last_seq: seq,
        })
    }

    fn stage_remote(
        &self,
        group: &mut Group,
        progress: &mut Progress,
        view: &ClusterView,
        segments: Vec<Segment>,
        now: u64,
    ) -> Result<(), KvError> {
        for segment in segments {
            let known = view.namespaces.contains_key(&segment.namespace);
            if known && !view.allows(&segment.namespace, self.me) {
                // Residency: never store a namespace this node may not hold.
                tracing::warn!(namespace = %segment.namespace, origin = %segment.origin, "refused writes of a namespace this node may not hold");
                continue;
            }
            for (key, entry) in segment.writes {
                self.hlc.observe(entry.version, now);
                group.stage(&self.keyspace, &segment.namespace, &key, entry)?;
            }
            if let Some((from, to)) = segment.covered {
                progress.receive_range(&segment.namespace, segment.origin, from, to, now);
            }
        }
        Ok(())
    }
}
