//! Object events (alarms fired, messages published) delivered to subscribers.
//!
//! Events are part of an object's replicated state: each is written to a majority
//! before anyone sees it, numbered without gaps, and the last ones stay in the object's
//! log. That makes an object subscription resumable and exact: the owner sends the
//! committed events after the subscriber's position, then live ones from a broadcast
//! it joined before reading, skipping what was already sent. The node a subscriber is
//! connected to relays from whichever node owns the object, and when the owner changes
//! (failover, move) it reconnects to the new one from the last position it passed on.
//!
//! A namespace subscription is live only: each node sends the events of the objects it
//! owns, and the subscriber's node merges the streams of every node.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use larder_directory::{NodeId, ObjectKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::host::ObjectHost;
use crate::op::{Event, Op, Reply};
use crate::peer_messages::{self, NamespaceSubscribeRequest, SubscribeRequest};
use crate::{ObjectError, ObjectId};

/// Events buffered per subscription between its producer and its gRPC stream.
pub const SUBSCRIPTION_BUFFER: usize = 64;
/// Live events buffered per object or namespace for subscribers that fall behind; one
/// that falls further behind re-reads the object's log (or, for a namespace, misses
/// them and is told so in the log).
const BROADCAST_BUFFER: usize = 256;
/// How often an owner checks it still owns a subscribed object, and tells the relaying
/// node it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A relay that hears nothing from the owner for this long reconnects.
const SILENCE_MAX: Duration = Duration::from_secs(5);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often a namespace subscription looks for nodes it is not connected to.
const NAMESPACE_REFRESH: Duration = Duration::from_secs(2);

/// What an owner sends a relaying node for one object subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Delivery {
    /// First message: the log position the stream starts after.
    Start {
        after: u64,
    },
    Event(Event),
    /// Events `from..=until` are no longer in the log.
    Gap {
        from: u64,
        until: u64,
    },
    /// The owner is alive and still owns the object.
    Heartbeat,
}

/// What a subscriber receives: one object's event or gap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ObjectEventOut {
    Event {
        key: ObjectKey,
        event: Event,
    },
    Gap {
        key: ObjectKey,
        from: u64,
        until: u64,
    },
}

/// Live events of the objects this node owns, for their subscribers.
#[derive(Default)]
pub(crate) struct EventHub {
    objects: Mutex<HashMap<ObjectKey, broadcast::Sender<Event>>>,
    namespaces: Mutex<HashMap<String, broadcast::Sender<(ObjectKey, Event)>>>,
}

impl EventHub {
    /// Passes on events the owner just committed.
    pub fn publish(&self, key: &ObjectKey, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        {
            let mut objects = self.objects.lock().expect("event hub: no panics under it");
            if let Some(tx) = objects.get(key) {
                let delivered = events.iter().all(|e| tx.send(e.clone()).is_ok());
                if !delivered {
                    objects.remove(key);
                }
            }
        }
        let mut namespaces = self
            .namespaces
            .lock()
            .expect("event hub: no panics under it");
        if let Some(tx) = namespaces.get(&key.namespace) {
            let delivered = events
                .iter()
                .all(|e| tx.send((key.clone(), e.clone())).is_ok());
            if !delivered {
                namespaces.remove(&key.namespace);
            }
        }
    }

    fn object(&self, key: &ObjectKey) -> broadcast::Receiver<Event> {
        let mut objects = self.objects.lock().expect("event hub: no panics under it");
        objects
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(BROADCAST_BUFFER).0)
            .subscribe()
    }

    fn namespace(&self, namespace: &str) -> broadcast::Receiver<(ObjectKey, Event)> {
        let mut namespaces = self
            .namespaces
            .lock()
            .expect("event hub: no panics under it");
        namespaces
            .entry(namespace.to_string())
            .or_insert_with(|| broadcast::channel(BROADCAST_BUFFER).0)
            .subscribe()
    }
}

pub type DeliveryResult = Result<Delivery, ObjectError>;
pub type NamespaceDelivery = Result<Option<(ObjectKey, Event)>, ObjectError>;

impl ObjectHost {
    /// Serves one object's events while this node owns it: the committed ones after
    /// `after` (none: from now), then live ones, with heartbeats. Ends with an error
    /// when this node stops owning the object.
    pub fn subscribe_owned(&self, request: SubscribeRequest) -> mpsc::Receiver<DeliveryResult> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let host = self.clone();
        tokio::spawn(async move {
            if let Err(err) = host.serve_owned(&request.key, request.after, &tx).await {
                let _ = tx.send(Err(err)).await;
            }
        });
        rx
    }

    async fn serve_owned(
        &self,
        key: &ObjectKey,
        after: Option<u64>,
        tx: &mpsc::Sender<DeliveryResult>,
    ) -> Result<(), ObjectError> {
        let mut live = self.inner().events.object(key);
        let mut sent = self.catch_up(key, after, tx, true).await?;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if event.seq <= sent => {}
                    Ok(event) if event.seq == sent + 1 => {
                        sent = event.seq;
                        if tx.send(Ok(Delivery::Event(event))).await.is_err() {
                            return Ok(());
                        }
                    }
                    // Missed some (fell behind the broadcast, or a write committed
                    // between reading the log and joining): read the log again.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        sent = self.catch_up(key, Some(sent), tx, false).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(ObjectError::Unavailable {
                            reason: "event source closed".into(),
                            retry_at: None,
                        });
                    }
                },
                _ = heartbeat.tick() => {
                    self.check_owner(key).await?;
                    if tx.send(Ok(Delivery::Heartbeat)).await.is_err() {
                        return Ok(());
                    }
                }
                _ = tx.closed() => return Ok(()),
            }
        }
    }

    /// Sends the committed events after `after` (with a gap first if some are gone) and
    /// returns the position reached; `first` also sends where the stream starts.
    async fn catch_up(
        &self,
        key: &ObjectKey,
        after: Option<u64>,
        tx: &mpsc::Sender<DeliveryResult>,
        first: bool,
    ) -> Result<u64, ObjectError> {
        let reply = self
            .call_local(key, Op::Events { after }, None)
            .await?
            .reply;
        let Reply::Events {
            events,
            last_seq,
            oldest_seq,
        } = reply
        else {
            return Err(ObjectError::Storage(format!(
                "unexpected reply to an events read: {reply:?}"
            )));
        };
        let start = after.unwrap_or(last_seq);
        let mut out = Vec::with_capacity(events.len() + 2);
        if first {
            out.push(Delivery::Start { after: start });
        }
        if start + 1 < oldest_seq {
            out.push(Delivery::Gap {
                from: start + 1,
                until: oldest_seq - 1,
            });
        }
        out.extend(events.into_iter().map(Delivery::Event));
        for delivery in out {
            if tx.send(Ok(delivery)).await.is_err() {
                break;
            }
        }
        Ok(last_seq.max(start))
    }

    async fn check_owner(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        let me = self.inner().directory.me().id;
        let owner = self
            .inner()
            .directory
            .read_local(|s| s.placement(key).map(|p| p.owner))
            .await;
        match owner {
            Some(owner) if owner == me => Ok(()),
            _ => Err(ObjectError::Unavailable {
                reason: format!("node {me} no longer owns {key}"),
                retry_at: None,
            }),
        }
    }

    /// An object's events for a subscriber of this node, wherever the object's owner is
    /// and whenever it changes: after `after` (none: from now), then live, until the
    /// receiver is dropped or the subscription cannot be served (for example, an
    /// unknown namespace).
    pub fn subscribe(
        &self,
        namespace: &str,
        id: &ObjectId,
        location_hint: Option<String>,
        after: Option<u64>,
    ) -> mpsc::Receiver<Result<ObjectEventOut, ObjectError>> {
        let key = ObjectKey {
            namespace: namespace.to_string(),
            id: id.as_str().to_string(),
        };
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let host = self.clone();
        tokio::spawn(async move { host.relay(key, location_hint, after, tx).await });
        rx
    }

    async fn relay(
        &self,
        key: ObjectKey,
        location_hint: Option<String>,
        mut after: Option<u64>,
        tx: mpsc::Sender<Result<ObjectEventOut, ObjectError>>,
    ) {
        let mut backoff = Duration::from_millis(50);
        while !tx.is_closed() {
            let placement = match self.placement(&key, location_hint.as_deref()).await {
                Ok(placement) => placement,
                Err(err @ (ObjectError::Unavailable { .. } | ObjectError::Superseded { .. })) => {
                    tracing::debug!(object = %key, error = %err, "subscription waits for a placement");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    continue;
                }
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            let request = SubscribeRequest {
                key: key.clone(),
                after,
            };
            let mut source = match self.owner_stream(placement.owner, request).await {
                Ok(source) => source,
                Err(err) => {
                    tracing::debug!(object = %key, owner = %placement.owner, error = %err, "subscription cannot reach the owner");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(SILENCE_MAX, source.recv()) => next,
                    _ = tx.closed() => return,
                };
                let out = match next {
                    Ok(Some(Ok(Delivery::Start { after: start }))) => {
                        after = Some(after.unwrap_or(start));
                        continue;
                    }
                    Ok(Some(Ok(Delivery::Heartbeat))) => {
                        backoff = Duration::from_millis(50);
                        continue;
                    }
                    Ok(Some(Ok(Delivery::Event(event)))) => {
                        if after.is_some_and(|a| event.seq <= a) {
                            continue;
                        }
                        after = Some(event.seq);
                        ObjectEventOut::Event {
                            key: key.clone(),
                            event,
                        }
                    }
                    Ok(Some(Ok(Delivery::Gap { from, until }))) => {
                        after = Some(until);
                        ObjectEventOut::Gap {
                            key: key.clone(),
                            from,
                            until,
                        }
                    }
                    Ok(Some(Err(err))) => {
                        tracing::debug!(object = %key, error = %err, "subscription source ended");
                        break;
                    }
                    Ok(None) | Err(_) => break,
                };
                if tx.send(Ok(out)).await.is_err() {
                    return;
                }
            }
            // The owner changed or failed: look the placement up again after a pause.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
    }

    /// The owner's delivery stream, local or over the peer listener.
    async fn owner_stream(
        &self,
        owner: NodeId,
        request: SubscribeRequest,
    ) -> Result<mpsc::Receiver<DeliveryResult>, ObjectError> {
        if owner == self.inner().directory.me().id {
            return Ok(self.subscribe_owned(request));
        }
        let mut client = self.peer_client(owner).await?;
        let call = tonic::Request::new(peer_messages::seal(&request)?);
        let stream = client
            .subscribe(call)
            .await
            .map_err(|status| unreachable(owner, &status))?
            .into_inner();
        Ok(open_stream(owner, stream))
    }

    /// Live events of the objects this node owns in `namespace` whose id starts with
    /// `id_prefix`; `Ok(None)` is a heartbeat.
    pub fn subscribe_namespace_owned(
        &self,
        request: NamespaceSubscribeRequest,
    ) -> mpsc::Receiver<NamespaceDelivery> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let mut live = self.inner().events.namespace(&request.namespace);
        tokio::spawn(async move {
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            loop {
                let out = tokio::select! {
                    received = live.recv() => match received {
                        Ok((key, event)) if key.id.starts_with(&request.id_prefix) => {
                            Some((key, event))
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(namespace = %request.namespace, missed, "namespace subscriber fell behind; events skipped");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = heartbeat.tick() => None,
                    _ = tx.closed() => return,
                };
                if tx.send(Ok(out)).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Live events of every object of `namespace` (ids starting with `id_prefix`),
    /// merged from every node, for a subscriber of this node.
    pub async fn subscribe_namespace(
        &self,
        namespace: &str,
        id_prefix: String,
    ) -> Result<mpsc::Receiver<Result<ObjectEventOut, ObjectError>>, ObjectError> {
        let known = self
            .inner()
            .directory
            .read_local(|s| s.namespace(namespace).is_some())
            .await;
        if !known {
            return Err(ObjectError::NamespaceNotFound(namespace.to_string()));
        }
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let host = self.clone();
        let request = NamespaceSubscribeRequest {
            namespace: namespace.to_string(),
            id_prefix,
        };
        tokio::spawn(async move { host.merge_namespace(request, tx).await });
        Ok(rx)
    }

    async fn merge_namespace(
        &self,
        request: NamespaceSubscribeRequest,
        tx: mpsc::Sender<Result<ObjectEventOut, ObjectError>>,
    ) {
        let connected: std::sync::Arc<Mutex<HashSet<NodeId>>> = Default::default();
        let mut refresh = tokio::time::interval(NAMESPACE_REFRESH);
        loop {
            tokio::select! {
                _ = refresh.tick() => {}
                _ = tx.closed() => return,
            }
            let nodes: Vec<NodeId> = self
                .inner()
                .directory
                .read_local(|s| s.nodes.keys().copied().collect())
                .await;
            for node in nodes {
                let fresh = connected
                    .lock()
                    .expect("connected set: no panics under it")
                    .insert(node);
                if !fresh {
                    continue;
                }
                let (host, request, tx, connected) =
                    (self.clone(), request.clone(), tx.clone(), connected.clone());
                tokio::spawn(async move {
                    host.feed_namespace(node, request, tx).await;
                    connected
                        .lock()
                        .expect("connected set: no panics under it")
                        .remove(&node);
                });
            }
        }
    }

    /// Passes on one node's namespace events until its stream ends or goes silent.
    async fn feed_namespace(
        &self,
        node: NodeId,
        request: NamespaceSubscribeRequest,
        tx: mpsc::Sender<Result<ObjectEventOut, ObjectError>>,
    ) {
        let mut source = if node == self.inner().directory.me().id {
            self.subscribe_namespace_owned(request)
        } else {
            match self.remote_namespace_stream(node, request).await {
                Ok(source) => source,
                Err(err) => {
                    tracing::debug!(node = %node, error = %err, "namespace subscription cannot reach a node");
                    return;
                }
            }
        };
        let silence_until = || Instant::now() + SILENCE_MAX;
        let mut deadline = silence_until();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout_at(deadline, source.recv()) => next,
                _ = tx.closed() => return,
            };
            match next {
                Ok(Some(Ok(Some((key, event))))) => {
                    deadline = silence_until();
                    if tx
                        .send(Ok(ObjectEventOut::Event { key, event }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Some(Ok(None))) => deadline = silence_until(),
                Ok(Some(Err(_)) | None) | Err(_) => return,
            }
        }
    }

    async fn remote_namespace_stream(
        &self,
        node: NodeId,
        request: NamespaceSubscribeRequest,
    ) -> Result<mpsc::Receiver<NamespaceDelivery>, ObjectError> {
        let mut client = self.peer_client(node).await?;
        let call = tonic::Request::new(peer_messages::seal(&request)?);
        let stream = client
            .subscribe_namespace(call)
            .await
            .map_err(|status| unreachable(node, &status))?
            .into_inner();
        Ok(open_stream(node, stream))
    }
}

/// Decodes a peer stream of `Result<T, ObjectError>` envelopes into a channel that
/// ends after the first error.
fn open_stream<T>(
    node: NodeId,
    mut stream: tonic::Streaming<larder_proto::peer::Envelope>,
) -> mpsc::Receiver<Result<T, ObjectError>>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let delivery = item
                .map_err(|status| unreachable(node, &status))
                .and_then(|envelope| {
                    peer_messages::open::<Result<T, ObjectError>>(&envelope)
                        .map_err(ObjectError::Storage)?
                });
            let stop = delivery.is_err();
            if tx.send(delivery).await.is_err() || stop {
                return;
            }
        }
    });
    rx
}

fn unreachable(node: NodeId, status: &tonic::Status) -> ObjectError {
    ObjectError::Unavailable {
        reason: format!("node {node}: {}", status.message()),
        retry_at: None,
    }
}
