//! Eager push: after a group commit, each local segment is queued for every node its
//! namespace allows — directly inside this node's region, through one relay per other
//! region — and a sender task per peer delivers its queue in order, in batches.
//!
//! Queues are bounded (bytes and segments per peer): when one overflows, its oldest
//! segments are dropped and anti-entropy repairs the gap.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_proto::peer::kv_replication_client::KvReplicationClient;
use tokio::sync::{Notify, watch};
use tonic::transport::Channel;

use crate::peer_messages::{PushRequest, PushResponse, RelayedSegment};
use crate::writer::Outgoing;
use crate::{ChannelFactory, ClusterView, KvConfig, KvError, NodeId, Segment, wire};

#[derive(Default)]
struct Outbox {
    queue: VecDeque<RelayedSegment>,
    bytes: usize,
    dropped_segments: u64,
    running: bool,
}

struct Shared {
    me: NodeId,
    config: KvConfig,
    cluster: watch::Receiver<Arc<ClusterView>>,
    channels: ChannelFactory,
    outboxes: Mutex<BTreeMap<NodeId, Outbox>>,
    wakeups: Mutex<BTreeMap<NodeId, Arc<Notify>>>,
    nudges: Notify,
    nudged: Mutex<Option<NodeId>>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Clone)]
pub struct Replicator {
    shared: Arc<Shared>,
}

impl Outgoing for Replicator {
    fn local_segment(&self, segment: Segment) {
        let plan = self.shared.cluster.borrow().push_plan(&segment.namespace);
        for (target, relay_to) in plan {
            self.enqueue(
                target,
                RelayedSegment {
                    segment: segment.clone(),
                    relay_to,
                },
            );
        }
    }
}

impl Replicator {
    pub fn new(
        me: NodeId,
        config: KvConfig,
        cluster: watch::Receiver<Arc<ClusterView>>,
        channels: ChannelFactory,
        shutdown: watch::Receiver<bool>,
    ) -> Replicator {
        Replicator {
            shared: Arc::new(Shared {
                me,
                config,
                cluster,
                channels,
                outboxes: Mutex::new(BTreeMap::new()),
                wakeups: Mutex::new(BTreeMap::new()),
                nudges: Notify::new(),
                nudged: Mutex::new(None),
                shutdown,
            }),
        }
    }

    /// Forwards a segment received for relaying to the nodes of this region it names,
    /// if they may hold its namespace.
    pub fn relay(&self, segment: Segment, targets: &[NodeId]) {
        let view = self.shared.cluster.borrow().clone();
        for target in targets {
            if *target != self.shared.me && view.allows(&segment.namespace, *target) {
                self.enqueue(
                    *target,
                    RelayedSegment {
                        segment: segment.clone(),
                        relay_to: Vec::new(),
                    },
                );
            }
        }
    }

    /// Asks anti-entropy to sync with `origin` soon (a reader is waiting for its writes).
    pub fn nudge(&self, origin: NodeId) {
        if origin == self.shared.me {
            return;
        }
        *self
            .shared
            .nudged
            .lock()
            .expect("nudge lock is never poisoned") = Some(origin);
        self.shared.nudges.notify_one();
    }

    pub(crate) async fn nudged(&self) -> Option<NodeId> {
        self.shared.nudges.notified().await;
        self.shared
            .nudged
            .lock()
            .expect("nudge lock is never poisoned")
            .take()
    }

    fn enqueue(&self, target: NodeId, segment: RelayedSegment) {
        let bytes = segment.segment.bytes();
        let start = {
            let mut outboxes = self
                .shared
                .outboxes
                .lock()
                .expect("outbox lock is never poisoned");
            let outbox = outboxes.entry(target).or_default();
            outbox.queue.push_back(segment);
            outbox.bytes += bytes;
            while outbox.queue.len() > 1
                && (outbox.bytes > self.shared.config.outbox_bytes_max
                    || outbox.queue.len() > self.shared.config.outbox_segments_max)
            {
                if let Some(dropped) = outbox.queue.pop_front() {
                    outbox.bytes -= dropped.segment.bytes();
                    outbox.dropped_segments += 1;
                }
            }
            let start = !outbox.running;
            outbox.running = true;
            start
        };
        let wakeup = self
            .shared
            .wakeups
            .lock()
            .expect("wakeup lock is never poisoned")
            .entry(target)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        if start {
            tokio::spawn(self.clone().sender(target, wakeup.clone()));
        }
        wakeup.notify_one();
    }

    /// Takes the next batch for `target`, within the batch limits.
    fn next_batch(&self, target: NodeId) -> Vec<RelayedSegment> {
        let mut outboxes = self
            .shared
            .outboxes
            .lock()
            .expect("outbox lock is never poisoned");
        let Some(outbox) = outboxes.get_mut(&target) else {
            return Vec::new();
        };
        let mut batch = Vec::new();
        let (mut writes, mut bytes) = (0, 0);
        while let Some(next) = outbox.queue.front() {
            let size = next.segment.bytes();
            if !batch.is_empty()
                && (writes + next.segment.writes.len() > self.shared.config.push_batch_writes_max
                    || bytes + size > self.shared.config.push_batch_bytes_max)
            {
                break;
            }
            writes += next.segment.writes.len();
            bytes += size;
            outbox.bytes -= size;
            batch.push(outbox.queue.pop_front().expect("front exists"));
        }
        batch
    }

    fn requeue_front(&self, target: NodeId, batch: Vec<RelayedSegment>) {
        let mut outboxes = self
            .shared
            .outboxes
            .lock()
            .expect("outbox lock is never poisoned");
        let outbox = outboxes.entry(target).or_default();
        for segment in batch.into_iter().rev() {
            outbox.bytes += segment.segment.bytes();
            outbox.queue.push_front(segment);
        }
    }

    fn stop_sender(&self, target: NodeId) {
        let mut outboxes = self
            .shared
            .outboxes
            .lock()
            .expect("outbox lock is never poisoned");
        if let Some(outbox) = outboxes.get_mut(&target) {
            outbox.running = false;
        }
    }

    async fn sender(self, target: NodeId, wakeup: Arc<Notify>) {
        let mut shutdown = self.shared.shutdown.clone();
        let mut backoff = Duration::from_millis(50);
        loop {
            let batch = self.next_batch(target);
            if batch.is_empty() {
                tokio::select! {
                    _ = wakeup.notified() => continue,
                    _ = shutdown.changed() => break,
                }
            }
            let peer = self.shared.cluster.borrow().nodes.get(&target).cloned();
            let Some(peer) = peer else {
                // The node left the cluster: nothing to deliver to.
                tracing::info!(peer = %target, "dropping the push queue of a removed node");
                self.shared
                    .outboxes
                    .lock()
                    .expect("outbox lock is never poisoned")
                    .remove(&target);
                return;
            };
            match self.push(&peer.peer_addr, batch.clone()).await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(err) => {
                    tracing::debug!(peer = %target, error = %err, "push failed; will retry");
                    self.requeue_front(target, batch);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        self.stop_sender(target);
    }

    async fn push(&self, addr: &str, segments: Vec<RelayedSegment>) -> Result<(), KvError> {
        let request = PushRequest {
            from: self.shared.me,
            segments,
        };
        let mut client = self.client(addr)?;
        let mut call = tonic::Request::new(wire::KV_WIRE.seal(&request)?);
        call.set_timeout(self.shared.config.peer_rpc_timeout());
        let response = client
            .push(call)
            .await
            .map_err(|status| KvError::Unreachable {
                peer: addr.to_string(),
                reason: format!("{}: {}", status.code(), status.message()),
            })?;
        let _: PushResponse = wire::KV_WIRE.open(response.get_ref())?;
        Ok(())
    }

    pub(crate) fn client(&self, addr: &str) -> Result<KvReplicationClient<Channel>, KvError> {
        let channel = (self.shared.channels)(addr).map_err(|err| KvError::Unreachable {
            peer: addr.to_string(),
            reason: err.reason,
        })?;
        let bytes_max = self
            .shared
            .config
            .sync_page_bytes_max
            .max(self.shared.config.value_bytes_max)
            * 2
            + self.shared.config.push_batch_bytes_max;
        Ok(KvReplicationClient::new(channel)
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max))
    }

    /// Segments dropped from each peer's queue since start (overflow).
    pub fn dropped(&self) -> BTreeMap<NodeId, u64> {
        self.shared
            .outboxes
            .lock()
            .expect("outbox lock is never poisoned")
            .iter()
            .map(|(id, outbox)| (*id, outbox.dropped_segments))
            .collect()
    }
}
