//! The owner's side of subscriptions.

use tokio::sync::{broadcast, mpsc};

use super::{Delivery, DeliveryResult, HEARTBEAT, NamespaceDelivery, SUBSCRIPTION_BUFFER};
use crate::ObjectError;
use crate::host::ObjectHost;
use crate::op::{Op, Reply};
use crate::peer_messages::{NamespaceSubscribeRequest, SubscribeRequest};
use larder_directory::ObjectKey;

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
        let mut live = self.events().object(key);
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
            .call_owned(key, Op::Events { after }, None)
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
        let me = self.placements().me();
        let owner = self.placements().known(key).await.map(|p| p.owner);
        match owner {
            Some(owner) if owner == me => Ok(()),
            _ => Err(ObjectError::Unavailable {
                reason: format!("node {me} no longer owns {key}"),
                retry_at: None,
            }),
        }
    }

    /// Live events of the objects this node owns in `namespace` whose id starts with
    /// `id_prefix`; `Ok(None)` is a heartbeat.
    pub fn subscribe_namespace_owned(
        &self,
        request: NamespaceSubscribeRequest,
    ) -> mpsc::Receiver<NamespaceDelivery> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let mut live = self.events().namespace(&request.namespace);
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
}
