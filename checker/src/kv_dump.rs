//! KV replica contents after a run: per-node dumps, digests, and convergence (all allowed
//! replicas of a namespace hold identical contents within a stated bound after the last
//! heal).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{NodeId, ObjectId, Verdict, Version};

/// One stored KV entry as a node holds it (tombstones included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub version: Version,
    #[serde(default)]
    pub tombstone: bool,
}

/// Everything one node stores: namespace → key → entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDump {
    pub node: NodeId,
    pub namespaces: BTreeMap<ObjectId, BTreeMap<String, KvEntry>>,
}

/// Which nodes may hold each restricted namespace (residency). Namespaces not listed are
/// replicated on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSets {
    pub namespaces: BTreeMap<ObjectId, BTreeSet<NodeId>>,
}

impl ReplicaSets {
    /// Whether `node` may hold `namespace`.
    pub fn allows(&self, namespace: &ObjectId, node: NodeId) -> bool {
        self.namespaces
            .get(namespace)
            .is_none_or(|nodes| nodes.contains(&node))
    }
}

/// All dumps taken at one moment, `after_heal_ms` after the last heal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub after_heal_ms: u64,
    pub nodes: Vec<NodeDump>,
}

/// Differences reported at most.
pub const DIFFERENCES_REPORTED_MAX: usize = 100;

/// A key whose entry differs between replicas of its namespace.
#[derive(Debug, Clone, Serialize)]
pub struct KeyDifference {
    pub namespace: ObjectId,
    pub key: String,
    /// Each replica's entry (`None`: it has none).
    pub entries: BTreeMap<NodeId, Option<KvEntry>>,
}

/// Replicas compared at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct DumpComparison {
    pub converged: bool,
    /// Per namespace, each replica's digest of that namespace.
    pub digests: BTreeMap<ObjectId, BTreeMap<NodeId, String>>,
    pub differing_keys: usize,
    pub differences: Vec<KeyDifference>,
}

/// Compares every namespace across the dumped nodes allowed to hold it.
pub fn compare_dumps(nodes: &[NodeDump], replicas: &ReplicaSets) -> DumpComparison {
    let empty = BTreeMap::new();
    let namespaces: BTreeSet<&ObjectId> = nodes.iter().flat_map(|n| n.namespaces.keys()).collect();
    let mut out = DumpComparison {
        converged: true,
        digests: BTreeMap::new(),
        differing_keys: 0,
        differences: Vec::new(),
    };
    for namespace in namespaces {
        let holders: Vec<(NodeId, &BTreeMap<String, KvEntry>)> = nodes
            .iter()
            .filter(|n| replicas.allows(namespace, n.node))
            .map(|n| (n.node, n.namespaces.get(namespace).unwrap_or(&empty)))
            .collect();
        let digests = holders
            .iter()
            .map(|(node, entries)| (*node, digest(namespace, entries)))
            .collect();
        out.digests.insert(namespace.clone(), digests);
        let keys: BTreeSet<&String> = holders.iter().flat_map(|(_, e)| e.keys()).collect();
        for key in keys {
            let entries: BTreeMap<NodeId, Option<KvEntry>> = holders
                .iter()
                .map(|(node, e)| (*node, e.get(key).cloned()))
                .collect();
            let mut distinct = entries.values();
            let first = distinct.next();
            if distinct.all(|e| Some(e) == first) {
                continue;
            }
            out.converged = false;
            out.differing_keys += 1;
            if out.differences.len() < DIFFERENCES_REPORTED_MAX {
                out.differences.push(KeyDifference {
                    namespace: namespace.clone(),
                    key: key.clone(),
                    entries,
                });
            }
        }
    }
    out
}

/// A digest of one namespace's contents (64-bit FNV-1a over a canonical encoding), for
/// reports and cheap polling; [`compare_dumps`] compares the entries themselves.
pub fn digest(namespace: &ObjectId, entries: &BTreeMap<String, KvEntry>) -> String {
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    hash.bytes(namespace.0.as_bytes());
    for (key, entry) in entries {
        hash.bytes(key.as_bytes());
        hash.write(&[u8::from(entry.tombstone)]);
        hash.write(&(entry.version.0.len() as u64).to_le_bytes());
        for part in &entry.version.0 {
            hash.write(&part.to_le_bytes());
        }
        match &entry.value {
            Some(value) => {
                hash.write(&[1]);
                hash.bytes(value.as_bytes());
            }
            None => hash.write(&[0]),
        }
    }
    format!("{:016x}", hash.0)
}

struct Fnv(u64);

impl Fnv {
    fn write(&mut self, data: &[u8]) {
        for byte in data {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Length-prefixed, so that concatenations cannot collide.
    fn bytes(&mut self, data: &[u8]) {
        self.write(&(data.len() as u64).to_le_bytes());
        self.write(data);
    }
}

/// Whether the replicas converged within `bound_ms` of the last heal and stayed so.
#[derive(Debug, Clone, Serialize)]
pub struct ConvergenceReport {
    pub verdict: Verdict,
    pub bound_ms: u64,
    /// The first snapshot from which every later one is converged.
    pub converged_after_ms: Option<u64>,
    pub snapshots: usize,
    /// The last snapshot's comparison.
    pub last: Option<DumpComparison>,
}

/// Judges snapshots taken after the last heal (in time order): pass if from some snapshot
/// taken within `bound_ms` on, every snapshot is converged. Unknown with no snapshot.
pub fn check_convergence(
    snapshots: &[Snapshot],
    replicas: &ReplicaSets,
    bound_ms: u64,
) -> ConvergenceReport {
    let comparisons: Vec<DumpComparison> = snapshots
        .iter()
        .map(|s| compare_dumps(&s.nodes, replicas))
        .collect();
    let stable_from = comparisons
        .iter()
        .rposition(|c| !c.converged)
        .map_or(0, |last_bad| last_bad + 1);
    let converged_after_ms = snapshots.get(stable_from).map(|s| s.after_heal_ms);
    let verdict = match converged_after_ms {
        _ if snapshots.is_empty() => Verdict::Unknown,
        Some(at) if at <= bound_ms => Verdict::Pass,
        _ => Verdict::Fail,
    };
    ConvergenceReport {
        verdict,
        bound_ms,
        converged_after_ms,
        snapshots: snapshots.len(),
        last: comparisons.into_iter().next_back(),
    }
}
