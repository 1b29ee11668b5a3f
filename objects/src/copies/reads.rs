//! Reads of a copy: its meta, and its whole state for a cold start or a state transfer.

use std::collections::{BTreeMap, HashMap, VecDeque};

use larder_directory::ObjectKey;
use larder_store::{StoreError, Tree, codec};

use super::records::{
    ALARM, DATA, DATA_TAGS, EVENT, META, REMEMBERED, object_prefix, parse_object_prefix,
};
use super::{AlarmIndex, ObjectStore, ReplicaMeta, corrupted};
use crate::op::{Alarm, Event, Reply};
use crate::{ObjectState, StateParts, Stored};

/// The alarm index of every copy in `tree`, read at start-up.
pub(super) fn index_alarms(tree: &Tree) -> Result<AlarmIndex, StoreError> {
    let mut earliest: HashMap<ObjectKey, u64> = HashMap::new();
    for row in tree.scan_prefix([ALARM]) {
        let (raw_key, raw) = row?;
        let (key, _) = parse_object_prefix(&raw_key)
            .ok_or_else(|| corrupted("unreadable alarm record key"))?;
        let alarm: Alarm = codec::decode(&raw).map_err(corrupted)?;
        let due = earliest.entry(key).or_insert(alarm.at_ms);
        *due = (*due).min(alarm.at_ms);
    }
    let index = AlarmIndex::default();
    for (key, due) in earliest {
        index.set(&key, Some(due));
    }
    Ok(index)
}

fn alarms(tree: &Tree, key: &ObjectKey) -> Result<BTreeMap<String, Alarm>, StoreError> {
    let prefix = object_prefix(ALARM, key);
    let mut alarms = BTreeMap::new();
    for row in tree.scan_prefix(&prefix) {
        let (raw_key, raw) = row?;
        let name = String::from_utf8(raw_key[prefix.len()..].to_vec()).map_err(corrupted)?;
        alarms.insert(name, codec::decode(&raw).map_err(corrupted)?);
    }
    Ok(alarms)
}

/// When the object's earliest alarm is due, as stored.
pub(super) fn next_alarm(tree: &Tree, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
    Ok(alarms(tree, key)?.values().map(|a| a.at_ms).min())
}

impl ObjectStore {
    pub fn meta(&self, key: &ObjectKey) -> Result<ReplicaMeta, StoreError> {
        match self.tree.get(object_prefix(META, key))? {
            Some(raw) => codec::decode(&raw).map_err(corrupted),
            None => Ok(ReplicaMeta::default()),
        }
    }

    /// The object's stored state (a cold start reads it).
    pub fn load(&self, key: &ObjectKey) -> Result<(ReplicaMeta, ObjectState), StoreError> {
        let meta = self.meta(key)?;
        let prefix = object_prefix(DATA, key);
        let mut entries = BTreeMap::new();
        for row in self.tree.scan_prefix(&prefix) {
            let (raw_key, raw) = row?;
            let stored: Stored = codec::decode(&raw).map_err(corrupted)?;
            entries.insert(raw_key[prefix.len()..].to_vec(), stored);
        }
        let mut events = VecDeque::new();
        for row in self.tree.scan_prefix(object_prefix(EVENT, key)) {
            let (_, raw) = row?;
            events.push_back(codec::decode::<Event>(&raw).map_err(corrupted)?);
        }
        let parts = StateParts {
            entries,
            version: meta.version,
            recent: self.remembered(key)?,
            alarms: alarms(&self.tree, key)?,
            events,
        };
        Ok((meta, ObjectState::from_parts(parts)))
    }

    /// Remembered request ids, oldest first: one record each, numbered in order.
    fn remembered(&self, key: &ObjectKey) -> Result<VecDeque<(String, Reply)>, StoreError> {
        let mut recent = VecDeque::new();
        for row in self.tree.scan_prefix(object_prefix(REMEMBERED, key)) {
            let (_, raw) = row?;
            recent.push_back(codec::decode(&raw).map_err(corrupted)?);
        }
        Ok(recent)
    }

    /// Number of the newest remembered request id (0: none).
    pub(super) fn last_remembered(&self, key: &ObjectKey) -> Result<u64, StoreError> {
        let prefix = object_prefix(REMEMBERED, key);
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

    /// Whether this node holds any data or metadata for the object.
    pub fn holds(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        Ok(self.tree.get(object_prefix(META, key))?.is_some()
            || DATA_TAGS.iter().any(|tag| {
                self.tree
                    .scan_prefix(object_prefix(*tag, key))
                    .next()
                    .is_some()
            }))
    }
}
