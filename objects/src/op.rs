//! Storage operations on one object, as the owner receives them.

use serde::{Deserialize, Serialize};

/// One request to an object's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Get {
        keys: Vec<Vec<u8>>,
    },
    Put {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Delete {
        keys: Vec<Vec<u8>>,
    },
    List(ListQuery),
    DeleteAll,
    /// Adds `delta` to the integer stored at `key` (absent counts as 0).
    Add {
        key: Vec<u8>,
        delta: i64,
    },
    /// All writes or none, if every precondition holds.
    Transaction {
        preconditions: Vec<Precondition>,
        writes: Vec<TxnWrite>,
    },
    /// Key count, bytes and version, for `inspect`.
    Stats,
}

impl Op {
    /// Whether the operation may change storage (and so needs replication).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. } | Op::List(_) | Op::Stats)
    }
}

/// Keys in byte order within `[start, end)` and under `prefix`, forward or reverse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    pub prefix: Vec<u8>,
    /// Inclusive lower bound (empty: none).
    pub start: Vec<u8>,
    /// Exclusive upper bound (empty: none).
    pub end: Vec<u8>,
    pub reverse: bool,
    /// 0: the page limit.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precondition {
    /// The key's version is exactly this (0: the key is absent).
    VersionEquals {
        key: Vec<u8>,
        version: u64,
    },
    Absent {
        key: Vec<u8>,
    },
    ValueEquals {
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnWrite {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
    Add { key: Vec<u8>, delta: i64 },
}

/// A key's value as read, with the version of the write that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadValue {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// 0 when absent.
    pub version: u64,
}

/// The answer to an [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Values(Vec<ReadValue>),
    /// The object version after the write (its sequence number).
    Written {
        version: u64,
    },
    List {
        entries: Vec<ReadValue>,
        /// More keys follow in the requested direction.
        more: bool,
    },
    Added {
        value: i64,
        version: u64,
    },
    /// One result per transaction write, in order: the value written (None: deleted).
    Transaction {
        version: u64,
        results: Vec<Option<Vec<u8>>>,
    },
    Stats {
        keys: u64,
        bytes: u64,
        version: u64,
    },
}
