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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Wall-clock time in Unix milliseconds (alarm due times are wall-clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub async fn run(host: ObjectHost, mut shutdown: watch::Receiver<bool>) {
    let index = host.inner().copies.alarm_index().clone();
    let firing: Arc<Mutex<HashSet<ObjectKey>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(FIRING_MAX));
    let me = host.inner().directory.me().id;
    let mut pending_elsewhere = false;
    loop {
        let now = now_ms();
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
        let now = now_ms();
        let due = index.due(now, OBJECTS_PER_WAKE_MAX);
        pending_elsewhere = false;
        for key in due {
            let owned = host
                .inner()
                .directory
                .read_local(|s| s.placement(&key).map(|p| p.owner == me))
                .await
                .unwrap_or(false);
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
            let (host, firing) = (host.clone(), firing.clone());
            tokio::spawn(async move {
                let result = host
                    .call_local(&key, Op::FireAlarms { now_ms: now_ms() }, None)
                    .await;
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
