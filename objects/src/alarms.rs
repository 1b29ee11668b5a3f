//! The alarm scheduler: fires the due alarms of the objects this node owns.
//!
//! Every node indexes the alarms of every copy it holds (see
//! [`crate::object_store::AlarmIndex`]), so when a replica becomes owner it already
//! knows what is due. The scheduler sleeps until the earliest due time (or until an
//! earlier alarm is set), then sends each due object it owns a `FireAlarms` call through
//! the object's mailbox, like any other write. Due alarms of objects owned elsewhere stay
//! in the index and are looked at again shortly: when their owner fires them, the
//! replicated removal takes them out; when their owner fails, this node may be the next.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_directory::ObjectKey;
use tokio::sync::{Semaphore, watch};

use crate::ObjectHost;
use crate::op::Op;

/// Longest sleep between looks at the index.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Pause before looking again at alarms that are due but were not fired here (owned
/// elsewhere, or the firing failed).
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Objects looked at per wake-up.
const OBJECTS_PER_WAKE_MAX: usize = 1024;
/// Objects firing at once.
const FIRING_MAX: usize = 64;

pub async fn run(host: ObjectHost, mut shutdown: watch::Receiver<bool>) {
    let index = host.copies().alarm_index().clone();
    let clock = host.clock().clone();
    let firing: Arc<Mutex<HashSet<ObjectKey>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(FIRING_MAX));
    let me = host.placements().me();
    let mut pending_elsewhere = false;
    loop {
        let now = clock.now_ms();
        let next = if pending_elsewhere {
            index.next_due_after(now)
        } else {
            index.next_due()
        };
        let mut wait = next.map_or(IDLE_CHECK, |due| {
            Duration::from_millis(due.saturating_sub(now)).min(IDLE_CHECK)
        });
        if pending_elsewhere {
            wait = wait.min(RETRY_PAUSE);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = index.changed.notified() => {}
            _ = shutdown.changed() => return,
        }
        let now = clock.now_ms();
        let due = index.due(now, OBJECTS_PER_WAKE_MAX);
        pending_elsewhere = false;
        for key in due {
            let owned = host
                .placements()
                .known(&key)
                .await
                .is_some_and(|p| p.owner == me);
            if !owned {
                pending_elsewhere = true;
                continue;
            }
            let started = firing
                .lock()
                .expect("firing set: no panics under it")
                .insert(key.clone());
            if !started {
                pending_elsewhere = true;
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (host, firing, clock) = (host.clone(), firing.clone(), clock.clone());
            tokio::spawn(async move {
                let fire = Op::FireAlarms {
                    now_ms: clock.now_ms(),
                };
                let result = host.call_owned(&key, fire, None).await;
                match result {
                    Ok(_) => tracing::debug!(object = %key, "alarms fired"),
                    Err(err) => {
                        tracing::warn!(object = %key, error = %err, "firing alarms failed; will retry")
                    }
                }
                firing
                    .lock()
                    .expect("firing set: no panics under it")
                    .remove(&key);
                drop(permit);
            });
            // The firing takes the object out of the index when it commits; until then
            // it is still due, and in flight.
            pending_elsewhere = true;
        }
    }
}
