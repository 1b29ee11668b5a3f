use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_store::Store;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::ChannelFactory;
use crate::env::{Draws, KvEnv};
use crate::keyspace::Keyspace;
use crate::peer_messages::{PushRequest, SyncRequest, SyncResponse};
use crate::replication::Replicator;
use crate::sync_pager::{SyncPager, read_page};
use crate::writer::{Job, LocalOutcome, Mutation, Writer};
use crate::{
    ChangeBatch, ClusterView, Entry, Hlc, KvConfig, KvError, Lag, Namespace, NodeId, Progress,
    Segment, VersionVector, token, validate,
};

/// One write of a `put`.
#[derive(Debug, Clone)]
pub struct PutItem {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub metadata: Vec<u8>,
    pub expires_at_ms: u64,
    pub ttl_ms: u64,
}

/// What a write returns: the version of each write and a token for reading them back.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub versions: Vec<crate::Version>,
    pub token: Vec<u8>,
}

/// A page of `list`.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub entries: Vec<(Vec<u8>, Entry)>,
    /// Resume after this key; None when the listing is complete.
    pub cursor: Option<Vec<u8>>,
}

/// This node's KV replica.
#[derive(Clone)]
pub struct Kv {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub me: NodeId,
    pub config: KvConfig,
    pub keyspace: Keyspace,
    pub jobs: mpsc::Sender<Job>,
    pub progress: Arc<Mutex<Progress>>,
    pub progress_rx: watch::Receiver<u64>,
    pub changes: broadcast::Sender<Arc<ChangeBatch>>,
    pub cluster: watch::Receiver<Arc<ClusterView>>,
    pub replicator: Replicator,
    /// Unix ms of the last complete anti-entropy exchange (0: never).
    pub synced_at_ms: std::sync::atomic::AtomicU64,
    pub stats: Arc<crate::KvStats>,
    pub clock: larder_base::SharedClock,
    pub draws: Draws,
}

impl Kv {
    /// Opens the KV in `store` and starts its writer, replication, anti-entropy and
    /// collection tasks. The returned tasks stop when `shutdown` turns true; the writer
    /// (not returned) stops once every handle is dropped, after committing what it holds.
    /// `env` gives the wall clock and the seed of the random draws.
    pub fn start(
        store: Store,
        config: KvConfig,
        env: KvEnv,
        cluster: watch::Receiver<Arc<ClusterView>>,
        channels: ChannelFactory,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Kv, Vec<JoinHandle<()>>), KvError> {
        config
            .validate()
            .map_err(|err| KvError::InvalidArgument(err.to_string()))?;
        let me = cluster.borrow().me;
        let keyspace = Keyspace::open(store)?;
        let hlc = Arc::new(Hlc::new(me, config.clock_forward_drift_max_ms));
        if let Some(last) = keyspace.load_clock()? {
            hlc.observe(last, last.physical_ms);
        }
        let progress = Arc::new(Mutex::new(Progress::new(keyspace.load_vector()?)));
        let keyspace_synced_at = keyspace.load_synced_at()?.unwrap_or(0);
        let (progress_tx, progress_rx) = watch::channel(0u64);
        let (changes, _) = broadcast::channel(config.watch_buffer_events);
        let (jobs_tx, jobs_rx) = mpsc::channel(config.write_queue_max);
        let replicator = Replicator::new(
            me,
            config.clone(),
            cluster.clone(),
            channels,
            shutdown.clone(),
        );
        let stats = Arc::new(crate::KvStats::default());
        let writer = Writer {
            keyspace: keyspace.clone(),
            hlc,
            me,
            progress: progress.clone(),
            progress_tx,
            changes: changes.clone(),
            cluster: cluster.clone(),
            outgoing: Arc::new(replicator.clone()),
            group_max: config.group_commit_jobs_max,
            stats: stats.clone(),
            clock: env.clock.clone(),
        };
        let kv = Kv {
            inner: Arc::new(Inner {
                me,
                config,
                keyspace,
                jobs: jobs_tx,
                progress,
                progress_rx,
                changes,
                cluster,
                replicator,
                synced_at_ms: std::sync::atomic::AtomicU64::new(keyspace_synced_at),
                stats,
                clock: env.clock,
                draws: Draws::new(env.rng_seed),
            }),
        };
        tokio::spawn(writer.run(jobs_rx));
        let tasks = vec![
            tokio::spawn(crate::anti_entropy::run(kv.clone(), shutdown.clone())),
            tokio::spawn(crate::collector::run(kv.clone(), shutdown)),
        ];
        Ok((kv, tasks))
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub fn config(&self) -> &KvConfig {
        &self.inner.config
    }

    pub fn me(&self) -> NodeId {
        self.inner.me
    }

    /// Wall-clock Unix milliseconds, from the injected clock.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub fn view(&self) -> Arc<ClusterView> {
        self.inner.cluster.borrow().clone()
    }

    /// Why this node's store failed (it stops at once; see the store's health), if it
    /// did.
    pub fn store_failure(&self) -> Option<String> {
        self.inner
            .keyspace
            .store()
            .health()
            .failure()
            .borrow()
            .clone()
    }

    /// Whether this replica's next anti-entropy exchange must be a full re-sync (it
    /// never completed one but holds data, or its last is older than the tombstone
    /// grace) and it has a partner to do it with: until then it may miss deletes.
    pub fn needs_full_resync(&self) -> bool {
        !self.view().sync_partners().is_empty() && self.full_resync_due()
    }

    /// Whether this replica's next anti-entropy exchange must be a full re-sync (see
    /// `anti_entropy::full_resync_due`), partner or not.
    pub(crate) fn full_resync_due(&self) -> bool {
        let synced_at = self
            .inner
            .synced_at_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let holds_data = || {
            self.keyspace()
                .stored_namespaces()
                .map(|ns| !ns.is_empty())
                .unwrap_or(true)
        };
        crate::anti_entropy::full_resync_due(
            synced_at,
            self.now_ms(),
            self.inner.config.tombstone_grace_ms,
            holds_data,
        )
    }

    /// Waits (at most `timeout`) until this node's view of the cluster satisfies
    /// `until`; whether it did.
    pub async fn wait_for_view(
        &self,
        until: impl Fn(&ClusterView) -> bool,
        timeout: Duration,
    ) -> bool {
        let mut views = self.inner.cluster.clone();
        tokio::time::timeout(timeout, views.wait_for(|view| until(view)))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// The incarnation the namespace clients call `namespace` is stored under; fails
    /// unless it exists and this node may hold it.
    pub fn check_namespace(&self, namespace: &Namespace) -> Result<Namespace, KvError> {
        let view = self.view();
        let Some((stored_as, ns)) = view
            .resolve(namespace.as_str())
            .and_then(|stored_as| Some((stored_as, view.namespaces.get(stored_as)?)))
        else {
            return Err(KvError::NamespaceNotFound(namespace.clone()));
        };
        if !ns.allowed.contains(&self.inner.me) {
            return Err(KvError::NotAllowedHere {
                namespace: namespace.clone(),
                policy: ns.policy.clone(),
                node: self.inner.me,
                region: view.my_region().to_string(),
                retry_at: view.holder(stored_as).map(|peer| peer.api_addr.clone()),
            });
        }
        Ok(stored_as.clone())
    }

    /// Queues a client's job, refusing it when the queue is full (the client retries).
    pub(crate) async fn submit(&self, job: Job) -> Result<(), KvError> {
        self.inner.jobs.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => {
                KvError::Overloaded(self.inner.config.write_queue_max)
            }
            mpsc::error::TrySendError::Closed(_) => KvError::ShuttingDown,
        })
    }

    /// Queues a background job (replication, collection), waiting for room: backpressure
    /// reaches the sender instead of dropping its writes.
    pub(crate) async fn submit_background(&self, job: Job) -> Result<(), KvError> {
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| KvError::ShuttingDown)
    }

    async fn write_local(
        &self,
        namespace: &Namespace,
        mutations: Vec<Mutation>,
    ) -> Result<WriteOutcome, KvError> {
        self.inner.keyspace.store().health().check_space()?;
        let (reply, rx) = oneshot::channel();
        self.submit(Job::local(namespace.clone(), mutations, reply))
            .await?;
        let LocalOutcome { versions, last_seq } = rx.await.map_err(|_| KvError::ShuttingDown)??;
        let mut vector = VersionVector::default();
        vector.raise(namespace, self.inner.me, last_seq);
        Ok(WriteOutcome {
            versions,
            token: token::encode(&vector),
        })
    }

    pub async fn put(
        &self,
        namespace: &Namespace,
        items: Vec<PutItem>,
    ) -> Result<WriteOutcome, KvError> {
        let mutations = validate::puts(&self.inner.config, items, self.now_ms())?;
        let namespace = &self.check_namespace(namespace)?;
        self.write_local(namespace, mutations).await
    }

    pub async fn delete(
        &self,
        namespace: &Namespace,
        keys: Vec<Vec<u8>>,
    ) -> Result<WriteOutcome, KvError> {
        let mutations = validate::deletes(&self.inner.config, keys)?;
        let namespace = &self.check_namespace(namespace)?;
        self.write_local(namespace, mutations).await
    }

    /// The live entry of `key`, after waiting (bounded) for `consistency_token`.
    pub async fn get(
        &self,
        namespace: &Namespace,
        key: &[u8],
        consistency_token: &[u8],
    ) -> Result<Option<Entry>, KvError> {
        validate::key(&self.inner.config, key)?;
        let namespace = &self.check_namespace(namespace)?;
        self.wait_for_token(namespace, consistency_token).await?;
        let now = self.now_ms();
        Ok(self
            .inner
            .keyspace
            .get(namespace, key)?
            .filter(|e| e.is_live(now)))
    }

    pub async fn get_many(
        &self,
        namespace: &Namespace,
        keys: &[Vec<u8>],
        consistency_token: &[u8],
    ) -> Result<Vec<Option<Entry>>, KvError> {
        validate::get_many(&self.inner.config, keys)?;
        let namespace = &self.check_namespace(namespace)?;
        self.wait_for_token(namespace, consistency_token).await?;
        let now = self.now_ms();
        keys.iter()
            .map(|key| {
                Ok(self
                    .inner
                    .keyspace
                    .get(namespace, key)?
                    .filter(|e| e.is_live(now)))
            })
            .collect()
    }

    pub async fn list(
        &self,
        namespace: &Namespace,
        prefix: &[u8],
        cursor: &[u8],
        limit: u32,
        consistency_token: &[u8],
    ) -> Result<ListPage, KvError> {
        let config = &self.inner.config;
        let limit = validate::list(config, prefix, cursor, limit)?;
        let namespace = &self.check_namespace(namespace)?;
        self.wait_for_token(namespace, consistency_token).await?;
        let (entries, cursor) = self.inner.keyspace.list(
            namespace,
            prefix,
            cursor,
            limit,
            config.list_scan_max,
            self.now_ms(),
        )?;
        Ok(ListPage { entries, cursor })
    }

    /// Waits until this replica includes every write `consistency_token` names in
    /// `namespace`, at most `read_your_writes_wait_ms`.
    async fn wait_for_token(
        &self,
        namespace: &Namespace,
        consistency_token: &[u8],
    ) -> Result<(), KvError> {
        if consistency_token.is_empty() {
            return Ok(());
        }
        let wanted = token::restrict(&token::decode(consistency_token)?, namespace);
        let mut changes = self.inner.progress_rx.clone();
        let deadline = tokio::time::Instant::now() + self.inner.config.read_your_writes_wait();
        loop {
            changes.borrow_and_update();
            let missing = {
                let progress = self
                    .inner
                    .progress
                    .lock()
                    .expect("progress lock is never poisoned");
                wanted
                    .namespace(namespace)
                    .into_iter()
                    .find(|(origin, seq)| progress.vector().get(namespace, *origin) < *seq)
            };
            let Some((origin, seq)) = missing else {
                return Ok(());
            };
            // Ask the origin directly rather than wait for the next anti-entropy round.
            self.inner.replicator.nudge(origin);
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(KvError::ShuttingDown),
                Err(_) => {
                    let retry_at = self
                        .view()
                        .nodes
                        .get(&origin)
                        .map(|peer| peer.api_addr.clone());
                    return Err(KvError::NotCaughtUp {
                        namespace: namespace.clone(),
                        origin,
                        seq,
                        retry_at,
                    });
                }
            }
        }
    }

    /// Replication lag behind each origin node.
    pub fn lag(&self) -> BTreeMap<NodeId, Lag> {
        self.inner
            .progress
            .lock()
            .expect("progress lock is never poisoned")
            .lag_by_origin()
    }

    /// Counters since start, for metrics.
    pub fn stats(&self) -> &crate::KvStats {
        &self.inner.stats
    }

    pub fn vector(&self) -> VersionVector {
        self.inner
            .progress
            .lock()
            .expect("progress lock is never poisoned")
            .vector()
            .clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeBatch>> {
        self.inner.changes.subscribe()
    }

    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.inner.keyspace
    }

    /// Peer side of a push: apply durably, then relay.
    pub async fn apply_push(&self, request: PushRequest) -> Result<(), KvError> {
        // Refused while the disk is nearly full: the sender retries, anti-entropy repairs.
        self.inner.keyspace.store().health().check_space()?;
        let segments: Vec<Segment> = request.segments.iter().map(|s| s.segment.clone()).collect();
        let (reply, rx) = oneshot::channel();
        self.submit_background(Job::remote(segments, reply)).await?;
        rx.await.map_err(|_| KvError::ShuttingDown)??;
        for relayed in request.segments {
            if !relayed.relay_to.is_empty() {
                self.inner
                    .replicator
                    .relay(relayed.segment, &relayed.relay_to);
            }
        }
        Ok(())
    }

    /// Peer side of anti-entropy: one page of the writes the caller lacks.
    pub fn serve_sync(&self, request: &SyncRequest) -> Result<SyncResponse, KvError> {
        let view = self.view();
        let config = &self.inner.config;
        // Residency: serve only namespaces both ends may hold.
        let serves =
            |ns: &Namespace| view.allows(ns, self.inner.me) && view.allows(ns, request.from);
        let pager = SyncPager::new(
            request,
            serves,
            &self.vector(),
            config.sync_page_writes_max,
            config.sync_page_bytes_max,
        );
        read_page(&self.inner.keyspace, pager)
    }

    /// Waits until this replica's contiguous progress includes `vector` (tests, tools).
    pub async fn wait_includes(&self, vector: &VersionVector, timeout: Duration) -> bool {
        let mut changes = self.inner.progress_rx.clone();
        tokio::time::timeout(timeout, async {
            loop {
                changes.borrow_and_update();
                if self.vector().includes(vector) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }
}
