//! When each object held on this node has its earliest alarm due.

use std::collections::{BTreeSet, HashMap};

use larder_directory::ObjectKey;
use tokio::sync::Notify;

/// The alarm scheduler's view of every copy on this node (owned or not), kept current
/// by every change to a copy, so a replica that becomes owner knows at once what is due.
#[derive(Default)]
pub struct AlarmIndex {
    inner: std::sync::Mutex<Inner>,
    /// Woken when an object's earliest alarm moves earlier.
    pub changed: Notify,
}

#[derive(Default)]
struct Inner {
    by_due: BTreeSet<(u64, ObjectKey)>,
    due_of: HashMap<ObjectKey, u64>,
}

impl AlarmIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("alarm index lock: no panics under it")
    }

    /// Records the object's earliest due time (`None`: it has no alarm).
    pub(crate) fn set(&self, key: &ObjectKey, due: Option<u64>) {
        let earlier = {
            let mut inner = self.lock();
            let old = inner.due_of.remove(key);
            if let Some(old) = old {
                inner.by_due.remove(&(old, key.clone()));
            }
            if let Some(due) = due {
                inner.due_of.insert(key.clone(), due);
                inner.by_due.insert((due, key.clone()));
            }
            due.is_some_and(|due| old.is_none_or(|old| due < old))
        };
        if earlier {
            self.changed.notify_one();
        }
    }

    /// Objects with an alarm due at `now_ms`, earliest first, at most `max`.
    pub fn due(&self, now_ms: u64, max: usize) -> Vec<ObjectKey> {
        let inner = self.lock();
        inner
            .by_due
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .take(max)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The earliest due time of all.
    pub fn next_due(&self) -> Option<u64> {
        let inner = self.lock();
        inner.by_due.first().map(|(due, _)| *due)
    }

    /// The earliest due time after `now_ms`.
    pub fn next_due_after(&self, now_ms: u64) -> Option<u64> {
        let inner = self.lock();
        let after = (
            now_ms + 1,
            ObjectKey {
                namespace: String::new().into(),
                id: String::new(),
            },
        );
        inner.by_due.range(after..).next().map(|(due, _)| *due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> ObjectKey {
        ObjectKey {
            namespace: "rooms".into(),
            id: id.into(),
        }
    }

    #[test]
    fn due_objects_come_earliest_first_and_moves_replace() {
        let index = AlarmIndex::default();
        index.set(&key("b"), Some(20));
        index.set(&key("a"), Some(30));
        index.set(&key("c"), Some(10));
        assert_eq!(index.due(25, 10), vec![key("c"), key("b")]);
        assert_eq!(index.due(25, 1), vec![key("c")]);
        assert_eq!(index.next_due(), Some(10));
        assert_eq!(index.next_due_after(10), Some(20));
        index.set(&key("c"), None);
        index.set(&key("b"), Some(40));
        assert_eq!(index.due(35, 10), vec![key("a")]);
        assert_eq!(index.next_due_after(30), Some(40));
    }
}
