//! How a copy's records are keyed in the node's `objects` tree.
//!
//! Every record key starts with a one-byte tag, then the object (namespace length,
//! namespace, id length, id), so that each object's records of one kind are one
//! contiguous prefix: a cold start, a state transfer and a drop are prefix scans.

use larder_directory::{Namespace, ObjectKey};

/// Stored values: `Stored` under the user's key.
pub(super) const DATA: u8 = b'd';
/// Remembered request ids, numbered in order.
pub(super) const REMEMBERED: u8 = b'q';
/// Alarms, by name.
pub(super) const ALARM: u8 = b'a';
/// The event log, by sequence number.
pub(super) const EVENT: u8 = b'e';
/// `ReplicaMeta`: fencing epoch, write epoch, version.
pub(super) const META: u8 = b'm';
/// The last epoch in which this node started serving the object as owner.
pub(super) const OWNER: u8 = b'o';

/// Record tags of an object's copy, besides its metadata and owner marker.
pub(super) const DATA_TAGS: [u8; 4] = [DATA, REMEMBERED, ALARM, EVENT];
/// Every record tag of a copy.
pub(super) const ALL_TAGS: [u8; 6] = [DATA, REMEMBERED, ALARM, EVENT, META, OWNER];

/// The start of the record keys of tag `tag` of every object of `namespace`.
pub(super) fn namespace_prefix(tag: u8, namespace: &Namespace) -> Vec<u8> {
    let namespace = namespace.as_str();
    let mut out = Vec::with_capacity(2 + namespace.len());
    out.push(tag);
    // Namespace incarnations are at most 64 + 21 bytes (checked upstream).
    out.push(namespace.len() as u8);
    out.extend_from_slice(namespace.as_bytes());
    out
}

pub(super) fn object_prefix(tag: u8, key: &ObjectKey) -> Vec<u8> {
    let mut out = namespace_prefix(tag, &key.namespace);
    // Object ids are at most 256 bytes (checked upstream).
    out.extend_from_slice(&(key.id.len() as u16).to_be_bytes());
    out.extend_from_slice(key.id.as_bytes());
    out
}

/// Parses the object key out of a record key made by [`object_prefix`], returning it
/// and the rest of the record key.
pub(super) fn parse_object_prefix(raw: &[u8]) -> Option<(ObjectKey, &[u8])> {
    let ns_len = usize::from(*raw.get(1)?);
    let namespace = std::str::from_utf8(raw.get(2..2 + ns_len)?).ok()?;
    let id_at = 2 + ns_len;
    let id_len = usize::from(u16::from_be_bytes([*raw.get(id_at)?, *raw.get(id_at + 1)?]));
    let id = std::str::from_utf8(raw.get(id_at + 2..id_at + 2 + id_len)?).ok()?;
    Some((
        ObjectKey {
            namespace: namespace.into(),
            id: id.to_string(),
        },
        &raw[id_at + 2 + id_len..],
    ))
}

pub(super) fn data_key(key: &ObjectKey, user_key: &[u8]) -> Vec<u8> {
    let mut out = object_prefix(DATA, key);
    out.extend_from_slice(user_key);
    out
}

pub(super) fn alarm_key(key: &ObjectKey, name: &str) -> Vec<u8> {
    let mut out = object_prefix(ALARM, key);
    out.extend_from_slice(name.as_bytes());
    out
}

pub(super) fn event_key(key: &ObjectKey, seq: u64) -> Vec<u8> {
    let mut out = object_prefix(EVENT, key);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

pub(super) fn remembered_key(key: &ObjectKey, number: u64) -> Vec<u8> {
    let mut out = object_prefix(REMEMBERED, key);
    out.extend_from_slice(&number.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_key_names_its_object_and_sorts_by_object_then_suffix() {
        let key = ObjectKey {
            namespace: "rooms".into(),
            id: "room-1".into(),
        };
        let raw = data_key(&key, b"user-key");
        let (parsed, rest) = parse_object_prefix(&raw).expect("parses");
        assert_eq!((parsed, rest), (key.clone(), &b"user-key"[..]));
        // One object's events sort by sequence number, after its other records' prefix.
        assert!(event_key(&key, 2) < event_key(&key, 10));
        assert!(event_key(&key, 1).starts_with(&object_prefix(EVENT, &key)));
        // A prefix never matches an object whose id merely starts the same.
        let longer = ObjectKey {
            namespace: "rooms".into(),
            id: "room-10".into(),
        };
        assert!(!data_key(&longer, b"").starts_with(&object_prefix(DATA, &key)));
        assert!(parse_object_prefix(&[DATA, 9, b'x']).is_none());
    }
}
