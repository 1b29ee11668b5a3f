use larder_proto::v1 as pb;

use crate::{Entry, Version};

pub fn version(v: &Version) -> pb::Version {
    pb::Version {
        physical_ms: v.physical_ms,
        logical: v.logical,
        origin: v.origin.0,
    }
}

pub fn value(entry: Entry) -> pb::Value {
    pb::Value {
        version: Some(version(&entry.version)),
        value: entry.value,
        metadata: entry.metadata,
        expires_at_ms: entry.expires_at_ms.unwrap_or(0),
    }
}

pub fn list_entry(key: Vec<u8>, entry: Entry) -> pb::ListEntry {
    pb::ListEntry {
        key,
        version: Some(version(&entry.version)),
        metadata: entry.metadata,
        expires_at_ms: entry.expires_at_ms.unwrap_or(0),
    }
}
