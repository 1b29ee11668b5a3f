//! The subscriber's node: relays an object's events from wherever its owner is, and
//! merges a namespace's live events from every node.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use larder_directory::{NodeId, ObjectKey};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Delivery, DeliveryResult, NAMESPACE_REFRESH, NamespaceDelivery, ObjectEventOut,
    RECONNECT_BACKOFF_MAX, SILENCE_MAX, SUBSCRIPTION_BUFFER, sealed,
};
use crate::host::ObjectHost;
use crate::peer_messages::{NamespaceSubscribeRequest, SubscribeRequest};
use crate::{Namespace, ObjectError, ObjectId};

impl ObjectHost {
    /// An object's events for a subscriber of this node, wherever the object's owner is
    /// and whenever it changes: after `after` (none: from now), then live, until the
    /// receiver is dropped or the subscription cannot be served (for example, an
    /// unknown namespace). An object never written is not placed by this: its events
    /// come from its first write on.
    pub fn subscribe(
        &self,
        namespace: &Namespace,
        id: &ObjectId,
        after: Option<u64>,
    ) -> mpsc::Receiver<Result<ObjectEventOut, ObjectError>> {
        let key = ObjectKey {
            namespace: namespace.clone(),
            id: id.as_str().to_string(),
        };
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let host = self.clone();
        tokio::spawn(async move { host.relay(key, after, tx).await });
        rx
    }

    async fn relay(
        &self,
        key: ObjectKey,
        after: Option<u64>,
        tx: mpsc::Sender<Result<ObjectEventOut, ObjectError>>,
    ) {
        // Taken before the first look, so that a placement committed after it wakes us.
        let mut applied = self.placements().directory().reader().subscribe();
        let mut position = RelayPosition { key, after };
        // "From now" for an object this node does not know yet is from its first event:
        // the first write may commit (placing it) before this relay reaches the owner,
        // and a stream "from now" opened after it would never deliver it.
        if position.after.is_none() && self.placements().known(&position.key).await.is_none() {
            position.after = Some(0);
        }
        let mut backoff = Backoff::default();
        let mut unplaced = false;
        while !tx.is_closed() {
            let key = &position.key;
            if self.namespace_deleted(key).await {
                let _ = tx
                    .send(Err(ObjectError::NamespaceNotFound(key.namespace.clone())))
                    .await;
                return;
            }
            // Subscribing is a read: it never places the object. It waits for the first
            // write to place it, from the start of its log, so no event is missed: once
            // the leader said it was not placed, this node's view is asked again each
            // time the directory applies entries.
            let found = if unplaced {
                Ok(self.placements().known(key).await)
            } else {
                self.placements().find(key).await
            };
            let placement = match found {
                Ok(Some(placement)) => placement,
                Ok(None) => {
                    unplaced = true;
                    position.after.get_or_insert(0);
                    // Woken by each applied batch; the bound keeps a wake-up that never
                    // comes from stalling the subscriber past it (one local look a
                    // second while the object is unplaced).
                    tokio::select! {
                        changed = applied.changed() => if changed.is_err() { return },
                        _ = tokio::time::sleep(UNPLACED_RECHECK) => {}
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                Err(err @ (ObjectError::Unavailable { .. } | ObjectError::Superseded { .. })) => {
                    tracing::debug!(object = %key, error = %err, "subscription waits for a placement");
                    backoff.pause().await;
                    continue;
                }
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            let request = SubscribeRequest {
                key: key.clone(),
                after: position.after,
            };
            match self.owner_stream(placement.owner, request).await {
                Ok(source) => {
                    // Until the source ends, or the namespace is deleted (the owner's
                    // stream of a deleted object only ever sends heartbeats).
                    let key = position.key.clone();
                    let passed = tokio::select! {
                        more = pass_on(&mut position, source, &tx, &mut backoff) => more,
                        () = self.until_namespace_deleted(&key) => true,
                    };
                    if !passed {
                        return;
                    }
                }
                Err(err) => {
                    tracing::debug!(object = %key, owner = %placement.owner, error = %err, "subscription cannot reach the owner");
                }
            }
            // The owner changed or failed: look the placement up again after a pause.
            backoff.pause().await;
        }
    }

    /// Whether the object's namespace (incarnation) was deleted, as this node applied
    /// the directory.
    async fn namespace_deleted(&self, key: &ObjectKey) -> bool {
        self.placements()
            .directory()
            .read_local(|s| s.is_deleted(&key.namespace))
            .await
    }

    /// Returns once the object's namespace is deleted: looked at once a second, not on
    /// every applied batch (placements apply thousands a second, and every relayed
    /// subscription would wake for each).
    async fn until_namespace_deleted(&self, key: &ObjectKey) {
        let mut ticker = tokio::time::interval(UNPLACED_RECHECK);
        loop {
            ticker.tick().await;
            if self.namespace_deleted(key).await {
                return;
            }
        }
    }

    /// The owner's delivery stream, local or over the peer listener.
    async fn owner_stream(
        &self,
        owner: NodeId,
        request: SubscribeRequest,
    ) -> Result<mpsc::Receiver<DeliveryResult>, ObjectError> {
        if owner == self.placements().me() {
            return Ok(self.subscribe_owned(request));
        }
        let mut client = self.peers().client_of(owner).await?;
        let call = tonic::Request::new(sealed(&request)?);
        let stream = client
            .subscribe(call)
            .await
            .map_err(|status| unreachable(owner, &status))?
            .into_inner();
        Ok(open_stream(owner, stream))
    }

    /// Live events of every object of `namespace` (ids starting with `id_prefix`),
    /// merged from every node, for a subscriber of this node.
    pub async fn subscribe_namespace(
        &self,
        namespace: &Namespace,
        id_prefix: String,
    ) -> Result<mpsc::Receiver<Result<ObjectEventOut, ObjectError>>, ObjectError> {
        if !self.placements().namespace_exists(namespace).await {
            return Err(ObjectError::NamespaceNotFound(namespace.clone()));
        }
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let host = self.clone();
        let request = NamespaceSubscribeRequest {
            namespace: namespace.clone(),
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
                .placements()
                .directory()
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
        let mut source = if node == self.placements().me() {
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
        let mut client = self.peers().client_of(node).await?;
        let call = tonic::Request::new(sealed(&request)?);
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
                    crate::peers::open::<Result<T, ObjectError>>(node, &envelope)?
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

/// The first pause before a relay looks for the owner again.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// How long a subscription to an unplaced object waits for the directory before it
/// looks again anyway.
const UNPLACED_RECHECK: Duration = Duration::from_secs(1);

/// Reconnection pauses of a relay: doubling up to [`RECONNECT_BACKOFF_MAX`], back to
/// the start once an owner's stream is healthy.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(RECONNECT_BACKOFF_MIN)
    }
}

impl Backoff {
    async fn pause(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

/// Passes on an owner's deliveries until its stream ends or goes silent (`true`: look
/// for the owner again) or the subscriber leaves (`false`).
async fn pass_on(
    position: &mut RelayPosition,
    mut source: mpsc::Receiver<DeliveryResult>,
    tx: &mpsc::Sender<Result<ObjectEventOut, ObjectError>>,
    backoff: &mut Backoff,
) -> bool {
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(SILENCE_MAX, source.recv()) => next,
            _ = tx.closed() => return false,
        };
        let delivery = match next {
            Ok(Some(Ok(delivery))) => delivery,
            Ok(Some(Err(err))) => {
                tracing::debug!(object = %position.key, error = %err, "subscription source ended");
                return true;
            }
            Ok(None) | Err(_) => return true,
        };
        if matches!(delivery, Delivery::Heartbeat) {
            *backoff = Backoff::default();
        }
        if let Some(out) = position.take(delivery)
            && tx.send(Ok(out)).await.is_err()
        {
            return false;
        }
    }
}

/// Where a relayed subscription is in the object's event log, across owners: the
/// deliveries of each new owner stream are passed on from there, never twice.
struct RelayPosition {
    key: ObjectKey,
    /// The last event (or gap end) passed on; `None`: nothing yet, from where the first
    /// stream starts.
    after: Option<u64>,
}

impl RelayPosition {
    /// What to pass on for `delivery`, if anything.
    fn take(&mut self, delivery: Delivery) -> Option<ObjectEventOut> {
        match delivery {
            Delivery::Start { after: start } => {
                self.after = Some(self.after.unwrap_or(start));
                None
            }
            Delivery::Heartbeat => None,
            Delivery::Event(event) if self.after.is_some_and(|a| event.seq <= a) => None,
            Delivery::Event(event) => {
                self.after = Some(event.seq);
                Some(ObjectEventOut::Event {
                    key: self.key.clone(),
                    event,
                })
            }
            Delivery::Gap { from, until } => {
                self.after = Some(until);
                Some(ObjectEventOut::Gap {
                    key: self.key.clone(),
                    from,
                    until,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Event, EventKind};

    fn event(seq: u64) -> Delivery {
        Delivery::Event(Event {
            seq,
            at_ms: 0,
            kind: EventKind::Published {
                payload: Vec::new(),
            },
        })
    }

    fn passed(position: &mut RelayPosition, deliveries: Vec<Delivery>) -> Vec<(u64, u64)> {
        deliveries
            .into_iter()
            .filter_map(|d| position.take(d))
            .map(|out| match out {
                ObjectEventOut::Event { event, .. } => (event.seq, event.seq),
                ObjectEventOut::Gap { from, until, .. } => (from, until),
            })
            .collect()
    }

    #[test]
    fn a_relay_passes_each_event_once_across_owner_streams() {
        let key = ObjectKey {
            namespace: "rooms".into(),
            id: "r".into(),
        };
        let mut position = RelayPosition { key, after: None };
        let first = vec![
            Delivery::Start { after: 4 },
            event(5),
            event(6),
            Delivery::Heartbeat,
        ];
        assert_eq!(passed(&mut position, first), vec![(5, 5), (6, 6)]);
        // The next owner's stream starts earlier (it replays from the log): what was
        // passed on already is skipped; a gap moves the position past what is gone.
        let second = vec![
            Delivery::Start { after: 2 },
            event(5),
            event(6),
            event(7),
            Delivery::Gap { from: 8, until: 9 },
            event(10),
        ];
        assert_eq!(
            passed(&mut position, second),
            vec![(7, 7), (8, 9), (10, 10)]
        );
        assert_eq!(position.after, Some(10));
    }
}
