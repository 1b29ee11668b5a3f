use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use larder_store::{Batch, Store, Tree, codec};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, watch};

use crate::directory_state::DirectoryRecordsV1;
use crate::raft_types::{
    DirectoryRaftConfig as C, LogId, Snapshot, SnapshotMeta, StoredMembership,
};
use crate::{
    Command, CommandOutcome, DirectoryState, Leadership, Namespace, NamespaceRecord, NamespaceSpec,
    NodeId, NodeRecord, ObjectKey, ObjectPlacement,
};

const SM_TREE: &str = "directory_state";
/// Earlier layout: the whole directory, placements included, in one record.
const APPLIED_KEY_V1: &[u8] = b"applied";
/// Everything but the placements, in one record, as before namespace generations.
const APPLIED_KEY_V2: &[u8] = b"applied.v2";
/// Everything but the placements, in one record.
const APPLIED_KEY: &[u8] = b"applied.v3";
/// One record per object placement, under this prefix.
const PLACEMENT_PREFIX: &[u8] = b"p/";
/// The current snapshot, in a tree of its own: a multi-megabyte value beside the
/// placements made sled rewrite it (as a blob) whenever it consolidated the leaf it
/// shared with the last placement keys — from the first snapshot on (~55,000 objects)
/// creation fell to a third, a fifth of the time spent writing that blob again.
const SNAPSHOT_TREE: &str = "directory_snapshot";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// Everything the state machine persists: the directory and how far the log was applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    pub directory: DirectoryState,
}

/// The small part of [`AppliedState`], stored as one record; placements have a record
/// each, so applying a placement writes one small record, not the whole directory.
#[derive(Serialize, Deserialize)]
struct AppliedHead {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    nodes: BTreeMap<NodeId, NodeRecord>,
    namespaces: BTreeMap<Namespace, NamespaceRecord>,
    last_generation: u64,
    removed_nodes: BTreeSet<NodeId>,
}

impl AppliedHead {
    fn of(state: &AppliedState) -> AppliedHead {
        AppliedHead {
            last_applied: state.last_applied,
            last_membership: state.last_membership.clone(),
            nodes: state.directory.nodes.clone(),
            namespaces: state.directory.namespaces.clone(),
            last_generation: state.directory.last_generation,
            removed_nodes: state.directory.removed_nodes.clone(),
        }
    }
}

/// [`AppliedHead`] as stored before namespace generations.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct AppliedHeadV2 {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    nodes: BTreeMap<NodeId, NodeRecord>,
    namespaces: BTreeMap<Namespace, NamespaceSpec>,
    #[allow(dead_code)]
    deleted_namespaces: BTreeSet<Namespace>,
}

/// [`AppliedState`] as stored in the first layout (one record, placements inside).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct AppliedStateV1 {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    directory: DirectoryRecordsV1,
}

/// The placements stored one record each, by key.
fn load_placements(tree: &Tree) -> io::Result<BTreeMap<ObjectKey, ObjectPlacement>> {
    let mut placements = BTreeMap::new();
    for row in tree.scan_prefix(PLACEMENT_PREFIX) {
        let (_, raw) = row?;
        let placement: ObjectPlacement = codec::decode(&raw)?;
        placements.insert(placement.key.clone(), placement);
    }
    Ok(placements)
}

fn placement_key(key: &ObjectKey) -> io::Result<Vec<u8>> {
    let mut out = PLACEMENT_PREFIX.to_vec();
    out.extend_from_slice(&codec::encode(key)?);
    Ok(out)
}

/// Notes in `changed` the placements a command may have changed.
fn note_touched(command: &Command, changed: &mut BTreeSet<ObjectKey>) {
    match command {
        Command::PlaceObject(placement) => {
            changed.insert(placement.key.clone());
        }
        Command::PlaceObjects(placements) => {
            changed.extend(placements.iter().map(|p| p.key.clone()));
        }
        Command::ReassignObject { key, .. } => {
            changed.insert(key.clone());
        }
        _ => {}
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The directory's Raft state machine.
///
/// Holds the state in memory (shared with readers through [`DirectoryReader`]) and
/// persists it, flushed, after each applied batch, so a restart resumes from disk.
/// Nodes, namespaces and the applied position are one small record; each object
/// placement is a record of its own, written only when a command changes it.
#[derive(Clone)]
pub struct SledStateMachine {
    store: Store,
    tree: Tree,
    snapshots: Tree,
    state: Arc<RwLock<AppliedState>>,
    changes: watch::Sender<u64>,
}

/// Read access to the local copy of the directory.
#[derive(Clone)]
pub struct DirectoryReader {
    state: Arc<RwLock<AppliedState>>,
    changes: watch::Receiver<u64>,
}

impl DirectoryReader {
    /// A copy of the directory as applied locally.
    pub async fn snapshot(&self) -> DirectoryState {
        self.state.read().await.directory.clone()
    }

    /// Reads the local directory without copying it (hot paths look up one record).
    pub async fn read<T>(&self, f: impl FnOnce(&DirectoryState) -> T) -> T {
        f(&self.state.read().await.directory)
    }

    /// Index of the last log entry applied locally (0 if none).
    pub async fn applied_index(&self) -> u64 {
        self.state
            .read()
            .await
            .last_applied
            .map_or(0, |id| id.index)
    }

    /// A receiver that changes whenever a batch of entries is applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

impl SledStateMachine {
    pub fn open(store: Store) -> Result<(SledStateMachine, DirectoryReader), io::Error> {
        let tree = store.tree(SM_TREE)?;
        let snapshots = store.tree(SNAPSHOT_TREE)?;
        if let Some(raw) = tree.get(SNAPSHOT_KEY)? {
            // Stored beside the state by an earlier version: move it to its own tree.
            snapshots.insert(SNAPSHOT_KEY, &raw)?;
            tree.remove(SNAPSHOT_KEY)?;
            store.flush_blocking()?;
        }
        let state = if let Some(raw) = tree.get(APPLIED_KEY)? {
            let head: AppliedHead = codec::decode(&raw)?;
            let mut directory = DirectoryState::from_parts(
                head.nodes,
                head.namespaces,
                head.last_generation,
                load_placements(&tree)?,
            );
            directory.removed_nodes = head.removed_nodes;
            AppliedState {
                last_applied: head.last_applied,
                last_membership: head.last_membership,
                directory,
            }
        } else if let Some(state) = Self::earlier_layout(&tree)? {
            // Written by an earlier version: rewrite it, and the snapshot, in today's
            // layout (namespaces of then are generation 0).
            let mut batch = Self::whole_state_batch(&tree, &state)?;
            batch.remove(APPLIED_KEY_V1);
            batch.remove(APPLIED_KEY_V2);
            if let Some(raw) = snapshots.get(SNAPSHOT_KEY)? {
                let stored: StoredSnapshot = codec::decode(&raw)?;
                let directory: DirectoryState =
                    codec::decode::<DirectoryRecordsV1>(&stored.data)?.into();
                let upgraded = StoredSnapshot {
                    meta: stored.meta,
                    data: codec::encode(&directory)?,
                };
                snapshots.insert(SNAPSHOT_KEY, codec::encode(&upgraded)?)?;
            }
            tree.apply_batch(batch)?;
            store.flush_blocking()?;
            tracing::info!(
                placements = state.directory.placements().len(),
                "directory state moved to today's layout"
            );
            state
        } else {
            AppliedState::default()
        };
        let applied = state.last_applied.map_or(0, |id| id.index);
        let state = Arc::new(RwLock::new(state));
        let (changes, rx) = watch::channel(applied);
        let reader = DirectoryReader {
            state: state.clone(),
            changes: rx,
        };
        Ok((
            SledStateMachine {
                store,
                tree,
                snapshots,
                state,
                changes,
            },
            reader,
        ))
    }

    /// The state as an earlier version stored it, if it did.
    fn earlier_layout(tree: &Tree) -> io::Result<Option<AppliedState>> {
        if let Some(raw) = tree.get(APPLIED_KEY_V2)? {
            let head: AppliedHeadV2 = codec::decode(&raw)?;
            let namespaces = head
                .namespaces
                .into_iter()
                .map(|(name, spec)| (name, NamespaceRecord::new(&spec, 0)))
                .collect();
            return Ok(Some(AppliedState {
                last_applied: head.last_applied,
                last_membership: head.last_membership,
                directory: DirectoryState::from_parts(
                    head.nodes,
                    namespaces,
                    0,
                    load_placements(tree)?,
                ),
            }));
        }
        if let Some(raw) = tree.get(APPLIED_KEY_V1)? {
            let state: AppliedStateV1 = codec::decode(&raw)?;
            return Ok(Some(AppliedState {
                last_applied: state.last_applied,
                last_membership: state.last_membership,
                directory: state.directory.into(),
            }));
        }
        Ok(None)
    }

    /// Persists the head and the placements of `changed`, atomically and flushed.
    #[cfg(test)]
    async fn persist<'a>(
        &self,
        state: &AppliedState,
        changed: impl IntoIterator<Item = &'a ObjectKey>,
    ) -> io::Result<()> {
        self.write_flushed(Self::changes_batch(state, changed)?)
            .await
    }

    /// The head and the placements of `changed` as they stand in `state`.
    fn changes_batch<'a>(
        state: &AppliedState,
        changed: impl IntoIterator<Item = &'a ObjectKey>,
    ) -> io::Result<Batch> {
        let mut batch = Batch::default();
        batch.insert(APPLIED_KEY, codec::encode(&AppliedHead::of(state))?);
        for key in changed {
            match state.directory.placements().get(key) {
                Some(placement) => batch.insert(placement_key(key)?, codec::encode(placement)?),
                None => batch.remove(placement_key(key)?),
            }
        }
        Ok(batch)
    }

    async fn write_flushed(&self, batch: Batch) -> io::Result<()> {
        self.tree.apply_batch(batch)?;
        self.store.flush().await?;
        Ok(())
    }

    /// A batch replacing whatever is stored with `state`.
    fn whole_state_batch(tree: &Tree, state: &AppliedState) -> io::Result<Batch> {
        let mut batch = Batch::default();
        for row in tree.scan_prefix(PLACEMENT_PREFIX) {
            let (key, _) = row?;
            batch.remove(key);
        }
        batch.insert(APPLIED_KEY, codec::encode(&AppliedHead::of(state))?);
        for (key, placement) in state.directory.placements() {
            batch.insert(placement_key(key)?, codec::encode(placement)?);
        }
        Ok(batch)
    }
}

impl RaftSnapshotBuilder<C> for SledStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, data) = {
            let state = self.state.read().await;
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.last_membership.clone(),
            };
            (meta, codec::encode(&state.directory)?)
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.snapshots
            .insert(SNAPSHOT_KEY, codec::encode(&stored)?)?;
        self.store.flush().await?;
        tracing::info!(bytes = data.len(), last_log_id = ?meta.last_log_id, "directory snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<C> for SledStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.state.read().await;
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        // Read from the log before locking: readers must not wait on it.
        let entries: Vec<_> = entries.try_collect().await?;
        let mut state = self.state.write().await;
        let mut responders = Vec::new();
        let mut changed = BTreeSet::new();
        for (entry, responder) in entries {
            state.last_applied = Some(entry.log_id);
            let proposed_by = Leadership {
                term: entry.log_id.committed_leader_id().term,
                leader: entry.log_id.committed_leader_id().node_id,
            };
            let outcome = match entry.payload {
                EntryPayload::Blank => CommandOutcome::Unchanged,
                EntryPayload::Normal(ref command) => {
                    note_touched(command, &mut changed);
                    if let Command::DeleteNamespace { name } = command
                        && let Some(record) = state.directory.namespace(name.as_str())
                    {
                        let stored_as = record.stored_as();
                        changed.extend(
                            state
                                .directory
                                .placements_of(&stored_as)
                                .map(|p| p.key.clone()),
                        );
                    }
                    let outcome = state.directory.apply(command, proposed_by);
                    if let CommandOutcome::StaleMark { seen_by, .. } = &outcome {
                        tracing::info!(command = %command, seen_by = %seen_by, proposed_by = %proposed_by, "liveness mark of another leadership ignored");
                    }
                    outcome
                }
                EntryPayload::Membership(ref membership) => {
                    state.last_membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    CommandOutcome::Applied
                }
            };
            if let Some(responder) = responder {
                responders.push((responder, outcome));
            }
        }
        let batch = Self::changes_batch(&state, &changed)?;
        let applied = state.last_applied.map_or(0, |id| id.index);
        drop(state);
        // Flushed after the lock is released: every object call on this node reads the
        // directory, and holding the lock over the flush made them all wait on the disk
        // once per applied batch. Readers may so see a batch before it is durable here;
        // it is committed (in a majority of logs) and a restart applies it again. Nobody
        // hears an outcome before it is durable.
        self.write_flushed(batch).await?;
        for (responder, outcome) in responders {
            responder.send(outcome);
        }
        self.changes.send_replace(applied);
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let directory: DirectoryState = codec::decode(&snapshot)?;
        let new_state = AppliedState {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            directory,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot,
        };
        let batch = Self::whole_state_batch(&self.tree, &new_state)?;
        let mut state = self.state.write().await;
        // The snapshot first: sled keeps a prefix of its writes in a crash, so the state
        // is never newer than the stored snapshot (a node with the snapshot but the older
        // state is one the leader brings up to date again).
        self.snapshots
            .insert(SNAPSHOT_KEY, codec::encode(&stored)?)?;
        self.tree.apply_batch(batch)?;
        self.store.flush().await?;
        *state = new_state;
        let applied = state.last_applied.map_or(0, |id| id.index);
        drop(state);
        self.changes.send_replace(applied);
        tracing::info!(last_log_id = ?meta.last_log_id, "directory snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        match self.snapshots.get(SNAPSHOT_KEY)? {
            None => Ok(None),
            Some(raw) => {
                let stored: StoredSnapshot = codec::decode(&raw)?;
                Ok(Some(Snapshot {
                    meta: stored.meta,
                    snapshot: stored.data,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests;
