//! openraft's type configuration for the directory group.

use crate::{Command, CommandOutcome, NodeId, PeerNode};

openraft::declare_raft_types!(
    /// Types of the directory's Raft group.
    pub DirectoryRaftConfig:
        D = Command,
        R = CommandOutcome,
        NodeId = NodeId,
        Node = PeerNode,
        AsyncRuntime = crate::runtime::DirectoryRuntime,
);

pub type LogId = openraft::alias::LogIdOf<DirectoryRaftConfig>;
pub type Entry = openraft::alias::EntryOf<DirectoryRaftConfig>;
pub type Vote = openraft::alias::VoteOf<DirectoryRaftConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<DirectoryRaftConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<DirectoryRaftConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<DirectoryRaftConfig, Vec<u8>>;
pub type RaftMetrics = openraft::RaftMetrics<DirectoryRaftConfig>;

/// Entries per `AppendEntries` message. An entry can carry up to
/// `placing::PLACEMENT_BATCH_MAX` placements (~40 KiB), so openraft's default of 300
/// let a follower that fell behind receive messages of ~11 MiB, each a long stall for a
/// busy node and sent again whole when it timed out. 32 keeps one near 1 MiB at worst.
pub const APPEND_ENTRIES_MAX: u64 = 32;
