//! The actors of the objects this node owns, by object: calls go to the object's
//! mailbox, and an actor is started on the first call (a cold start from storage).
//! At most `objects.active_objects_max` are kept: starting one more makes the least
//! recently called leave memory, as it would when idle.

use std::sync::{Arc, Mutex};

use larder_directory::ObjectKey;
use lru::LruCache;
use tokio::sync::{Notify, mpsc, oneshot};

use super::OwnerContext;
use super::actor::Actor;
use super::batch::Call;
use crate::ObjectError;
use crate::op::{Answer, Op};

/// Times a call is handed to a fresh actor when the one it reached stops first.
const CALL_ATTEMPTS_MAX: usize = 3;

/// A running actor's mailbox, and how to make it leave memory.
struct Mailbox {
    calls: mpsc::Sender<Call>,
    leave: Arc<Notify>,
}

/// The mailboxes, least recently called first out.
type Mailboxes = LruCache<ObjectKey, Mailbox>;

pub(crate) struct Actors {
    mailboxes: Mutex<Mailboxes>,
    context: OwnerContext,
}

impl Actors {
    pub fn new(context: OwnerContext) -> Arc<Actors> {
        Arc::new(Actors {
            mailboxes: Mutex::new(LruCache::unbounded()),
            context,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mailboxes> {
        self.mailboxes
            .lock()
            .expect("actor map is never poisoned: no panics under it")
    }

    /// Runs `op` in the object's actor on this node (which refuses unless this node
    /// owns the object).
    pub async fn call(
        self: &Arc<Self>,
        key: &ObjectKey,
        op: Op,
        request_id: Option<String>,
    ) -> Result<Answer, ObjectError> {
        for _ in 0..CALL_ATTEMPTS_MAX {
            let (reply, answer) = oneshot::channel();
            let call = Call {
                op: op.clone(),
                request_id: request_id.clone(),
                reply,
            };
            match self.mailbox(key).try_send(call) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(ObjectError::Overloaded(self.context.config.mailbox_max));
                }
                // The actor just stopped (idle or deposed): start a fresh one.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.forget(key);
                    continue;
                }
            }
            match answer.await {
                Ok(result) => return result,
                // The actor stopped before running the call: run it on a fresh one.
                Err(_) => self.forget(key),
            }
        }
        Err(ObjectError::Unavailable {
            reason: "the object's actor keeps stopping".into(),
            retry_at: None,
        })
    }

    fn mailbox(self: &Arc<Self>, key: &ObjectKey) -> mpsc::Sender<Call> {
        let mut mailboxes = self.lock();
        if let Some(mailbox) = mailboxes.get(key)
            && !mailbox.calls.is_closed()
        {
            return mailbox.calls.clone();
        }
        // At the bound the least recently called object leaves memory for this one (its
        // actor stops as when idle; a later call starts it from storage again).
        while mailboxes.len() >= self.context.config.active_objects_max {
            match mailboxes.pop_lru() {
                Some((_, evicted)) => evicted.leave.notify_one(),
                None => break,
            }
        }
        let (tx, rx) = mpsc::channel(self.context.config.mailbox_max);
        let leave = Arc::new(Notify::new());
        let mailbox = Mailbox {
            calls: tx.clone(),
            leave: leave.clone(),
        };
        mailboxes.put(key.clone(), mailbox);
        let (actors, key) = (self.clone(), key.clone());
        tokio::spawn(async move {
            Actor::new(actors.context.clone(), key.clone())
                .run(rx, &leave)
                .await;
            actors.forget(&key);
        });
        tx
    }

    /// Drops the object's mailbox once its actor has stopped.
    fn forget(&self, key: &ObjectKey) {
        let mut mailboxes = self.lock();
        if mailboxes
            .peek(key)
            .is_some_and(|mailbox| mailbox.calls.is_closed())
        {
            mailboxes.pop(key);
        }
    }

    /// Objects with an actor in memory on this node (owned and serving, or stopping).
    pub fn active(&self) -> usize {
        self.lock().len()
    }
}
