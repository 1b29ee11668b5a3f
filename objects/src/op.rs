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
    /// Key count, bytes, version, alarms and the last event, for `inspect`.
    Stats,
    /// Sets (or replaces) the alarm `name`, due at `at_ms` (Unix ms).
    SetAlarm {
        name: String,
        at_ms: u64,
        payload: Vec<u8>,
    },
    DeleteAlarms {
        names: Vec<String>,
    },
    ListAlarms,
    /// Appends a message to the object's event log, stamped `at_ms` by the node that
    /// took the call.
    Publish {
        payload: Vec<u8>,
        at_ms: u64,
    },
    /// Fires the alarms due at `now_ms`: each is removed and an `AlarmFired` event
    /// appended, in one write. Sent by the owner's alarm scheduler, not by clients.
    FireAlarms {
        now_ms: u64,
    },
    /// Events after `after` still in the log; `None`: none, only where the log is.
    Events {
        after: Option<u64>,
    },
}

impl Op {
    /// Bytes of keys, values and payloads the operation carries (batching estimates).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Op::Put { entries } => entries.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Op::Transaction { writes, .. } => writes
                .iter()
                .map(|w| match w {
                    TxnWrite::Put { key, value } => key.len() + value.len(),
                    TxnWrite::Delete { key } | TxnWrite::Add { key, .. } => key.len(),
                })
                .sum(),
            Op::Get { keys } | Op::Delete { keys } => keys.iter().map(Vec::len).sum(),
            Op::Add { key, .. } => key.len(),
            Op::SetAlarm { name, payload, .. } => name.len() + payload.len(),
            Op::Publish { payload, .. } => payload.len(),
            Op::DeleteAlarms { names } => names.iter().map(String::len).sum(),
            Op::List(_)
            | Op::DeleteAll
            | Op::Stats
            | Op::ListAlarms
            | Op::FireAlarms { .. }
            | Op::Events { .. } => 0,
        }
    }

    /// Whether the operation may change storage (and so needs replication).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Op::Get { .. } | Op::List(_) | Op::Stats | Op::ListAlarms | Op::Events { .. }
        )
    }

    /// Whether the operation, on an object never written, places it. Every write a
    /// client sends does; reads never do (a read has no side effect: an unplaced object
    /// is answered as the empty object it is), nor does the owner's alarm firing.
    pub fn places(&self) -> bool {
        self.is_write() && !matches!(self, Op::FireAlarms { .. })
    }
}

/// A named alarm of an object. When due, the owner removes it and appends an
/// [`EventKind::AlarmFired`] event in one replicated write, so an alarm fires at least
/// once: if the owner fails before that write is acknowledged, the next owner fires it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// Due time, Unix milliseconds.
    pub at_ms: u64,
    pub payload: Vec<u8>,
}

/// An entry of an object's event log, numbered from 1 without gaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// When it happened, Unix milliseconds.
    pub at_ms: u64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    AlarmFired {
        name: String,
        scheduled_ms: u64,
        payload: Vec<u8>,
    },
    Published {
        payload: Vec<u8>,
    },
}

impl Event {
    /// Bytes the event holds, for the log's size bound.
    pub fn size(&self) -> usize {
        16 + match &self.kind {
            EventKind::AlarmFired { name, payload, .. } => name.len() + payload.len(),
            EventKind::Published { payload } => payload.len(),
        }
    }
}

/// What `inspect` reports besides the placement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectStats {
    pub keys: u64,
    pub bytes: u64,
    pub version: u64,
    /// Alarm names and due times, in name order.
    pub alarms: Vec<(String, u64)>,
    /// Sequence number of the last event (0: none yet).
    pub last_event_seq: u64,
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

/// An answer and who gave it: the owner node and its epoch when the call was answered
/// (for a write: the owner that got it acknowledged by a majority).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub reply: Reply,
    pub owner: u64,
    pub epoch: u64,
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
    Stats(ObjectStats),
    /// Alarms in name order.
    Alarms(Vec<(String, Alarm)>),
    Published {
        seq: u64,
        version: u64,
    },
    /// How many alarms fired.
    Fired {
        count: usize,
    },
    Events {
        /// In sequence order.
        events: Vec<Event>,
        last_seq: u64,
        /// The oldest event still kept; `last_seq + 1` when the log is empty. Events
        /// between the asked position and this one are gone.
        oldest_seq: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectLimits, ObjectState};

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn reads_do_not_place_and_the_empty_object_answers_them_without_writing() {
        let limits = ObjectLimits::default();
        let empty = ObjectState::default();
        let reads = [
            Op::Get { keys: vec![k("a")] },
            Op::List(ListQuery::default()),
            Op::Stats,
            Op::ListAlarms,
            Op::Events { after: None },
        ];
        for op in reads {
            assert!(!op.places() && !op.is_write(), "{op:?} is a read");
            // What the host answers for an object never written, without placing it.
            let (_, mutations) = empty.execute(&op, &limits).expect("read");
            assert!(mutations.is_empty(), "{op:?} wrote {mutations:?}");
        }
        let writes = [
            Op::Put {
                entries: vec![(k("a"), k("1"))],
            },
            Op::Delete { keys: vec![k("a")] },
            Op::DeleteAll,
            Op::Add {
                key: k("n"),
                delta: 1,
            },
            Op::Transaction {
                preconditions: vec![Precondition::Absent { key: k("a") }],
                writes: vec![TxnWrite::Delete { key: k("a") }],
            },
            Op::SetAlarm {
                name: "a".into(),
                at_ms: 1,
                payload: vec![],
            },
            Op::DeleteAlarms {
                names: vec!["a".into()],
            },
            Op::Publish {
                payload: k("hi"),
                at_ms: 1,
            },
        ];
        for op in writes {
            assert!(op.places() && op.is_write(), "{op:?} is a write and places");
        }
        // The owner's own alarm firing is a write, but never places an object.
        let fire = Op::FireAlarms { now_ms: 1 };
        assert!(fire.is_write() && !fire.places());
    }
}
