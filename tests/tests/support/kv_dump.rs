//! KV replica contents as `larder-checker` dumps: through the public API while a node
//! runs (live entries only: the API does not show tombstones), and from a stopped node's
//! store (tombstones included).

use std::collections::BTreeMap;

use anyhow::Context;
use larder_checker::{KvEntry, NodeDump, NodeId, ObjectId, Version};
use larder_client::kv::Version as ApiVersion;

use super::TestNode;

/// Keys per `get_many` (the API's limit).
const GET_MANY_MAX: usize = 100;
/// Pages one listing may take; far above what a test writes.
const LIST_PAGES_MAX: usize = 1000;

fn version(v: &ApiVersion) -> Version {
    Version(vec![v.physical_ms, u64::from(v.logical), v.origin])
}

/// KV text values; anything else is shown lossily (tests write text).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The live entries of `namespaces` at a running node: a paged listing for the keys,
/// then their values and versions. Fails if the node does not answer.
pub async fn api_dump(node: &TestNode, namespaces: &[&str]) -> anyhow::Result<NodeDump> {
    let client = node.client();
    let mut dump = NodeDump {
        node: NodeId(node.id),
        namespaces: BTreeMap::new(),
    };
    for namespace in namespaces {
        let kv = client.kv(namespace);
        let mut keys = Vec::new();
        let mut cursor = Vec::new();
        for page in 0.. {
            anyhow::ensure!(page < LIST_PAGES_MAX, "listing of {namespace} never ended");
            let listed = kv.list_page(b"", &cursor, 0).await?;
            keys.extend(listed.keys.into_iter().map(|e| e.key));
            match listed.cursor {
                Some(next) => cursor = next,
                None => break,
            }
        }
        let entries = dump
            .namespaces
            .entry(ObjectId::from(*namespace))
            .or_default();
        for chunk in keys.chunks(GET_MANY_MAX) {
            let values = kv.get_many(chunk).await?;
            for (key, value) in chunk.iter().zip(values) {
                // Deleted between the listing and the read: absent, as a later listing
                // would show.
                let Some(value) = value else { continue };
                let version = value.version.as_ref().context("a value without version")?;
                entries.insert(
                    text(key),
                    KvEntry {
                        value: Some(text(&value.value)),
                        version: self::version(version),
                        tombstone: false,
                    },
                );
            }
        }
    }
    Ok(dump)
}

/// Everything a stopped node's store holds for `namespaces`, tombstones included.
pub fn disk_dump(node: &TestNode, namespaces: &[&str]) -> anyhow::Result<NodeDump> {
    anyhow::ensure!(!node.is_running(), "node {} must be stopped", node.id);
    let store = larder_store::Store::open(node.data_dir.join("store")).context("open store")?;
    let keyspace = larder_kv::keyspace::Keyspace::open(store).context("open keyspace")?;
    keyspace_dump(node.id, &keyspace, namespaces, None)
}

/// What node `id`'s `keyspace` holds for `namespaces`, tombstones included. With
/// `expired_at`, an entry expired at that time shows as the tombstone collection turns it
/// into.
pub fn keyspace_dump(
    id: u64,
    keyspace: &larder_kv::keyspace::Keyspace,
    namespaces: &[&str],
    expired_at: Option<u64>,
) -> anyhow::Result<NodeDump> {
    let mut dump = NodeDump {
        node: NodeId(id),
        namespaces: BTreeMap::new(),
    };
    let mut cursor = None;
    loop {
        let (page, next) = keyspace.scan_entries(cursor, 10_000)?;
        for (namespace, key, entry) in page {
            // Stored under its incarnation (`name@generation`); these tests create each
            // namespace once, so the name alone says which.
            if !namespaces.contains(&namespace.name()) {
                continue;
            }
            let expired =
                expired_at.is_some_and(|now| entry.expires_at_ms.is_some_and(|at| at <= now));
            let dead = entry.tombstone || expired;
            let v = entry.version;
            dump.namespaces
                .entry(ObjectId::from(namespace.name()))
                .or_default()
                .insert(
                    text(&key),
                    KvEntry {
                        value: (!dead).then(|| text(&entry.value)),
                        version: Version(vec![v.physical_ms, u64::from(v.logical), v.origin.0]),
                        tombstone: dead,
                    },
                );
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(dump),
        }
    }
}
