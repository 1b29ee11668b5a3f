//! Durable object storage on one node — the owner's and every replica's copy.
//!
//! The store looks up a copy's [`ReplicaMeta`], asks the pure rules in [`fencing`]
//! what to do with an offer (fence it off, acknowledge it again, report a gap, apply or
//! install it), and does that: every change is one atomic batch per write, flushed
//! before the call returns. Changes to one object are serialized by a lock stripe.
//!
//! - [`fencing`]: the rules, as pure functions of the meta;
//! - `records`: how records are keyed; `reads`: cold-start reads; `writes`: the
//!   batches a write or a state transfer makes;
//! - [`AlarmIndex`]: due times of every copy's alarms; `accepts`: when each copy last
//!   accepted an owner's write, for lease hand-over.

mod accepts;
mod alarm_index;
pub mod fencing;
mod namespaces;
mod reads;
mod records;
#[cfg(test)]
mod tests;
mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use larder_base::Epoch;
use larder_directory::ObjectKey;
use larder_store::{Batch, Store, StoreError, Tree, codec};
use tokio::sync::Mutex;

pub use alarm_index::AlarmIndex;
pub use fencing::{ApplyOutcome, ReplicaMeta};

use crate::peer_messages::CopyRequest;
use crate::{Mutation, ObjectState};
use accepts::AcceptLog;
use fencing::WriteDecision;
use records::{DATA_TAGS, META, OWNER, object_prefix};

const TREE: &str = "objects";
/// Lock stripes serializing changes per object (bounded memory, whatever the count of
/// objects).
const LOCK_STRIPES: usize = 256;

fn corrupted(err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupted(err.to_string())
}

fn stripe(key: &ObjectKey) -> usize {
    let namespace = key.namespace.as_str();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace.bytes().chain([0]).chain(key.id.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % LOCK_STRIPES as u64) as usize
}

/// This node's copies of objects. Cheap to clone.
#[derive(Clone)]
pub struct ObjectStore {
    store: Store,
    tree: Tree,
    locks: Arc<Vec<Mutex<()>>>,
    alarms: Arc<AlarmIndex>,
    accepts: Arc<AcceptLog>,
    /// Owners' writes applied to copies here since the process started (a metric).
    writes_applied: Arc<AtomicU64>,
}

impl ObjectStore {
    pub fn open(store: Store) -> Result<ObjectStore, StoreError> {
        let tree = store.tree(TREE)?;
        let alarms = Arc::new(reads::index_alarms(&tree)?);
        Ok(ObjectStore {
            store,
            tree,
            locks: Arc::new((0..LOCK_STRIPES).map(|_| Mutex::new(())).collect()),
            alarms,
            accepts: Arc::default(),
            writes_applied: Arc::default(),
        })
    }

    /// Due times of the alarms of every copy on this node.
    pub fn alarm_index(&self) -> &Arc<AlarmIndex> {
        &self.alarms
    }

    /// A replica's side of an owner's offer: a replication round or a state transfer.
    pub async fn take(&self, offer: &CopyRequest) -> Result<ApplyOutcome, StoreError> {
        match offer {
            CopyRequest::Write(r) => self.apply(&r.key, r.epoch, r.version, &r.writes).await,
            CopyRequest::State(r) => self.install(&r.key, r.epoch, &r.state).await,
        }
    }

    /// Applies the writes of the owner of `epoch` numbered `version`, `version + 1`, …
    /// (one replication round), each as one atomic batch, flushed once at the end. No
    /// writes: a ping, acknowledged when this copy holds `version` of that owner.
    pub async fn apply(
        &self,
        key: &ObjectKey,
        epoch: Epoch,
        version: u64,
        writes: &[Vec<Mutation>],
    ) -> Result<ApplyOutcome, StoreError> {
        self.store.health().stall_point().await;
        let _guard = self.locks[stripe(key)].lock().await;
        let meta = self.meta(key)?;
        match fencing::offer_write(&meta, epoch, version, writes.len()) {
            WriteDecision::Fenced { epoch } => Ok(ApplyOutcome::Fenced { epoch }),
            WriteDecision::AlreadyApplied { version } => {
                self.accepts.note(key, epoch, tokio::time::Instant::now());
                Ok(ApplyOutcome::AlreadyApplied { version })
            }
            WriteDecision::Gap { have, raise_to } => {
                // This copy has now seen `epoch`, and fences older owners from here on.
                if let Some(raised) = raise_to.and_then(|to| fencing::fence(&meta, to)) {
                    self.write_meta(key, &raised).await?;
                }
                Ok(ApplyOutcome::Gap { have })
            }
            WriteDecision::Apply { skip, first, last } => {
                self.store.health().check_space()?;
                let mut held = meta;
                let mut alarms_changed = false;
                for (mutations, version) in writes[skip..].iter().zip(first..) {
                    held = fencing::after_writes(&held, epoch, version);
                    let (batch, alarms) = self.write_batch(key, &held, mutations)?;
                    self.tree.apply_batch(batch)?;
                    alarms_changed |= alarms;
                }
                self.store.flush().await?;
                if alarms_changed {
                    self.alarms.set(key, reads::next_alarm(&self.tree, key)?);
                }
                self.accepts.note(key, epoch, tokio::time::Instant::now());
                self.writes_applied
                    .fetch_add((writes.len() - skip) as u64, Ordering::Relaxed);
                Ok(ApplyOutcome::Applied { version: last })
            }
        }
    }

    /// Replaces this copy with `state`, as the owner of `epoch` holds it.
    pub async fn install(
        &self,
        key: &ObjectKey,
        epoch: Epoch,
        state: &ObjectState,
    ) -> Result<ApplyOutcome, StoreError> {
        let _guard = self.locks[stripe(key)].lock().await;
        let old = self.meta(key)?;
        let meta = match fencing::offer_state(&old, epoch, state.version()) {
            Ok(meta) => meta,
            Err(refused) => return Ok(refused),
        };
        self.store.health().check_space()?;
        let batch = self.install_batch(key, &meta, state)?;
        let now = tokio::time::Instant::now();
        let never_held = old == ReplicaMeta::default();
        let quiet_ms = self.accepts.quiet_before(key, epoch, never_held, now);
        self.tree.apply_batch(batch)?;
        self.store.flush().await?;
        self.alarms.set(key, state.next_alarm_ms());
        self.accepts.note(key, epoch, tokio::time::Instant::now());
        Ok(ApplyOutcome::Installed {
            version: state.version(),
            quiet_ms,
        })
    }

    /// Raises the fencing epoch without changing data (a copy learns of a new owner).
    pub async fn fence(&self, key: &ObjectKey, epoch: Epoch) -> Result<ReplicaMeta, StoreError> {
        let _guard = self.locks[stripe(key)].lock().await;
        let meta = self.meta(key)?;
        match fencing::fence(&meta, epoch) {
            Some(raised) => {
                self.write_meta(key, &raised).await?;
                Ok(raised)
            }
            None => Ok(meta),
        }
    }

    /// Removes this copy (its node is no longer a replica), unless it has seen an epoch
    /// newer than `epoch`.
    pub async fn drop_copy(&self, key: &ObjectKey, epoch: Epoch) -> Result<bool, StoreError> {
        let _guard = self.locks[stripe(key)].lock().await;
        if !fencing::may_drop(&self.meta(key)?, epoch) {
            return Ok(false);
        }
        let mut batch = Batch::default();
        for tag in DATA_TAGS {
            self.clear(&mut batch, tag, key)?;
        }
        batch.remove(object_prefix(META, key));
        batch.remove(object_prefix(OWNER, key));
        self.tree.apply_batch(batch)?;
        self.store.flush().await?;
        self.alarms.set(key, None);
        Ok(true)
    }

    /// Records, durably, that this node starts serving the object as owner in `epoch`,
    /// before it sends any write of that epoch. An owner offers a write to its own copy
    /// and to the replicas at once, so a crash can leave replicas holding writes this
    /// copy lost; after a restart the marker tells that this copy may be behind them.
    pub async fn mark_owner(&self, key: &ObjectKey, epoch: Epoch) -> Result<(), StoreError> {
        self.store.health().check_space()?;
        self.tree
            .insert(object_prefix(OWNER, key), epoch.0.to_be_bytes())?;
        self.store.flush().await
    }

    /// The last epoch in which this node started serving the object as owner (0: never).
    pub fn owner_marker(&self, key: &ObjectKey) -> Result<Epoch, StoreError> {
        match self.tree.get(object_prefix(OWNER, key))? {
            Some(raw) => {
                let bytes = raw[..]
                    .try_into()
                    .map_err(|_| corrupted("owner marker record"))?;
                Ok(Epoch(u64::from_be_bytes(bytes)))
            }
            None => Ok(Epoch::default()),
        }
    }

    /// Refuses while the disk is nearly full (see `StoreHealth::check_space`).
    pub fn check_space(&self) -> Result<(), StoreError> {
        self.store.health().check_space()
    }

    /// Owners' writes applied to copies on this node since the process started.
    pub fn writes_applied(&self) -> u64 {
        self.writes_applied.load(Ordering::Relaxed)
    }

    async fn write_meta(&self, key: &ObjectKey, meta: &ReplicaMeta) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        batch.insert(
            object_prefix(META, key),
            codec::encode(meta).map_err(corrupted)?,
        );
        self.tree.apply_batch(batch)?;
        self.store.flush().await
    }
}
