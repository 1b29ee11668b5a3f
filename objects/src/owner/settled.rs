//! Which objects' copies this process can vouch for as owner.

use std::collections::HashMap;
use std::sync::Mutex;

use larder_base::Epoch;
use larder_directory::ObjectKey;

/// Objects remembered as settled; past it the memory is dropped, which only costs the
/// next activation of each a new epoch.
const SETTLED_TRACKED_MAX: usize = 100_000;

/// Objects this process activated as owner, with the epoch, whose own copy took every
/// write offered since: that copy is at least as far as any replica, so a cold start in
/// that epoch needs no state transfer (see `activation::resume`).
#[derive(Default)]
pub(crate) struct SettledCopies {
    settled: Mutex<HashMap<ObjectKey, Epoch>>,
}

impl SettledCopies {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Epoch>> {
        self.settled
            .lock()
            .expect("settled map is never poisoned: no panics under it")
    }

    /// This process's copy of `key` took everything the owner of `epoch` sent.
    pub fn settle(&self, key: &ObjectKey, epoch: Epoch) {
        let mut settled = self.lock();
        if settled.len() >= SETTLED_TRACKED_MAX {
            settled.clear();
        }
        settled.insert(key.clone(), epoch);
    }

    /// This node's copy of `key` may have missed a write its replicas took.
    pub fn unsettle(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }

    pub fn is_settled(&self, key: &ObjectKey, epoch: Epoch) -> bool {
        self.lock().get(key) == Some(&epoch)
    }
}
