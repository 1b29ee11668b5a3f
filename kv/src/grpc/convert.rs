use larder_proto::v1 as pb;

use crate::{Entry, Namespace, PutItem, Version, validate};

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

/// The namespace and the write of a `Put`.
pub fn put_request(req: pb::PutRequest) -> (Namespace, PutItem) {
    let item = PutItem {
        key: req.key,
        value: req.value,
        metadata: req.metadata,
        expires_at_ms: req.expires_at_ms,
        ttl_ms: req.ttl_ms,
    };
    (validate::namespace(req.namespace), item)
}

/// The namespace and the writes of a `PutMany`.
pub fn put_many_request(req: pb::PutManyRequest) -> (Namespace, Vec<PutItem>) {
    let items = req
        .items
        .into_iter()
        .map(|item| PutItem {
            key: item.key,
            value: item.value,
            metadata: item.metadata,
            expires_at_ms: item.expires_at_ms,
            ttl_ms: item.ttl_ms,
        })
        .collect();
    (validate::namespace(req.namespace), items)
}
