//! Executing operations on an object's state: each checks its limits, answers, and
//! returns the mutations a write implies, without applying them.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{ALARMS_FIRED_PER_WRITE, Mutation, ObjectState, Stored};
use crate::op::{
    Alarm, Event, EventKind, ListQuery, ObjectStats, Op, Precondition, ReadValue, Reply, TxnWrite,
};
use crate::{ObjectError, ObjectLimits};

/// What executing an operation gives: its answer and the mutations to replicate.
type Executed = Result<(Reply, Vec<Mutation>), ObjectError>;

fn read(entries: &BTreeMap<Vec<u8>, Stored>, key: &[u8]) -> ReadValue {
    let stored = entries.get(key);
    ReadValue {
        key: key.to_vec(),
        value: stored.map(|s| s.value.clone()),
        version: stored.map_or(0, |s| s.version),
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

fn added(key: &[u8], current: i64, delta: i64) -> Result<i64, ObjectError> {
    current
        .checked_add(delta)
        .ok_or_else(|| ObjectError::Overflow {
            key: String::from_utf8_lossy(key).to_string(),
            current,
            delta,
        })
}

/// A reply with no mutations (a read).
fn read_only(reply: Reply) -> Executed {
    Ok((reply, Vec::new()))
}

impl ObjectState {
    /// Checks `op` against the limits, answers it, and returns the mutations a write
    /// implies (empty for reads and for writes that change nothing).
    pub fn execute(&self, op: &Op, limits: &ObjectLimits) -> Executed {
        let written = Reply::Written {
            version: self.version + 1,
        };
        match op {
            Op::Get { keys } => self.get(keys, limits),
            Op::Put { entries } => Ok((written, put(entries, limits)?)),
            Op::Delete { keys } => Ok((written, delete(keys, limits)?)),
            Op::List(query) => read_only(self.list(query, limits)?),
            Op::DeleteAll => Ok((written, vec![Mutation::DeleteAll])),
            Op::Add { key, delta } => self.add(key, *delta, limits),
            Op::Transaction {
                preconditions,
                writes,
            } => self.transaction(preconditions, writes, limits),
            Op::Stats => read_only(Reply::Stats(self.stats())),
            Op::SetAlarm {
                name,
                at_ms,
                payload,
            } => Ok((written, self.set_alarm(name, *at_ms, payload, limits)?)),
            Op::DeleteAlarms { names } => Ok((written, delete_alarms(names, limits)?)),
            Op::ListAlarms => read_only(Reply::Alarms(
                self.alarms
                    .iter()
                    .map(|(n, a)| (n.clone(), a.clone()))
                    .collect(),
            )),
            Op::Publish { payload, at_ms } => self.publish(payload, *at_ms, limits),
            Op::FireAlarms { now_ms } => Ok(self.fire_alarms(*now_ms)),
            Op::Events { after } => read_only(self.events_after(*after)),
        }
    }

    fn get(&self, keys: &[Vec<u8>], limits: &ObjectLimits) -> Executed {
        limits.batch("keys", keys.len())?;
        keys.iter().try_for_each(|k| limits.key(k))?;
        read_only(Reply::Values(
            keys.iter().map(|k| read(&self.entries, k)).collect(),
        ))
    }

    fn add(&self, key: &[u8], delta: i64, limits: &ObjectLimits) -> Executed {
        limits.key(key)?;
        let current = integer(key, self.entries.get(key).map(|s| s.value.as_slice()))?;
        let value = added(key, current, delta)?;
        let mutation = Mutation::Put {
            key: key.to_vec(),
            value: value.to_string().into_bytes(),
        };
        let reply = Reply::Added {
            value,
            version: self.version + 1,
        };
        Ok((reply, vec![mutation]))
    }

    fn stats(&self) -> ObjectStats {
        ObjectStats {
            keys: self.entries.len() as u64,
            bytes: self.bytes() as u64,
            version: self.version,
            alarms: self
                .alarms
                .iter()
                .map(|(name, a)| (name.clone(), a.at_ms))
                .collect(),
            last_event_seq: self.last_event_seq(),
        }
    }

    fn set_alarm(
        &self,
        name: &str,
        at_ms: u64,
        payload: &[u8],
        limits: &ObjectLimits,
    ) -> Result<Vec<Mutation>, ObjectError> {
        limits.alarm_name(name)?;
        limits.message("alarm payload", payload)?;
        if !self.alarms.contains_key(name) && self.alarms.len() >= limits.alarms_max {
            return Err(ObjectError::TooManyAlarms(limits.alarms_max));
        }
        let alarm = Alarm {
            at_ms,
            payload: payload.to_vec(),
        };
        Ok(vec![Mutation::SetAlarm {
            name: name.to_string(),
            alarm,
        }])
    }

    fn publish(&self, payload: &[u8], at_ms: u64, limits: &ObjectLimits) -> Executed {
        limits.message("message", payload)?;
        let seq = self.last_event_seq() + 1;
        let event = Event {
            seq,
            at_ms,
            kind: EventKind::Published {
                payload: payload.to_vec(),
            },
        };
        let mut mutations = Vec::new();
        self.append_events(vec![event], &mut mutations);
        let reply = Reply::Published {
            seq,
            version: self.version + 1,
        };
        Ok((reply, mutations))
    }

    /// Fires the alarms due at `now_ms` (at most [`ALARMS_FIRED_PER_WRITE`], earliest
    /// first): each is deleted and an `AlarmFired` event appended.
    fn fire_alarms(&self, now_ms: u64) -> (Reply, Vec<Mutation>) {
        let mut due: Vec<(&String, &Alarm)> = self
            .alarms
            .iter()
            .filter(|(_, a)| a.at_ms <= now_ms)
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
                at_ms: now_ms,
                kind: EventKind::AlarmFired {
                    name: (*name).clone(),
                    scheduled_ms: alarm.at_ms,
                    payload: alarm.payload.clone(),
                },
            })
            .collect();
        self.append_events(events, &mut mutations);
        (Reply::Fired { count: due.len() }, mutations)
    }

    fn events_after(&self, after: Option<u64>) -> Reply {
        let last_seq = self.last_event_seq();
        let oldest_seq = self.events.front().map_or(last_seq + 1, |e| e.seq);
        let events = match after {
            Some(after) => self
                .events
                .iter()
                .filter(|e| e.seq > after)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        Reply::Events {
            events,
            last_seq,
            oldest_seq,
        }
    }

    fn list(&self, query: &ListQuery, limits: &ObjectLimits) -> Result<Reply, ObjectError> {
        let limit = limits.page(query.limit)?;
        let lower = if query.start.as_slice() > query.prefix.as_slice() {
            &query.start
        } else {
            &query.prefix
        };
        if !query.end.is_empty() && query.end <= *lower {
            return Ok(Reply::List {
                entries: Vec::new(),
                more: false,
            });
        }
        let upper = if query.end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(query.end.clone())
        };
        let matching = self
            .entries
            .range((Bound::Included(lower.clone()), upper))
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
    ) -> Executed {
        limits.batch("transaction writes", writes.len())?;
        if preconditions.len() > limits.batch_keys_max {
            return Err(ObjectError::InvalidArgument(format!(
                "transaction preconditions: {} given; the limit is {} (objects.batch_keys_max)",
                preconditions.len(),
                limits.batch_keys_max
            )));
        }
        for (index, precondition) in preconditions.iter().enumerate() {
            self.check(index, precondition, limits)?;
        }
        // Later writes see earlier ones of the same transaction.
        let mut view: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut mutations = Vec::with_capacity(writes.len());
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            let (key, value) = self.staged(write, &view, limits)?;
            mutations.push(match &value {
                Some(value) => Mutation::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                None => Mutation::Delete { key: key.clone() },
            });
            results.push(value.clone());
            view.insert(key, value);
        }
        let reply = Reply::Transaction {
            version: self.version + 1,
            results,
        };
        Ok((reply, mutations))
    }

    /// Checks precondition `index` of a transaction.
    fn check(
        &self,
        index: usize,
        precondition: &Precondition,
        limits: &ObjectLimits,
    ) -> Result<(), ObjectError> {
        let (key, holds, reason) = match precondition {
            Precondition::VersionEquals { key, version } => {
                let actual = self.entries.get(key).map_or(0, |s| s.version);
                let reason = format!("version is {actual}, expected {version}");
                (key, actual == *version, reason)
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
        Ok(())
    }

    /// A transaction write's key and resulting value (`None`: deleted), seeing the
    /// transaction's earlier writes in `view`.
    fn staged(
        &self,
        write: &TxnWrite,
        view: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        limits: &ObjectLimits,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), ObjectError> {
        match write {
            TxnWrite::Put { key, value } => {
                limits.key(key)?;
                limits.value(value)?;
                Ok((key.clone(), Some(value.clone())))
            }
            TxnWrite::Delete { key } => {
                limits.key(key)?;
                Ok((key.clone(), None))
            }
            TxnWrite::Add { key, delta } => {
                limits.key(key)?;
                let current = match view.get(key) {
                    Some(staged) => integer(key, staged.as_deref())?,
                    None => integer(key, self.entries.get(key).map(|s| s.value.as_slice()))?,
                };
                let value = added(key, current, *delta)?;
                Ok((key.clone(), Some(value.to_string().into_bytes())))
            }
        }
    }
}

/// The mutations of a `Put`.
fn put(
    entries: &[(Vec<u8>, Vec<u8>)],
    limits: &ObjectLimits,
) -> Result<Vec<Mutation>, ObjectError> {
    limits.batch("entries", entries.len())?;
    for (key, value) in entries {
        limits.key(key)?;
        limits.value(value)?;
    }
    Ok(entries
        .iter()
        .map(|(key, value)| Mutation::Put {
            key: key.clone(),
            value: value.clone(),
        })
        .collect())
}

/// The mutations of a `Delete`.
fn delete(keys: &[Vec<u8>], limits: &ObjectLimits) -> Result<Vec<Mutation>, ObjectError> {
    limits.batch("keys", keys.len())?;
    keys.iter().try_for_each(|k| limits.key(k))?;
    Ok(keys
        .iter()
        .map(|key| Mutation::Delete { key: key.clone() })
        .collect())
}

/// The mutations of a `DeleteAlarms`.
fn delete_alarms(names: &[String], limits: &ObjectLimits) -> Result<Vec<Mutation>, ObjectError> {
    limits.batch("alarm names", names.len())?;
    names.iter().try_for_each(|n| limits.alarm_name(n))?;
    Ok(names
        .iter()
        .map(|name| Mutation::DeleteAlarm { name: name.clone() })
        .collect())
}
