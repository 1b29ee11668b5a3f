use std::io;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use larder_store::{Store, Tree, codec};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, watch};

use crate::raft_types::{
    DirectoryRaftConfig as C, LogId, Snapshot, SnapshotMeta, StoredMembership,
};
use crate::{CommandOutcome, DirectoryState};

const SM_TREE: &str = "directory_state";
const APPLIED_KEY: &[u8] = b"applied";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// Everything the state machine persists: the directory and how far the log was applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    pub directory: DirectoryState,
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
/// The whole directory is one record: it is small (nodes and namespaces); object
/// placement will get per-key records when it lands here.
#[derive(Clone)]
pub struct SledStateMachine {
    store: Store,
    tree: Tree,
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
        let state: AppliedState = match tree.get(APPLIED_KEY)? {
            Some(raw) => codec::decode(&raw)?,
            None => AppliedState::default(),
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
                state,
                changes,
            },
            reader,
        ))
    }

    async fn persist(&self, state: &AppliedState) -> io::Result<()> {
        self.tree.insert(APPLIED_KEY, codec::encode(state)?)?;
        self.store.flush().await?;
        Ok(())
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
        self.tree.insert(SNAPSHOT_KEY, codec::encode(&stored)?)?;
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

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut state = self.state.write().await;
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            state.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => CommandOutcome::Unchanged,
                EntryPayload::Normal(ref command) => state.directory.apply(command),
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
        // Durable before anyone hears the outcome.
        self.persist(&state).await?;
        let applied = state.last_applied.map_or(0, |id| id.index);
        drop(state);
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
        self.tree.insert(SNAPSHOT_KEY, codec::encode(&stored)?)?;
        let mut state = self.state.write().await;
        self.persist(&new_state).await?;
        *state = new_state;
        let applied = state.last_applied.map_or(0, |id| id.index);
        drop(state);
        self.changes.send_replace(applied);
        tracing::info!(last_log_id = ?meta.last_log_id, "directory snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        match self.tree.get(SNAPSHOT_KEY)? {
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
