//! The batches a copy writes: one per replicated write, one per state transfer.

use larder_directory::ObjectKey;
use larder_store::{Batch, StoreError, codec};

use super::records::{
    ALARM, DATA, DATA_TAGS, EVENT, META, alarm_key, data_key, event_key, object_prefix,
    remembered_key,
};
use super::{ObjectStore, ReplicaMeta, corrupted};
use crate::op::{Alarm, Event, Reply};
use crate::state::REQUEST_IDS_KEPT;
use crate::{Mutation, ObjectState, Stored};

fn put<T: serde::Serialize>(batch: &mut Batch, key: Vec<u8>, value: &T) -> Result<(), StoreError> {
    batch.insert(key, codec::encode(value).map_err(corrupted)?);
    Ok(())
}

/// Adds a remembered request id as record `number`, forgetting the one that falls out of
/// the last [`REQUEST_IDS_KEPT`].
fn put_remembered(
    batch: &mut Batch,
    key: &ObjectKey,
    number: u64,
    entry: &(String, Reply),
) -> Result<(), StoreError> {
    put(batch, remembered_key(key, number), entry)?;
    if let Some(old) = number.checked_sub(REQUEST_IDS_KEPT as u64)
        && old > 0
    {
        batch.remove(remembered_key(key, old));
    }
    Ok(())
}

fn put_alarm(
    batch: &mut Batch,
    key: &ObjectKey,
    name: &str,
    alarm: &Alarm,
) -> Result<(), StoreError> {
    put(batch, alarm_key(key, name), alarm)
}

fn put_event(batch: &mut Batch, key: &ObjectKey, event: &Event) -> Result<(), StoreError> {
    put(batch, event_key(key, event.seq), event)
}

impl ObjectStore {
    /// Removes every record under `tag` for the object.
    pub(super) fn clear(
        &self,
        batch: &mut Batch,
        tag: u8,
        key: &ObjectKey,
    ) -> Result<(), StoreError> {
        for row in self.tree.scan_prefix(object_prefix(tag, key)) {
            let (raw_key, _) = row?;
            batch.remove(raw_key);
        }
        Ok(())
    }

    /// One write as one atomic batch, leaving the copy at `meta`; and whether it changed
    /// the object's alarms.
    pub(super) fn write_batch(
        &self,
        key: &ObjectKey,
        meta: &ReplicaMeta,
        mutations: &[Mutation],
    ) -> Result<(Batch, bool), StoreError> {
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
                        version: meta.version,
                    };
                    put(&mut batch, data_key(key, user_key), &stored)?;
                }
                Mutation::Delete { key: user_key } => batch.remove(data_key(key, user_key)),
                Mutation::DeleteAll => {
                    self.clear(&mut batch, DATA, key)?;
                    self.clear(&mut batch, ALARM, key)?;
                    alarms_changed = true;
                }
                Mutation::SetAlarm { name, alarm } => {
                    put_alarm(&mut batch, key, name, alarm)?;
                    alarms_changed = true;
                }
                Mutation::DeleteAlarm { name } => {
                    batch.remove(alarm_key(key, name));
                    alarms_changed = true;
                }
                Mutation::AppendEvent(event) => {
                    put_event(&mut batch, key, event)?;
                    appended.push(event.seq);
                }
                Mutation::ForgetEvents { through } => {
                    // Stored events, and events appended earlier in this same batch
                    // (a range read does not see the batch).
                    let range = object_prefix(EVENT, key)..=event_key(key, *through);
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
                    put_remembered(&mut batch, key, number, &entry)?;
                }
            }
        }
        put(&mut batch, object_prefix(META, key), meta)?;
        Ok((batch, alarms_changed))
    }

    /// The batch that replaces the object's copy with `state`, leaving it at `meta`.
    pub(super) fn install_batch(
        &self,
        key: &ObjectKey,
        meta: &ReplicaMeta,
        state: &ObjectState,
    ) -> Result<Batch, StoreError> {
        let mut batch = Batch::default();
        for tag in DATA_TAGS {
            self.clear(&mut batch, tag, key)?;
        }
        for (user_key, stored) in state.entries() {
            put(&mut batch, data_key(key, user_key), stored)?;
        }
        for (name, alarm) in state.alarms() {
            put_alarm(&mut batch, key, name, alarm)?;
        }
        for event in state.events() {
            put_event(&mut batch, key, event)?;
        }
        put(&mut batch, object_prefix(META, key), meta)?;
        for (entry, number) in state.recent().iter().zip(1..) {
            put_remembered(&mut batch, key, number, entry)?;
        }
        Ok(batch)
    }
}
