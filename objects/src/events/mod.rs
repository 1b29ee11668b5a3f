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

//!
//! - `owned`: the owner's side: an object's committed and live events, a namespace's
//!   live events of the objects this node owns;
//! - `relay`: the subscriber's node: follows the owner wherever it is, merges a
//!   namespace's streams from every node.

mod owned;
mod relay;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use larder_directory::ObjectKey;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::op::Event;
use crate::peer_messages::OBJECTS_WIRE;
use crate::{Namespace, ObjectError};

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
    namespaces: Mutex<HashMap<Namespace, broadcast::Sender<(ObjectKey, Event)>>>,
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

    pub(super) fn object(&self, key: &ObjectKey) -> broadcast::Receiver<Event> {
        let mut objects = self.objects.lock().expect("event hub: no panics under it");
        objects
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(BROADCAST_BUFFER).0)
            .subscribe()
    }

    pub(super) fn namespace(
        &self,
        namespace: &Namespace,
    ) -> broadcast::Receiver<(ObjectKey, Event)> {
        let mut namespaces = self
            .namespaces
            .lock()
            .expect("event hub: no panics under it");
        namespaces
            .entry(namespace.clone())
            .or_insert_with(|| broadcast::channel(BROADCAST_BUFFER).0)
            .subscribe()
    }
}

pub type DeliveryResult = Result<Delivery, ObjectError>;
pub type NamespaceDelivery = Result<Option<(ObjectKey, Event)>, ObjectError>;

/// A peer request's envelope.
fn sealed<T: Serialize>(value: &T) -> Result<larder_proto::peer::Envelope, ObjectError> {
    OBJECTS_WIRE
        .seal(value)
        .map_err(|err| ObjectError::Storage(err.to_string()))
}
