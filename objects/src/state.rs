use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::op::{
    Alarm, Event, EventKind, ListQuery, ObjectStats, Op, Precondition, ReadValue, Reply, TxnWrite,
};
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
const ALARMS_FIRED_PER_WRITE: usize = 128;

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

fn read(entries: &BTreeMap<Vec<u8>, Stored>, key: &[u8]) -> ReadValue {
    match entries.get(key) {
        Some(stored) => ReadValue {
            key: key.to_vec(),
            value: Some(stored.value.clone()),
            version: stored.version,
        },
        None => ReadValue {
            key: key.to_vec(),
            value: None,
            version: 0,
        },
    }
}

fn integer(key: &[u8], stored: Option<&[u8]>) -> Result<i64, ObjectError> {
    let Some(bytes) = stored else {
        return Ok(0);
    };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| ObjectError::NotAnInteger {
            key: String::from_utf8_lossy(key).to_string(),
        })
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

    /// Checks `op` against the limits, answers it, and returns the mutations a write
    /// implies (empty for reads and for writes that change nothing).
    pub fn execute(
        &self,
        op: &Op,
        limits: &ObjectLimits,
    ) -> Result<(Reply, Vec<Mutation>), ObjectError> {
        let next = self.version + 1;
        match op {
            Op::Get { keys } => {
                limits.batch("keys", keys.len())?;
                keys.iter().try_for_each(|k| limits.key(k))?;
                Ok((
                    Reply::Values(keys.iter().map(|k| read(&self.entries, k)).collect()),
                    Vec::new(),
                ))
            }
            Op::Put { entries } => {
                limits.batch("entries", entries.len())?;
                for (key, value) in entries {
                    limits.key(key)?;
                    limits.value(value)?;
                }
                let mutations = entries
                    .iter()
                    .map(|(key, value)| Mutation::Put {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect();
                Ok((Reply::Written { version: next }, mutations))
            }
            Op::Delete { keys } => {
                limits.batch("keys", keys.len())?;
                keys.iter().try_for_each(|k| limits.key(k))?;
                let mutations = keys
                    .iter()
                    .map(|key| Mutation::Delete { key: key.clone() })
                    .collect();
                Ok((Reply::Written { version: next }, mutations))
            }
            Op::List(query) => Ok((self.list(query, limits)?, Vec::new())),
            Op::DeleteAll => Ok((Reply::Written { version: next }, vec![Mutation::DeleteAll])),
            Op::Add { key, delta } => {
                limits.key(key)?;
                let current = integer(key, self.entries.get(key).map(|s| s.value.as_slice()))?;
                let value = current
                    .checked_add(*delta)
                    .ok_or_else(|| ObjectError::Overflow {
                        key: String::from_utf8_lossy(key).to_string(),
                        current,
                        delta: *delta,
                    })?;
                let mutation = Mutation::Put {
                    key: key.clone(),
                    value: value.to_string().into_bytes(),
                };
                Ok((
                    Reply::Added {
                        value,
                        version: next,
                    },
                    vec![mutation],
                ))
            }
            Op::Transaction {
                preconditions,
                writes,
            } => self.transaction(preconditions, writes, limits),
            Op::Stats => Ok((
                Reply::Stats(ObjectStats {
                    keys: self.entries.len() as u64,
                    bytes: self.bytes() as u64,
                    version: self.version,
                    alarms: self
                        .alarms
                        .iter()
                        .map(|(name, a)| (name.clone(), a.at_ms))
                        .collect(),
                    last_event_seq: self.last_event_seq(),
                }),
                Vec::new(),
            )),
            Op::SetAlarm {
                name,
                at_ms,
                payload,
            } => {
                limits.alarm_name(name)?;
                limits.message("alarm payload", payload)?;
                if !self.alarms.contains_key(name) && self.alarms.len() >= limits.alarms_max {
                    return Err(ObjectError::TooManyAlarms(limits.alarms_max));
                }
                let alarm = Alarm {
                    at_ms: *at_ms,
                    payload: payload.clone(),
                };
                Ok((
                    Reply::Written { version: next },
                    vec![Mutation::SetAlarm {
                        name: name.clone(),
                        alarm,
                    }],
                ))
            }
            Op::DeleteAlarms { names } => {
                limits.batch("alarm names", names.len())?;
                names.iter().try_for_each(|n| limits.alarm_name(n))?;
                let mutations = names
                    .iter()
                    .map(|name| Mutation::DeleteAlarm { name: name.clone() })
                    .collect();
                Ok((Reply::Written { version: next }, mutations))
            }
            Op::ListAlarms => Ok((
                Reply::Alarms(
                    self.alarms
                        .iter()
                        .map(|(n, a)| (n.clone(), a.clone()))
                        .collect(),
                ),
                Vec::new(),
            )),
            Op::Publish { payload, at_ms } => {
                limits.message("message", payload)?;
                let seq = self.last_event_seq() + 1;
                let event = Event {
                    seq,
                    at_ms: *at_ms,
                    kind: EventKind::Published {
                        payload: payload.clone(),
                    },
                };
                let mut mutations = Vec::new();
                self.append_events(vec![event], &mut mutations);
                Ok((Reply::Published { seq, version: next }, mutations))
            }
            Op::FireAlarms { now_ms } => {
                let mut due: Vec<(&String, &Alarm)> = self
                    .alarms
                    .iter()
                    .filter(|(_, a)| a.at_ms <= *now_ms)
                    .collect();
                due.sort_by_key(|(name, a)| (a.at_ms, *name));
                due.truncate(ALARMS_FIRED_PER_WRITE);
                let first = self.last_event_seq() + 1;
                let mut mutations: Vec<Mutation> = due
                    .iter()
                    .map(|(name, _)| Mutation::DeleteAlarm {
                        name: (*name).clone(),
                    })
                    .collect();
                let events = due
                    .iter()
                    .zip(first..)
                    .map(|((name, alarm), seq)| Event {
                        seq,
                        at_ms: *now_ms,
                        kind: EventKind::AlarmFired {
                            name: (*name).clone(),
                            scheduled_ms: alarm.at_ms,
                            payload: alarm.payload.clone(),
                        },
                    })
                    .collect();
                self.append_events(events, &mut mutations);
                Ok((Reply::Fired { count: due.len() }, mutations))
            }
            Op::Events { after } => {
                let last_seq = self.last_event_seq();
                let oldest_seq = self.events.front().map_or(last_seq + 1, |e| e.seq);
                let events = match after {
                    Some(after) => self
                        .events
                        .iter()
                        .filter(|e| e.seq > *after)
                        .cloned()
                        .collect(),
                    None => Vec::new(),
                };
                Ok((
                    Reply::Events {
                        events,
                        last_seq,
                        oldest_seq,
                    },
                    Vec::new(),
                ))
            }
        }
    }

    fn list(&self, query: &ListQuery, limits: &ObjectLimits) -> Result<Reply, ObjectError> {
        let limit = limits.page(query.limit)?;
        let lower = if query.start.as_slice() > query.prefix.as_slice() {
            &query.start
        } else {
            &query.prefix
        };
        let range = (
            Bound::Included(lower.clone()),
            if query.end.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(query.end.clone())
            },
        );
        if !query.end.is_empty() && query.end <= *lower {
            return Ok(Reply::List {
                entries: Vec::new(),
                more: false,
            });
        }
        let matching = self
            .entries
            .range(range)
            .filter(|(k, _)| k.starts_with(&query.prefix));
        let to_value = |(k, s): (&Vec<u8>, &Stored)| ReadValue {
            key: k.clone(),
            value: Some(s.value.clone()),
            version: s.version,
        };
        let mut entries: Vec<ReadValue> = if query.reverse {
            matching.rev().take(limit + 1).map(to_value).collect()
        } else {
            matching.take(limit + 1).map(to_value).collect()
        };
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(Reply::List { entries, more })
    }

    fn transaction(
        &self,
        preconditions: &[Precondition],
        writes: &[TxnWrite],
        limits: &ObjectLimits,
    ) -> Result<(Reply, Vec<Mutation>), ObjectError> {
        limits.batch("transaction writes", writes.len())?;
        if preconditions.len() > limits.batch_keys_max {
            return Err(ObjectError::InvalidArgument(format!(
                "transaction preconditions: {} given; the limit is {} (objects.batch_keys_max)",
                preconditions.len(),
                limits.batch_keys_max
            )));
        }
        for (index, precondition) in preconditions.iter().enumerate() {
            let (key, holds, reason) = match precondition {
                Precondition::VersionEquals { key, version } => {
                    let actual = self.entries.get(key).map_or(0, |s| s.version);
                    (
                        key,
                        actual == *version,
                        format!("version is {actual}, expected {version}"),
                    )
                }
                Precondition::Absent { key } => (
                    key,
                    !self.entries.contains_key(key),
                    "key exists".to_string(),
                ),
                Precondition::ValueEquals { key, value } => {
                    let actual = self.entries.get(key).map(|s| &s.value);
                    (key, actual == Some(value), "value differs".to_string())
                }
            };
            limits.key(key)?;
            if !holds {
                return Err(ObjectError::PreconditionFailed {
                    index,
                    reason: format!("{} at key {:?}", reason, String::from_utf8_lossy(key)),
                });
            }
        }
        // Later writes see earlier ones of the same transaction.
        let mut view: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut mutations = Vec::with_capacity(writes.len());
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            match write {
                TxnWrite::Put { key, value } => {
                    limits.key(key)?;
                    limits.value(value)?;
                    view.insert(key.clone(), Some(value.clone()));
                    mutations.push(Mutation::Put {
                        key: key.clone(),
                        value: value.clone(),
                    });
                    results.push(Some(value.clone()));
                }
                TxnWrite::Delete { key } => {
                    limits.key(key)?;
                    view.insert(key.clone(), None);
                    mutations.push(Mutation::Delete { key: key.clone() });
                    results.push(None);
                }
                TxnWrite::Add { key, delta } => {
                    limits.key(key)?;
                    let current = match view.get(key) {
                        Some(staged) => integer(key, staged.as_deref())?,
                        None => integer(key, self.entries.get(key).map(|s| s.value.as_slice()))?,
                    };
                    let value =
                        current
                            .checked_add(*delta)
                            .ok_or_else(|| ObjectError::Overflow {
                                key: String::from_utf8_lossy(key).to_string(),
                                current,
                                delta: *delta,
                            })?;
                    let bytes = value.to_string().into_bytes();
                    view.insert(key.clone(), Some(bytes.clone()));
                    mutations.push(Mutation::Put {
                        key: key.clone(),
                        value: bytes.clone(),
                    });
                    results.push(Some(bytes));
                }
            }
        }
        Ok((
            Reply::Transaction {
                version: self.version + 1,
                results,
            },
            mutations,
        ))
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
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn run(state: &mut ObjectState, op: Op) -> Result<Reply, ObjectError> {
        let (reply, mutations) = state.execute(&op, &ObjectLimits::default())?;
        if op.is_write() {
            state.apply(&mutations);
        }
        Ok(reply)
    }

    #[test]
    fn put_get_delete_and_versions() {
        let mut st = ObjectState::default();
        assert_eq!(
            run(
                &mut st,
                Op::Put {
                    entries: vec![(k("a"), k("1")), (k("b"), k("2"))]
                }
            ),
            Ok(Reply::Written { version: 1 })
        );
        run(
            &mut st,
            Op::Put {
                entries: vec![(k("a"), k("3"))],
            },
        )
        .expect("put");
        let Ok(Reply::Values(values)) = run(
            &mut st,
            Op::Get {
                keys: vec![k("a"), k("b"), k("c")],
            },
        ) else {
            panic!()
        };
        assert_eq!(
            values
                .iter()
                .map(|v| (v.value.clone(), v.version))
                .collect::<Vec<_>>(),
            vec![(Some(k("3")), 2), (Some(k("2")), 1), (None, 0)]
        );
        run(&mut st, Op::Delete { keys: vec![k("a")] }).expect("delete");
        assert_eq!(st.len(), 1);
        run(&mut st, Op::DeleteAll).expect("delete all");
        assert!(st.is_empty());
        assert_eq!(st.version(), 4);
    }

    #[test]
    fn add_counts_and_refuses_non_integers() {
        let mut st = ObjectState::default();
        for _ in 0..5 {
            run(
                &mut st,
                Op::Add {
                    key: k("n"),
                    delta: 2,
                },
            )
            .expect("add");
        }
        assert_eq!(
            run(
                &mut st,
                Op::Add {
                    key: k("n"),
                    delta: -1
                }
            ),
            Ok(Reply::Added {
                value: 9,
                version: 6
            })
        );
        run(
            &mut st,
            Op::Put {
                entries: vec![(k("s"), k("text"))],
            },
        )
        .expect("put");
        assert!(matches!(
            run(
                &mut st,
                Op::Add {
                    key: k("s"),
                    delta: 1
                }
            ),
            Err(ObjectError::NotAnInteger { .. })
        ));
        run(
            &mut st,
            Op::Put {
                entries: vec![(k("m"), i64::MAX.to_string().into_bytes())],
            },
        )
        .expect("put");
        assert!(matches!(
            run(
                &mut st,
                Op::Add {
                    key: k("m"),
                    delta: 1
                }
            ),
            Err(ObjectError::Overflow { .. })
        ));
    }

    #[test]
    fn transactions_apply_all_or_nothing() {
        let mut st = ObjectState::default();
        run(
            &mut st,
            Op::Put {
                entries: vec![(k("stock"), k("1"))],
            },
        )
        .expect("put");
        let buy = Op::Transaction {
            preconditions: vec![
                Precondition::VersionEquals {
                    key: k("stock"),
                    version: 1,
                },
                Precondition::Absent { key: k("order") },
            ],
            writes: vec![
                TxnWrite::Add {
                    key: k("stock"),
                    delta: -1,
                },
                TxnWrite::Put {
                    key: k("order"),
                    value: k("o1"),
                },
                TxnWrite::Add {
                    key: k("stock"),
                    delta: 0,
                },
            ],
        };
        let Ok(Reply::Transaction { version, results }) = run(&mut st, buy.clone()) else {
            panic!()
        };
        assert_eq!(version, 2);
        assert_eq!(results, vec![Some(k("0")), Some(k("o1")), Some(k("0"))]);
        // The same transaction again: the version moved on, so nothing applies.
        let before = st.clone();
        assert!(matches!(
            run(&mut st, buy),
            Err(ObjectError::PreconditionFailed { index: 0, .. })
        ));
        assert_eq!(st, before);
        let value_check = Op::Transaction {
            preconditions: vec![Precondition::ValueEquals {
                key: k("order"),
                value: k("o1"),
            }],
            writes: vec![TxnWrite::Delete { key: k("order") }],
        };
        run(&mut st, value_check).expect("value precondition holds");
        assert_eq!(st.len(), 1);
    }

    #[test]
    fn list_ranges_prefixes_reverse_and_pages() {
        let mut st = ObjectState::default();
        let entries = ["a1", "a2", "a3", "b1", "b2"]
            .iter()
            .map(|s| (k(s), k("v")))
            .collect();
        run(&mut st, Op::Put { entries }).expect("put");
        let keys = |reply: Reply| match reply {
            Reply::List { entries, more } => (
                entries
                    .into_iter()
                    .map(|e| String::from_utf8(e.key).expect("utf8"))
                    .collect::<Vec<_>>(),
                more,
            ),
            other => panic!("{other:?}"),
        };
        let list = |q: ListQuery| {
            keys(
                st.execute(&Op::List(q), &ObjectLimits::default())
                    .expect("list")
                    .0,
            )
        };
        assert_eq!(
            list(ListQuery {
                prefix: k("a"),
                ..Default::default()
            }),
            (vec!["a1".into(), "a2".into(), "a3".into()], false)
        );
        assert_eq!(
            list(ListQuery {
                prefix: k("a"),
                reverse: true,
                limit: 2,
                ..Default::default()
            }),
            (vec!["a3".into(), "a2".into()], true)
        );
        assert_eq!(
            list(ListQuery {
                start: k("a2"),
                end: k("b2"),
                ..Default::default()
            }),
            (vec!["a2".into(), "a3".into(), "b1".into()], false)
        );
        assert_eq!(
            list(ListQuery {
                start: k("b"),
                end: k("a"),
                ..Default::default()
            })
            .0
            .len(),
            0
        );
    }

    #[test]
    fn limits_are_named() {
        let st = ObjectState::default();
        let limits = ObjectLimits::default();
        let err = st
            .execute(
                &Op::Put {
                    entries: vec![(vec![b'k'; 2049], k("v"))],
                },
                &limits,
            )
            .expect_err("key");
        assert!(err.to_string().contains("objects.key_bytes_max"), "{err}");
        let err = st
            .execute(
                &Op::Put {
                    entries: vec![(k("k"), vec![0; 1024 * 1024 + 1])],
                },
                &limits,
            )
            .expect_err("value");
        assert!(err.to_string().contains("objects.value_bytes_max"), "{err}");
        let keys = (0..129).map(|i| format!("k{i}").into_bytes()).collect();
        let err = st.execute(&Op::Get { keys }, &limits).expect_err("batch");
        assert!(err.to_string().contains("objects.batch_keys_max"), "{err}");
        let err = st
            .execute(
                &Op::List(ListQuery {
                    limit: 1001,
                    ..Default::default()
                }),
                &limits,
            )
            .expect_err("page");
        assert!(err.to_string().contains("objects.list_page_max"), "{err}");
    }

    #[test]
    fn a_retried_request_id_applies_once() {
        let limits = ObjectLimits::default();
        let mut st = ObjectState::default();
        let add = Op::Add {
            key: k("n"),
            delta: 1,
        };
        for _ in 0..3 {
            let (reply, mutations) = st
                .execute_request(&add, Some("req-1"), &limits)
                .expect("add");
            assert_eq!(
                reply,
                Reply::Added {
                    value: 1,
                    version: 1
                }
            );
            if !mutations.is_empty() {
                st.apply(&mutations);
            }
        }
        assert_eq!(st.version(), 1);
        let (reply, mutations) = st
            .execute_request(&add, Some("req-2"), &limits)
            .expect("add");
        st.apply(&mutations);
        assert_eq!(
            reply,
            Reply::Added {
                value: 2,
                version: 2
            }
        );
        // Reads ignore ids; ids are bounded.
        let get = Op::Get { keys: vec![k("n")] };
        assert!(
            st.execute_request(&get, Some("req-1"), &limits)
                .expect("get")
                .1
                .is_empty()
        );
        assert!(
            st.execute_request(&add, Some(&"x".repeat(129)), &limits)
                .is_err()
        );
        for i in 0..(REQUEST_IDS_KEPT + 10) {
            let (_, m) = st
                .execute_request(&add, Some(&format!("bulk-{i}")), &limits)
                .expect("add");
            st.apply(&m);
        }
        assert_eq!(st.recent().len(), REQUEST_IDS_KEPT);
    }

    #[test]
    fn replicas_applying_the_owners_mutations_end_equal() {
        let limits = ObjectLimits::default();
        let mut owner = ObjectState::default();
        let mut replica = ObjectState::default();
        let ops = [
            Op::Put {
                entries: vec![(k("x"), k("1"))],
            },
            Op::Add {
                key: k("n"),
                delta: 5,
            },
            Op::Delete { keys: vec![k("x")] },
            Op::Transaction {
                preconditions: vec![],
                writes: vec![TxnWrite::Add {
                    key: k("n"),
                    delta: 1,
                }],
            },
        ];
        for op in ops {
            let (_, mutations) = owner.execute(&op, &limits).expect("execute");
            assert_eq!(owner.apply(&mutations), replica.apply(&mutations));
        }
        assert_eq!(owner, replica);
    }

    fn alarm(name: &str, at_ms: u64) -> Op {
        Op::SetAlarm {
            name: name.into(),
            at_ms,
            payload: name.as_bytes().to_vec(),
        }
    }

    fn events_after(st: &ObjectState, after: u64) -> (Vec<Event>, u64, u64) {
        match st.execute(&Op::Events { after: Some(after) }, &ObjectLimits::default()) {
            Ok((
                Reply::Events {
                    events,
                    last_seq,
                    oldest_seq,
                },
                _,
            )) => (events, last_seq, oldest_seq),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn due_alarms_fire_once_into_the_event_log() {
        let mut st = ObjectState::default();
        run(&mut st, alarm("late", 300)).expect("set");
        run(&mut st, alarm("early", 100)).expect("set");
        run(&mut st, alarm("early", 200)).expect("replace");
        assert_eq!(st.next_alarm_ms(), Some(200));
        assert_eq!(
            run(&mut st, Op::FireAlarms { now_ms: 150 }),
            Ok(Reply::Fired { count: 0 })
        );
        assert_eq!(
            run(&mut st, Op::FireAlarms { now_ms: 250 }),
            Ok(Reply::Fired { count: 1 })
        );
        // Fired alarms are gone: firing again at a later time fires only the other.
        assert_eq!(
            run(&mut st, Op::FireAlarms { now_ms: 1000 }),
            Ok(Reply::Fired { count: 1 })
        );
        assert!(st.alarms().is_empty());
        let (events, last, oldest) = events_after(&st, 0);
        assert_eq!((last, oldest), (2, 1));
        let fired: Vec<(u64, String, u64)> = events
            .into_iter()
            .map(|e| match e.kind {
                EventKind::AlarmFired {
                    name, scheduled_ms, ..
                } => (e.seq, name, scheduled_ms),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            fired,
            vec![(1, "early".to_string(), 200), (2, "late".to_string(), 300)]
        );
    }

    #[test]
    fn alarm_limits_and_delete_all() {
        let limits = ObjectLimits {
            alarms_max: 2,
            ..ObjectLimits::default()
        };
        let mut st = ObjectState::default();
        for name in ["a", "b"] {
            let (_, m) = st.execute(&alarm(name, 5), &limits).expect("set");
            st.apply(&m);
        }
        assert_eq!(
            st.execute(&alarm("c", 5), &limits).map(|_| ()),
            Err(ObjectError::TooManyAlarms(2))
        );
        // Replacing an existing alarm is not a new one.
        assert!(st.execute(&alarm("a", 9), &limits).is_ok());
        let long = "x".repeat(257);
        assert!(matches!(
            st.execute(&alarm(&long, 5), &limits),
            Err(ObjectError::InvalidArgument(m)) if m.contains("alarm_name_bytes_max")
        ));
        let big = Op::Publish {
            payload: vec![0; 64 * 1024 + 1],
            at_ms: 1,
        };
        assert!(matches!(
            st.execute(&big, &limits),
            Err(ObjectError::InvalidArgument(m)) if m.contains("message_bytes_max")
        ));
        run(
            &mut st,
            Op::DeleteAlarms {
                names: vec!["a".into()],
            },
        )
        .expect("delete");
        assert_eq!(st.alarms().len(), 1);
        run(&mut st, Op::DeleteAll).expect("delete all");
        assert!(st.alarms().is_empty());
    }

    #[test]
    fn the_event_log_keeps_its_last_events_within_bounds() {
        let limits = ObjectLimits::default();
        let mut owner = ObjectState::default();
        let mut replica = ObjectState::default();
        for i in 0..(EVENTS_KEPT as u64 + 10) {
            let op = Op::Publish {
                payload: i.to_string().into_bytes(),
                at_ms: i,
            };
            let (reply, mutations) = owner.execute(&op, &limits).expect("publish");
            assert!(matches!(reply, Reply::Published { seq, .. } if seq == i + 1));
            owner.apply(&mutations);
            replica.apply(&mutations);
        }
        assert_eq!(owner, replica);
        let (events, last, oldest) = events_after(&owner, 0);
        assert_eq!(events.len(), EVENTS_KEPT);
        assert_eq!((last, oldest), (EVENTS_KEPT as u64 + 10, 11));
        // Big messages: the byte bound applies, the newest always stays.
        for _ in 0..20 {
            let op = Op::Publish {
                payload: vec![7; 64 * 1024],
                at_ms: 0,
            };
            let (_, mutations) = owner.execute(&op, &limits).expect("publish");
            owner.apply(&mutations);
        }
        let kept: usize = owner.events().iter().map(Event::size).sum();
        assert!(kept <= EVENT_BYTES_KEPT, "{kept}");
        assert_eq!(owner.last_event_seq(), EVENTS_KEPT as u64 + 30);
        let (after_last, _, _) = events_after(&owner, owner.last_event_seq());
        assert!(after_last.is_empty());
    }
}
