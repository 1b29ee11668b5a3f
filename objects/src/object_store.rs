//! Durable object storage on one node — the owner's and every replica's copy — with the
//! checks that make replication safe:
//!
//! - **fencing**: a write or state transfer tagged with an epoch older than the highest
//!   this copy has seen is refused, so a deposed owner can never get a write accepted;
//! - **order**: a write applies only as version = current + 1 (an older one is already
//!   there and is acknowledged again; a newer one reports the gap);
//! - **state transfer**: a new owner installs its whole state at the start of its epoch,
//!   replacing whatever uncommitted writes a copy had from an older epoch.
//!
//! Every change is one atomic batch, flushed before the call returns.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use larder_directory::ObjectKey;
use larder_store::{Batch, Store, StoreError, Tree, codec};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use crate::op::{Alarm, Event, Reply};
use crate::state::{REQUEST_IDS_KEPT, StateParts};
use crate::{Mutation, ObjectState, Stored};

const TREE: &str = "objects";
/// Lock stripes serializing changes per object (bounded memory, whatever the count of
/// objects).
const LOCK_STRIPES: usize = 256;

/// What a copy knows about its object besides the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMeta {
    /// Highest owner epoch seen: older ones are fenced off.
    pub epoch: u64,
    /// Epoch of the owner that produced the current data.
    pub write_epoch: u64,
    /// Object version of the current data.
    pub version: u64,
}

/// Result of offering a write or a state to a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Applied {
        version: u64,
    },
    /// Already held (a retry): acknowledged again.
    AlreadyApplied {
        version: u64,
    },
    /// Writes between this copy's version and the offered one are missing.
    Gap {
        have: u64,
    },
    /// The sender's epoch is older than `epoch`: it is no longer the owner.
    Fenced {
        epoch: u64,
    },
    /// A state transfer took. `quiet_ms`: how long since this copy last accepted
    /// anything from an owner of an older epoch (0 when unknown, e.g. after a restart):
    /// an older owner's read lease began no later than that, so a new owner need only
    /// wait out what is left of it.
    Installed {
        version: u64,
        quiet_ms: u64,
    },
}

/// Copies whose last acceptances are remembered; past it the memory is dropped and new
/// owners wait their full lease.
const ACCEPTS_TRACKED_MAX: usize = 1_000_000;

/// The last acceptance of the latest epoch a copy accepted, and of the one before.
/// On tokio's clock, the one leases are measured on (a simulated one in simulation tests).
#[derive(Clone, Copy)]
struct Accepts {
    latest: (u64, tokio::time::Instant),
    before: Option<(u64, tokio::time::Instant)>,
}

#[derive(Clone)]
pub struct ObjectStore {
    store: Store,
    tree: Tree,
    locks: Arc<Vec<Mutex<()>>>,
    alarms: Arc<AlarmIndex>,
    /// Per object: when this copy last accepted a round or state of its latest epoch, and
    /// of the epoch before that (a failover installs the new epoch before the new owner
    /// asks how long the copy has been quiet for older owners).
    accepts: Arc<std::sync::Mutex<HashMap<ObjectKey, Accepts>>>,
    /// Owners' writes applied to copies here since the process started (a metric).
    writes_applied: Arc<AtomicU64>,
}

/// When each object held here has its earliest alarm due: the alarm scheduler's view
/// of every copy on this node (owned or not), kept current by every change to a copy,
/// so a replica that becomes owner knows at once what is due.
#[derive(Default)]
pub struct AlarmIndex {
    inner: std::sync::Mutex<AlarmIndexInner>,
    /// Woken when an object's earliest alarm moves earlier.
    pub changed: Notify,
}

#[derive(Default)]
struct AlarmIndexInner {
    by_due: BTreeSet<(u64, ObjectKey)>,
    due_of: HashMap<ObjectKey, u64>,
}

impl AlarmIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, AlarmIndexInner> {
        self.inner
            .lock()
            .expect("alarm index lock: no panics under it")
    }

    fn set(&self, key: &ObjectKey, due: Option<u64>) {
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
        inner
            .by_due
            .range(
                (
                    now_ms + 1,
                    ObjectKey {
                        namespace: String::new(),
                        id: String::new(),
                    },
                )..,
            )
            .next()
            .map(|(due, _)| *due)
    }
}

/// Parses the object key out of a record key made by [`object_prefix`], returning it
/// and the rest of the record key.
fn parse_object_prefix(raw: &[u8]) -> Option<(ObjectKey, &[u8])> {
    let ns_len = usize::from(*raw.get(1)?);
    let namespace = std::str::from_utf8(raw.get(2..2 + ns_len)?).ok()?;
    let id_at = 2 + ns_len;
    let id_len = usize::from(u16::from_be_bytes([*raw.get(id_at)?, *raw.get(id_at + 1)?]));
    let id = std::str::from_utf8(raw.get(id_at + 2..id_at + 2 + id_len)?).ok()?;
    Some((
        ObjectKey {
            namespace: namespace.to_string(),
            id: id.to_string(),
        },
        &raw[id_at + 2 + id_len..],
    ))
}

fn corrupted(err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupted(err.to_string())
}

fn object_prefix(tag: u8, key: &ObjectKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.namespace.len() + key.id.len());
    out.push(tag);
    // Namespace names are at most 64 bytes, object ids at most 256 (checked upstream).
    out.push(key.namespace.len() as u8);
    out.extend_from_slice(key.namespace.as_bytes());
    out.extend_from_slice(&(key.id.len() as u16).to_be_bytes());
    out.extend_from_slice(key.id.as_bytes());
    out
}

fn data_key(key: &ObjectKey, user_key: &[u8]) -> Vec<u8> {
    let mut out = object_prefix(b'd', key);
    out.extend_from_slice(user_key);
    out
}

fn alarm_key(key: &ObjectKey, name: &str) -> Vec<u8> {
    let mut out = object_prefix(b'a', key);
    out.extend_from_slice(name.as_bytes());
    out
}

fn event_key(key: &ObjectKey, seq: u64) -> Vec<u8> {
    let mut out = object_prefix(b'e', key);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Record tags of an object's copy, besides its metadata.
const DATA_TAGS: [u8; 4] = [b'd', b'q', b'a', b'e'];
/// Tag of the record naming the last epoch in which this node started serving the
/// object as its owner (see [`ObjectStore::mark_owner`]).
const OWNER_TAG: u8 = b'o';

fn stripe(key: &ObjectKey) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.namespace.bytes().chain([0]).chain(key.id.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % LOCK_STRIPES as u64) as usize
}

impl ObjectStore {
    pub fn open(store: Store) -> Result<ObjectStore, StoreError> {
        let tree = store.tree(TREE)?;
        let locks = Arc::new((0..LOCK_STRIPES).map(|_| Mutex::new(())).collect());
        let alarms = Arc::new(AlarmIndex::default());
        let mut earliest: HashMap<ObjectKey, u64> = HashMap::new();
        for row in tree.scan_prefix([b'a']) {
            let (raw_key, raw) = row?;
            let (key, _) = parse_object_prefix(&raw_key)
                .ok_or_else(|| corrupted("unreadable alarm record key"))?;
            let alarm: Alarm = codec::decode(&raw).map_err(corrupted)?;
            let due = earliest.entry(key).or_insert(alarm.at_ms);
            *due = (*due).min(alarm.at_ms);
        }
        for (key, due) in earliest {
            alarms.set(&key, Some(due));
        }
        Ok(ObjectStore {
            store,
            tree,
            locks,
            alarms,
            accepts: Arc::default(),
            writes_applied: Arc::default(),
        })
    }

    fn note_accept(&self, key: &ObjectKey, epoch: u64) {
        let mut accepts = self
            .accepts
            .lock()
            .expect("accepts lock: no panics under it");
        if accepts.len() >= ACCEPTS_TRACKED_MAX {
            accepts.clear();
        }
        let now = tokio::time::Instant::now();
        let next = match accepts.get(key) {
            Some(seen) if epoch > seen.latest.0 => Accepts {
                latest: (epoch, now),
                before: Some(seen.latest),
            },
            Some(seen) if epoch == seen.latest.0 => Accepts {
                latest: (epoch, now),
                before: seen.before,
            },
            // An epoch older than the latest is fenced off, never accepted.
            Some(seen) => *seen,
            None => Accepts {
                latest: (epoch, now),
                before: None,
            },
        };
        accepts.insert(key.clone(), next);
    }

    /// How long this copy has accepted nothing from an owner older than `epoch`.
    fn quiet_before(&self, key: &ObjectKey, epoch: u64, meta: &ReplicaMeta) -> u64 {
        let accepts = self
            .accepts
            .lock()
            .expect("accepts lock: no panics under it");
        match accepts.get(key) {
            Some(seen) if seen.latest.0 < epoch => seen.latest.1.elapsed().as_millis() as u64,
            Some(seen) => match seen.before {
                Some((older, at)) if older < epoch => at.elapsed().as_millis() as u64,
                _ => 0,
            },
            // A copy that never held anything accepted nothing from anyone.
            None if *meta == ReplicaMeta::default() => u64::MAX,
            // Forgotten (a restart, or the tracking bound): assume just now.
            None => 0,
        }
    }

    /// Due times of the alarms of every copy on this node.
    pub fn alarm_index(&self) -> &Arc<AlarmIndex> {
        &self.alarms
    }

    fn load_alarms(&self, key: &ObjectKey) -> Result<BTreeMap<String, Alarm>, StoreError> {
        let prefix = object_prefix(b'a', key);
        let mut alarms = BTreeMap::new();
        for row in self.tree.scan_prefix(&prefix) {
            let (raw_key, raw) = row?;
            let name = String::from_utf8(raw_key[prefix.len()..].to_vec()).map_err(corrupted)?;
            alarms.insert(name, codec::decode(&raw).map_err(corrupted)?);
        }
        Ok(alarms)
    }

    /// Re-reads the object's alarms into the index after a change to its copy.
    fn reindex_alarms(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let due = self.load_alarms(key)?.values().map(|a| a.at_ms).min();
        self.alarms.set(key, due);
        Ok(())
    }

    pub fn meta(&self, key: &ObjectKey) -> Result<ReplicaMeta, StoreError> {
        match self.tree.get(object_prefix(b'm', key))? {
            Some(raw) => codec::decode(&raw).map_err(|err| StoreError::Corrupted(err.to_string())),
            None => Ok(ReplicaMeta::default()),
        }
    }

    /// Remembered request ids, oldest first: one record each, numbered in order.
    fn recent(&self, key: &ObjectKey) -> Result<VecDeque<(String, Reply)>, StoreError> {
        let mut recent = VecDeque::new();
        for row in self.tree.scan_prefix(object_prefix(b'q', key)) {
            let (_, raw) = row?;
            recent.push_back(codec::decode(&raw).map_err(corrupted)?);
        }
        Ok(recent)
    }

    /// Number of the newest remembered request id (0: none).
    fn last_remembered(&self, key: &ObjectKey) -> Result<u64, StoreError> {
        let prefix = object_prefix(b'q', key);
        match self.tree.scan_prefix(&prefix).next_back() {
            Some(row) => {
                let (raw_key, _) = row?;
                let number = raw_key[prefix.len()..]
                    .try_into()
                    .map_err(|_| corrupted("request id record key"))?;
                Ok(u64::from_be_bytes(number))
            }
            None => Ok(0),
        }
    }

    fn remembered_key(key: &ObjectKey, number: u64) -> Vec<u8> {
        let mut out = object_prefix(b'q', key);
        out.extend_from_slice(&number.to_be_bytes());
        out
    }

    /// Adds a remembered request id as record `number`, forgetting the one that falls
    /// out of the last [`REQUEST_IDS_KEPT`].
    fn put_remembered(
        batch: &mut Batch,
        key: &ObjectKey,
        number: u64,
        entry: &(String, Reply),
    ) -> Result<(), StoreError> {
        batch.insert(
            Self::remembered_key(key, number),
            codec::encode(entry).map_err(corrupted)?,
        );
        if let Some(old) = number.checked_sub(REQUEST_IDS_KEPT as u64)
            && old > 0
        {
            batch.remove(Self::remembered_key(key, old));
        }
        Ok(())
    }

    /// The object's stored state (a cold start reads it).
    pub fn load(&self, key: &ObjectKey) -> Result<(ReplicaMeta, ObjectState), StoreError> {
        let meta = self.meta(key)?;
        let recent = self.recent(key)?;
        let prefix = object_prefix(b'd', key);
        let mut entries = BTreeMap::new();
        for row in self.tree.scan_prefix(&prefix) {
            let (raw_key, raw) = row?;
            let stored: Stored = codec::decode(&raw).map_err(corrupted)?;
            entries.insert(raw_key[prefix.len()..].to_vec(), stored);
        }
        let mut events = VecDeque::new();
        for row in self.tree.scan_prefix(object_prefix(b'e', key)) {
            let (_, raw) = row?;
            events.push_back(codec::decode::<Event>(&raw).map_err(corrupted)?);
        }
        let parts = StateParts {
            entries,
            version: meta.version,
            recent,
            alarms: self.load_alarms(key)?,
            events,
        };
        Ok((meta, ObjectState::from_parts(parts)))
    }

    fn put_meta(batch: &mut Batch, key: &ObjectKey, meta: &ReplicaMeta) -> Result<(), StoreError> {
        let raw = codec::encode(meta).map_err(|err| StoreError::Corrupted(err.to_string()))?;
        batch.insert(object_prefix(b'm', key), raw);
        Ok(())
    }

    /// Removes every record under `tag` for the object.
    fn clear(&self, batch: &mut Batch, tag: u8, key: &ObjectKey) -> Result<(), StoreError> {
        for row in self.tree.scan_prefix(object_prefix(tag, key)) {
            let (raw_key, _) = row?;
            batch.remove(raw_key);
        }
        Ok(())
    }

    fn put_alarm(
        batch: &mut Batch,
        key: &ObjectKey,
        name: &str,
        alarm: &Alarm,
    ) -> Result<(), StoreError> {
        batch.insert(
            alarm_key(key, name),
            codec::encode(alarm).map_err(corrupted)?,
        );
        Ok(())
    }

    fn put_event(batch: &mut Batch, key: &ObjectKey, event: &Event) -> Result<(), StoreError> {
        batch.insert(
            event_key(key, event.seq),
            codec::encode(event).map_err(corrupted)?,
        );
        Ok(())
    }

    /// Applies the writes of the owner of `epoch` numbered `version`, `version + 1`, …
    /// (one replication round), each as one atomic batch, flushed once at the end. No
    /// writes: a ping, acknowledged when this copy holds `version` of that owner.
    pub async fn apply(
        &self,
        key: &ObjectKey,
        epoch: u64,
        version: u64,
        writes: &[Vec<Mutation>],
    ) -> Result<ApplyOutcome, StoreError> {
        self.store.health().stall_point().await;
        let _guard = self.locks[stripe(key)].lock().await;
        let mut meta = self.meta(key)?;
        if epoch < meta.epoch {
            return Ok(ApplyOutcome::Fenced { epoch: meta.epoch });
        }
        let last = version + (writes.len() as u64).saturating_sub(1);
        if last <= meta.version && epoch == meta.write_epoch {
            self.note_accept(key, epoch);
            return Ok(ApplyOutcome::AlreadyApplied {
                version: meta.version,
            });
        }
        // A retried round may have partly applied here: skip what this copy holds.
        let held = if epoch == meta.write_epoch && version <= meta.version {
            (meta.version + 1 - version) as usize
        } else {
            0
        };
        let first = version + held as u64;
        if writes.is_empty()
            || first != meta.version + 1
            || (epoch != meta.write_epoch && meta.version != 0)
        {
            // Behind, out of order, or the first write of a new owner that has not
            // installed its state here yet: the owner must transfer state first. Either
            // way this copy has now seen `epoch`, and fences older owners from here on.
            if epoch > meta.epoch {
                meta.epoch = epoch;
                let mut batch = Batch::default();
                Self::put_meta(&mut batch, key, &meta)?;
                self.tree.apply_batch(batch)?;
                self.store.flush().await?;
            }
            return Ok(ApplyOutcome::Gap { have: meta.version });
        }
        self.store.health().check_space()?;
        let mut alarms_changed = false;
        for (mutations, version) in writes[held..].iter().zip(first..) {
            alarms_changed |= self.apply_write(key, epoch, version, mutations)?;
        }
        self.store.flush().await?;
        if alarms_changed {
            self.reindex_alarms(key)?;
        }
        self.note_accept(key, epoch);
        self.writes_applied
            .fetch_add((writes.len() - held) as u64, Ordering::Relaxed);
        Ok(ApplyOutcome::Applied { version: last })
    }

    /// Applies one write as one atomic batch (not flushed); returns whether it changed
    /// the object's alarms.
    fn apply_write(
        &self,
        key: &ObjectKey,
        epoch: u64,
        version: u64,
        mutations: &[Mutation],
    ) -> Result<bool, StoreError> {
        let mut batch = Batch::default();
        let mut alarms_changed = false;
        let mut appended = Vec::new();
        let mut remembered: Option<u64> = None;
        for mutation in mutations {
            match mutation {
                Mutation::Put {
                    key: user_key,
                    value,
                } => {
                    let stored = Stored {
                        value: value.clone(),
                        version,
                    };
                    let raw = codec::encode(&stored)
                        .map_err(|err| StoreError::Corrupted(err.to_string()))?;
                    batch.insert(data_key(key, user_key), raw);
                }
                Mutation::Delete { key: user_key } => batch.remove(data_key(key, user_key)),
                Mutation::DeleteAll => {
                    self.clear(&mut batch, b'd', key)?;
                    self.clear(&mut batch, b'a', key)?;
                    alarms_changed = true;
                }
                Mutation::SetAlarm { name, alarm } => {
                    Self::put_alarm(&mut batch, key, name, alarm)?;
                    alarms_changed = true;
                }
                Mutation::DeleteAlarm { name } => {
                    batch.remove(alarm_key(key, name));
                    alarms_changed = true;
                }
                Mutation::AppendEvent(event) => {
                    Self::put_event(&mut batch, key, event)?;
                    appended.push(event.seq);
                }
                Mutation::ForgetEvents { through } => {
                    // Stored events, and events appended earlier in this same batch
                    // (a range read does not see the batch).
                    let range = object_prefix(b'e', key)..=event_key(key, *through);
                    for row in self.tree.range(range) {
                        let (raw_key, _) = row?;
                        batch.remove(raw_key);
                    }
                    for seq in appended.iter().filter(|seq| **seq <= *through) {
                        batch.remove(event_key(key, *seq));
                    }
                }
                Mutation::Remember { request_id, reply } => {
                    let number = match remembered {
                        Some(last) => last + 1,
                        None => self.last_remembered(key)? + 1,
                    };
                    remembered = Some(number);
                    let entry = (request_id.clone(), reply.clone());
                    Self::put_remembered(&mut batch, key, number, &entry)?;
                }
            }
        }
        let meta = ReplicaMeta {
            epoch,
            write_epoch: epoch,
            version,
        };
        Self::put_meta(&mut batch, key, &meta)?;
        self.tree.apply_batch(batch)?;
        Ok(alarms_changed)
    }

    /// Replaces this copy with `state`, as the owner of `epoch` holds it.
    pub async fn install(
        &self,
        key: &ObjectKey,
        epoch: u64,
        state: &ObjectState,
    ) -> Result<ApplyOutcome, StoreError> {
        let _guard = self.locks[stripe(key)].lock().await;
        let old_meta = self.meta(key)?;
        if epoch < old_meta.epoch {
            return Ok(ApplyOutcome::Fenced {
                epoch: old_meta.epoch,
            });
        }
        if epoch == old_meta.write_epoch && state.version() < old_meta.version {
            // Writes of this very epoch are here already, past the offered state: it comes
            // from a coordinator that lost the epoch to the owner now writing in it (a move
            // fencing at e+1 while the owner reclaimed e+1), or from a repair overtaken by
            // later writes. Taking it would roll acknowledged writes back.
            return Ok(ApplyOutcome::Fenced {
                epoch: old_meta.epoch,
            });
        }
        self.store.health().check_space()?;
        let mut batch = Batch::default();
        for tag in DATA_TAGS {
            self.clear(&mut batch, tag, key)?;
        }
        for (user_key, stored) in state.entries() {
            batch.insert(
                data_key(key, user_key),
                codec::encode(stored).map_err(corrupted)?,
            );
        }
        for (name, alarm) in state.alarms() {
            Self::put_alarm(&mut batch, key, name, alarm)?;
        }
        for event in state.events() {
            Self::put_event(&mut batch, key, event)?;
        }
        let meta = ReplicaMeta {
            epoch,
            write_epoch: epoch,
            version: state.version(),
        };
        Self::put_meta(&mut batch, key, &meta)?;
        for (entry, number) in state.recent().iter().zip(1..) {
            Self::put_remembered(&mut batch, key, number, entry)?;
        }
        let quiet_ms = self.quiet_before(key, epoch, &old_meta);
        self.tree.apply_batch(batch)?;
        self.store.flush().await?;
        self.alarms.set(key, state.next_alarm_ms());
        self.note_accept(key, epoch);
        Ok(ApplyOutcome::Installed {
            version: state.version(),
            quiet_ms,
        })
    }

    /// Removes this copy (its node is no longer a replica), unless it has seen an epoch
    /// newer than `epoch`.
    pub async fn drop_copy(&self, key: &ObjectKey, epoch: u64) -> Result<bool, StoreError> {
        let _guard = self.locks[stripe(key)].lock().await;
        if self.meta(key)?.epoch > epoch {
            return Ok(false);
        }
        let mut batch = Batch::default();
        for tag in DATA_TAGS {
            self.clear(&mut batch, tag, key)?;
        }
        batch.remove(object_prefix(b'm', key));
        batch.remove(object_prefix(OWNER_TAG, key));
        self.tree.apply_batch(batch)?;
        self.store.flush().await?;
        self.alarms.set(key, None);
        Ok(true)
    }

    /// Whether this node holds any data or metadata for the object.
    pub fn holds(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        Ok(self.tree.get(object_prefix(b'm', key))?.is_some()
            || DATA_TAGS.iter().any(|tag| {
                self.tree
                    .scan_prefix(object_prefix(*tag, key))
                    .next()
                    .is_some()
            }))
    }

    /// The last epoch in which this node started serving the object as owner (0: never).
    pub fn owner_marker(&self, key: &ObjectKey) -> Result<u64, StoreError> {
        match self.tree.get(object_prefix(OWNER_TAG, key))? {
            Some(raw) => {
                let bytes = raw[..]
                    .try_into()
                    .map_err(|_| corrupted("owner marker record"))?;
                Ok(u64::from_be_bytes(bytes))
            }
            None => Ok(0),
        }
    }

    /// Records, durably, that this node starts serving the object as owner in `epoch`,
    /// before it sends any write of that epoch. An owner offers a write to its own copy
    /// and to the replicas at once, so a crash can leave replicas holding writes this
    /// copy lost; after a restart the marker tells that this copy may be behind them.
    pub async fn mark_owner(&self, key: &ObjectKey, epoch: u64) -> Result<(), StoreError> {
        self.store.health().check_space()?;
        self.tree
            .insert(object_prefix(OWNER_TAG, key), epoch.to_be_bytes())?;
        self.store.flush().await
    }

    /// Refuses while the disk is nearly full (see `StoreHealth::check_space`).
    pub fn check_space(&self) -> Result<(), StoreError> {
        self.store.health().check_space()
    }

    /// Owners' writes applied to copies on this node since the process started.
    pub fn writes_applied(&self) -> u64 {
        self.writes_applied.load(Ordering::Relaxed)
    }

    /// Raises the fencing epoch without changing data (a copy learns of a new owner).
    pub async fn fence(&self, key: &ObjectKey, epoch: u64) -> Result<ReplicaMeta, StoreError> {
        let _guard = self.locks[stripe(key)].lock().await;
        let mut meta = self.meta(key)?;
        if epoch > meta.epoch {
            meta.epoch = epoch;
            let mut batch = Batch::default();
            Self::put_meta(&mut batch, key, &meta)?;
            self.tree.apply_batch(batch)?;
            self.store.flush().await?;
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectLimits;
    use crate::op::Op;

    fn key() -> ObjectKey {
        ObjectKey {
            namespace: "rooms".into(),
            id: "room-1".into(),
        }
    }

    fn put(k: &str, v: &str) -> Vec<Vec<Mutation>> {
        vec![vec![Mutation::Put {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        }]]
    }

    #[tokio::test]
    async fn writes_apply_in_order_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let objects =
                ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
            assert_eq!(
                objects
                    .apply(&key(), 1, 1, &put("a", "1"))
                    .await
                    .expect("apply"),
                ApplyOutcome::Applied { version: 1 }
            );
            assert_eq!(
                objects
                    .apply(&key(), 1, 3, &put("b", "3"))
                    .await
                    .expect("apply"),
                ApplyOutcome::Gap { have: 1 }
            );
            assert_eq!(
                objects
                    .apply(&key(), 1, 2, &put("b", "2"))
                    .await
                    .expect("apply"),
                ApplyOutcome::Applied { version: 2 }
            );
            // A retried write is acknowledged again, not applied twice.
            assert_eq!(
                objects
                    .apply(&key(), 1, 2, &put("b", "x"))
                    .await
                    .expect("apply"),
                ApplyOutcome::AlreadyApplied { version: 2 }
            );
        }
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        let (meta, state) = objects.load(&key()).expect("cold start");
        assert_eq!((meta.epoch, meta.version), (1, 2));
        let (reply, _) = state
            .execute(
                &Op::Get {
                    keys: vec![b"a".to_vec(), b"b".to_vec()],
                },
                &ObjectLimits::default(),
            )
            .expect("get");
        assert_eq!(format!("{reply:?}").matches("version: ").count(), 2);
        assert_eq!(state.entries()[&b"b".to_vec()].value, b"2".to_vec());
    }

    #[tokio::test]
    async fn request_ids_survive_reopen_and_state_transfer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        let limits = ObjectLimits::default();
        let add = Op::Add {
            key: b"n".to_vec(),
            delta: 1,
        };
        let (_, mutations) = ObjectState::default()
            .execute_request(&add, Some("r1"), &limits)
            .expect("add");
        objects
            .apply(&key(), 1, 1, &[mutations])
            .await
            .expect("apply");
        let (_, loaded) = objects.load(&key()).expect("load");
        assert_eq!(loaded.recent().len(), 1);
        let (_, again) = loaded
            .execute_request(&add, Some("r1"), &limits)
            .expect("retry");
        assert!(again.is_empty(), "a retry changes nothing");
        let other = ObjectKey {
            namespace: "rooms".into(),
            id: "copy".into(),
        };
        objects.install(&other, 2, &loaded).await.expect("install");
        assert_eq!(objects.load(&other).expect("load").1.recent().len(), 1);
    }

    /// A move fences the copies at e+1 and installs its state there; the owner, refused,
    /// reclaims e+1 through the directory and writes on. The mover's install, arriving
    /// after those writes, must not roll the copy back to its older state.
    #[tokio::test]
    async fn an_install_behind_the_writes_of_its_own_epoch_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        let mut moved = ObjectState::default();
        moved.apply(&put("a", "1")[0]);
        objects.fence(&key(), 2).await.expect("the mover fences");
        // The owner reclaims epoch 2: its install, then a write.
        let installed = objects.install(&key(), 2, &moved).await.expect("install");
        assert!(matches!(
            installed,
            ApplyOutcome::Installed { version: 1, .. }
        ));
        assert_eq!(
            objects
                .apply(&key(), 2, 2, &put("a", "2"))
                .await
                .expect("apply"),
            ApplyOutcome::Applied { version: 2 }
        );
        // The mover's install of version 1 at epoch 2 comes late.
        assert_eq!(
            objects.install(&key(), 2, &moved).await.expect("install"),
            ApplyOutcome::Fenced { epoch: 2 }
        );
        let (meta, state) = objects.load(&key()).expect("load");
        assert_eq!(meta.version, 2);
        assert_eq!(state.entries()[&b"a".to_vec()].value, b"2".to_vec());
        // A newer epoch's install still takes.
        assert!(matches!(
            objects.install(&key(), 3, &moved).await.expect("install"),
            ApplyOutcome::Installed { .. }
        ));
    }

    #[tokio::test]
    async fn an_older_epoch_is_fenced_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        objects
            .apply(&key(), 1, 1, &put("a", "old owner"))
            .await
            .expect("apply");
        // A new owner (epoch 2) takes over and installs its state.
        let mut state = ObjectState::default();
        state.apply(&put("a", "new owner")[0]);
        objects.fence(&key(), 2).await.expect("fence");
        // The deposed owner's next write is refused, before and after the install.
        assert_eq!(
            objects
                .apply(&key(), 1, 2, &put("a", "late"))
                .await
                .expect("apply"),
            ApplyOutcome::Fenced { epoch: 2 }
        );
        // The copy accepted the old owner's write a moment ago: little quiet time to
        // credit. Installed again in the same epoch (a failover installs before the new
        // owner does), it still reports the time since the old owner, not since the
        // first install.
        for _ in 0..2 {
            assert!(matches!(
                objects.install(&key(), 2, &state).await.expect("install"),
                ApplyOutcome::Installed { version: 1, quiet_ms } if quiet_ms < 1000
            ));
        }
        // A copy that never held the object accepted nothing from anyone.
        let fresh = ObjectKey {
            namespace: "rooms".into(),
            id: "fresh".into(),
        };
        assert_eq!(
            objects.install(&fresh, 2, &state).await.expect("install"),
            ApplyOutcome::Installed {
                version: 1,
                quiet_ms: u64::MAX
            }
        );
        assert_eq!(
            objects.install(&key(), 1, &state).await.expect("install"),
            ApplyOutcome::Fenced { epoch: 2 }
        );
        assert_eq!(
            objects
                .apply(&key(), 2, 2, &put("b", "next"))
                .await
                .expect("apply"),
            ApplyOutcome::Applied { version: 2 }
        );
        let (_, loaded) = objects.load(&key()).expect("load");
        assert_eq!(
            loaded.entries()[&b"a".to_vec()].value,
            b"new owner".to_vec()
        );
    }

    #[tokio::test]
    async fn a_new_owners_first_write_needs_a_state_transfer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        objects
            .apply(&key(), 1, 1, &put("a", "1"))
            .await
            .expect("apply");
        // Epoch 2 writes version 2 without installing first: the copy cannot tell whether
        // its version 1 is the new owner's version 1.
        assert_eq!(
            objects
                .apply(&key(), 2, 2, &put("a", "2"))
                .await
                .expect("apply"),
            ApplyOutcome::Gap { have: 1 }
        );
        // Having seen epoch 2, the copy no longer accepts the old owner's writes.
        assert_eq!(
            objects
                .apply(&key(), 1, 2, &put("a", "late"))
                .await
                .expect("apply"),
            ApplyOutcome::Fenced { epoch: 2 }
        );
        let mut state = ObjectState::default();
        state.apply(&put("a", "1")[0]);
        objects.install(&key(), 2, &state).await.expect("install");
        let delete_all = vec![vec![Mutation::DeleteAll]];
        assert_eq!(
            objects
                .apply(&key(), 2, 2, &delete_all)
                .await
                .expect("apply"),
            ApplyOutcome::Applied { version: 2 }
        );
        assert!(objects.load(&key()).expect("load").1.is_empty());
    }

    #[tokio::test]
    async fn alarms_and_events_are_stored_indexed_and_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ObjectLimits::default();
        let mut owner = ObjectState::default();
        let ops = [
            Op::SetAlarm {
                name: "soon".into(),
                at_ms: 50,
                payload: b"p".to_vec(),
            },
            Op::SetAlarm {
                name: "later".into(),
                at_ms: 90,
                payload: Vec::new(),
            },
            Op::Publish {
                payload: b"hello".to_vec(),
                at_ms: 1,
            },
            Op::FireAlarms { now_ms: 60 },
        ];
        {
            let objects =
                ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
            for (version, op) in (1..).zip(ops) {
                let (_, mutations) = owner.execute(&op, &limits).expect("execute");
                owner.apply(&mutations);
                objects
                    .apply(&key(), 1, version, &[mutations])
                    .await
                    .expect("apply");
            }
            assert_eq!(objects.alarm_index().due(100, 10), vec![key()]);
            assert_eq!(objects.alarm_index().next_due(), Some(90));
        }
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        // The index is rebuilt from disk, and the stored copy equals the owner's state.
        assert_eq!(objects.alarm_index().next_due(), Some(90));
        assert!(objects.alarm_index().due(89, 10).is_empty());
        let (_, loaded) = objects.load(&key()).expect("load");
        assert_eq!(loaded, owner);
        assert_eq!(loaded.last_event_seq(), 2);
        // A replica that takes the state by transfer indexes it too; dropping forgets it.
        let other = ObjectKey {
            namespace: "rooms".into(),
            id: "copy".into(),
        };
        objects.install(&other, 2, &loaded).await.expect("install");
        assert_eq!(objects.alarm_index().due(100, 10).len(), 2);
        objects.drop_copy(&other, 2).await.expect("drop");
        objects.drop_copy(&key(), 1).await.expect("drop");
        assert_eq!(objects.alarm_index().next_due(), None);
        assert!(!objects.holds(&key()).expect("holds"));
    }

    #[tokio::test]
    async fn a_round_of_several_writes_applies_in_order_and_retries_skip_what_is_held() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        let one = |k: &str, v: &str| put(k, v).remove(0);
        let round = vec![
            one("a", "1"),
            one("b", "2"),
            vec![Mutation::DeleteAll],
            one("c", "3"),
        ];
        assert_eq!(
            objects
                .apply(&key(), 1, 1, &round[..2])
                .await
                .expect("apply"),
            ApplyOutcome::Applied { version: 2 }
        );
        // The whole round again (a retry after a timeout): versions 1 and 2 are held.
        assert_eq!(
            objects.apply(&key(), 1, 1, &round).await.expect("apply"),
            ApplyOutcome::Applied { version: 4 }
        );
        let (meta, state) = objects.load(&key()).expect("load");
        assert_eq!(meta.version, 4);
        assert_eq!(
            state.entries().keys().cloned().collect::<Vec<_>>(),
            vec![b"c".to_vec()],
            "the delete-all of write 3 removed what writes 1 and 2 put"
        );
        // Pings: at the held version, acknowledged; ahead of it, a gap.
        assert_eq!(
            objects.apply(&key(), 1, 4, &[]).await.expect("ping"),
            ApplyOutcome::AlreadyApplied { version: 4 }
        );
        assert_eq!(
            objects.apply(&key(), 1, 5, &[]).await.expect("ping"),
            ApplyOutcome::Gap { have: 4 }
        );
    }

    #[tokio::test]
    async fn remembered_request_ids_are_bounded_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = ObjectStore::open(Store::open(dir.path()).expect("store")).expect("objects");
        let limits = ObjectLimits::default();
        let mut owner = ObjectState::default();
        let add = Op::Add {
            key: b"n".to_vec(),
            delta: 1,
        };
        for version in 1..=(REQUEST_IDS_KEPT as u64 + 100) {
            let id = format!("r{version}");
            let (_, mutations) = owner
                .execute_request(&add, Some(&id), &limits)
                .expect("add");
            owner.apply(&mutations);
            objects
                .apply(&key(), 1, version, &[mutations])
                .await
                .expect("apply");
        }
        let (_, loaded) = objects.load(&key()).expect("load");
        assert_eq!(loaded.recent(), owner.recent());
        assert_eq!(loaded.recent().len(), REQUEST_IDS_KEPT);
        assert_eq!(
            objects
                .tree
                .scan_prefix(object_prefix(b'q', &key()))
                .count(),
            REQUEST_IDS_KEPT
        );
    }
}
