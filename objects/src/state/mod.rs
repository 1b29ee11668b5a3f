//! One object's storage and the engine that runs operations on it, purely: the owner
//! executes (`execute`), replicates the mutations, and applies them; replicas only apply.

mod execute;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::op::{Alarm, Event, Op, Reply};
use crate::{ObjectError, ObjectLimits};

/// A stored value and the object version that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub value: Vec<u8>,
    pub version: u64,
}

/// Request ids of recent writes an object remembers, with their answers, so a retried
/// write is applied at most once.
pub const REQUEST_IDS_KEPT: usize = 1024;
/// Longest request id.
pub const REQUEST_ID_BYTES_MAX: usize = 128;
/// An object's event log keeps its last events up to this many...
pub const EVENTS_KEPT: usize = 256;
/// ...and up to this many bytes (the newest event is always kept).
pub const EVENT_BYTES_KEPT: usize = 1024 * 1024;
/// Alarms fired by one write; more due ones fire in the next.
pub(crate) const ALARMS_FIRED_PER_WRITE: usize = 128;

/// A change to an object's storage, replicated to its replicas and applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    DeleteAll,
    /// Remembers a write's request id and answer.
    Remember {
        request_id: String,
        reply: Reply,
    },
    SetAlarm {
        name: String,
        alarm: Alarm,
    },
    DeleteAlarm {
        name: String,
    },
    AppendEvent(Event),
    /// Drops events up to and including `through` from the log.
    ForgetEvents {
        through: u64,
    },
}

/// Everything an object stores, as read from a copy.
#[derive(Debug, Clone, Default)]
pub struct StateParts {
    pub entries: BTreeMap<Vec<u8>, Stored>,
    pub version: u64,
    pub recent: VecDeque<(String, Reply)>,
    pub alarms: BTreeMap<String, Alarm>,
    pub events: VecDeque<Event>,
}

/// One object's storage and the engine that runs operations on it.
///
/// Pure: [`ObjectState::execute`] answers an operation and returns the mutations it
/// implies without applying them; [`ObjectState::apply`] applies a write's mutations as
/// the next object version. The owner executes, replicates, and applies once a majority
/// holds the write; replicas only apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectState {
    entries: BTreeMap<Vec<u8>, Stored>,
    /// Version of the last applied write (the object's sequence number).
    version: u64,
    /// Request ids of the last writes, oldest first, with their answers.
    recent: VecDeque<(String, Reply)>,
    alarms: BTreeMap<String, Alarm>,
    /// The last events, oldest first (bounded by [`EVENTS_KEPT`], [`EVENT_BYTES_KEPT`]).
    events: VecDeque<Event>,
}

impl ObjectState {
    /// A state from stored parts (cold start, state transfer).
    pub fn from_parts(parts: StateParts) -> ObjectState {
        ObjectState {
            entries: parts.entries,
            version: parts.version,
            recent: parts.recent,
            alarms: parts.alarms,
            events: parts.events,
        }
    }

    pub fn alarms(&self) -> &BTreeMap<String, Alarm> {
        &self.alarms
    }

    pub fn events(&self) -> &VecDeque<Event> {
        &self.events
    }

    pub fn last_event_seq(&self) -> u64 {
        self.events.back().map_or(0, |e| e.seq)
    }

    /// When the earliest alarm is due.
    pub fn next_alarm_ms(&self) -> Option<u64> {
        self.alarms.values().map(|a| a.at_ms).min()
    }

    /// Appends `new` events to the mutations, with the forgetting of old ones that
    /// keeps the log within its bounds.
    fn append_events(&self, new: Vec<Event>, mutations: &mut Vec<Mutation>) {
        let mut count = self.events.len() + new.len();
        let mut bytes: usize = self.events.iter().chain(&new).map(Event::size).sum();
        let mut through = None;
        let droppable = self
            .events
            .iter()
            .chain(new.iter().take(new.len().saturating_sub(1)));
        for event in droppable {
            if count <= EVENTS_KEPT && bytes <= EVENT_BYTES_KEPT {
                break;
            }
            count -= 1;
            bytes -= event.size();
            through = Some(event.seq);
        }
        mutations.extend(new.into_iter().map(Mutation::AppendEvent));
        if let Some(through) = through {
            mutations.push(Mutation::ForgetEvents { through });
        }
    }

    pub fn recent(&self) -> &VecDeque<(String, Reply)> {
        &self.recent
    }

    /// Like [`ObjectState::execute`], for a call that carries an idempotency key: a write
    /// whose id this object remembers is answered as the first time, with no mutations;
    /// a new write also remembers its id and answer.
    pub fn execute_request(
        &self,
        op: &Op,
        request_id: Option<&str>,
        limits: &ObjectLimits,
    ) -> Result<(Reply, Vec<Mutation>), ObjectError> {
        let Some(id) = request_id.filter(|_| op.is_write()) else {
            return self.execute(op, limits);
        };
        if id.is_empty() || id.len() > REQUEST_ID_BYTES_MAX {
            return Err(ObjectError::InvalidArgument(format!(
                "request_id must be 1 to {REQUEST_ID_BYTES_MAX} bytes, got {}",
                id.len()
            )));
        }
        if let Some((_, reply)) = self.recent.iter().find(|(seen, _)| seen == id) {
            return Ok((reply.clone(), Vec::new()));
        }
        let (reply, mut mutations) = self.execute(op, limits)?;
        mutations.push(Mutation::Remember {
            request_id: id.to_string(),
            reply: reply.clone(),
        });
        Ok((reply, mutations))
    }

    pub fn entries(&self) -> &BTreeMap<Vec<u8>, Stored> {
        &self.entries
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| k.len() + v.value.len())
            .sum()
    }

    /// Applies one write's mutations as the next object version.
    pub fn apply(&mut self, mutations: &[Mutation]) -> u64 {
        self.version += 1;
        for mutation in mutations {
            match mutation {
                Mutation::Put { key, value } => {
                    self.entries.insert(
                        key.clone(),
                        Stored {
                            value: value.clone(),
                            version: self.version,
                        },
                    );
                }
                Mutation::Delete { key } => {
                    self.entries.remove(key);
                }
                Mutation::DeleteAll => {
                    self.entries.clear();
                    self.alarms.clear();
                }
                Mutation::Remember { request_id, reply } => {
                    self.recent.push_back((request_id.clone(), reply.clone()));
                    while self.recent.len() > REQUEST_IDS_KEPT {
                        self.recent.pop_front();
                    }
                }
                Mutation::SetAlarm { name, alarm } => {
                    self.alarms.insert(name.clone(), alarm.clone());
                }
                Mutation::DeleteAlarm { name } => {
                    self.alarms.remove(name);
                }
                Mutation::AppendEvent(event) => self.events.push_back(event.clone()),
                Mutation::ForgetEvents { through } => {
                    while self.events.front().is_some_and(|e| e.seq <= *through) {
                        self.events.pop_front();
                    }
                }
            }
        }
        self.version
    }
}

#[cfg(test)]
mod tests;
