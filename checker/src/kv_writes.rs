//! KV writes against the final contents: no acknowledged write lost, no deleted key back.
//!
//! Each acknowledged `put` or `delete` carries the version the KV assigned it (for a
//! delete, its tombstone's). On every node allowed to hold the namespace, the key's final
//! entry is compared with it:
//!
//! - put acknowledged at version `v`: the entry must have version ≥ `v` (and at `v`, be
//!   that put: live, with the put's value when it was text). An older entry, or no entry
//!   while no delete of the key could have removed it, is a lost write.
//! - delete acknowledged at version `v`: a live entry older than `v` is a deleted key that
//!   came back; an older tombstone is a lost delete. No entry is fine (the tombstone may
//!   have been collected).
//!
//! And every ok `get` that reported a version an acknowledged put also reported must have
//! returned that put's value (a versioned read names the write it saw).
//!
//! Versions are last-writer-wins stamps, so "newer replaced it" is decidable. Not proved:
//! anything about acknowledged writes recorded without a version (counted), or about
//! writes whose outcome is unknown (they may or may not be there).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    History, KvEntry, NodeDump, NodeId, ObjectId, OpName, Operation, Outcome, ReplicaSets, Value,
    Verdict, Version,
};

/// Violations reported at most.
pub const KV_REPORTED_MAX: usize = 100;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KvViolation {
    /// The node's entry is older than an acknowledged write (or missing).
    WriteLost {
        node: NodeId,
        write: Box<Operation>,
        found: Option<KvEntry>,
    },
    /// A live entry older than an acknowledged delete.
    DeletedKeyCameBack {
        node: NodeId,
        delete: Box<Operation>,
        found: KvEntry,
    },
    /// A read reported an acknowledged put's version with other content.
    ReadMismatch {
        read: Box<Operation>,
        write: Box<Operation>,
    },
    /// The entry carries the acknowledged write's version but not its content.
    VersionMismatch {
        node: NodeId,
        write: Box<Operation>,
        found: KvEntry,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct KvWritesReport {
    pub verdict: Verdict,
    pub acknowledged_writes: usize,
    /// Acknowledged writes without a version: not checked.
    pub without_version: usize,
    pub violations_total: usize,
    pub violations: Vec<KvViolation>,
}

/// Checks every acknowledged KV put and delete against each allowed node's final dump.
pub fn check_kv_writes(
    history: &History,
    final_nodes: &[NodeDump],
    replicas: &ReplicaSets,
) -> KvWritesReport {
    let writes: Vec<&Operation> = history
        .operations
        .iter()
        .filter(|op| matches!(op.op, OpName::Put | OpName::Delete))
        .collect();
    let mut deletes: BTreeMap<(&ObjectId, &str), Vec<&Operation>> = BTreeMap::new();
    for op in writes.iter().filter(|op| op.op == OpName::Delete) {
        deletes.entry((&op.object, &op.key)).or_default().push(op);
    }
    let mut report = KvWritesReport {
        verdict: Verdict::Pass,
        acknowledged_writes: 0,
        without_version: 0,
        violations_total: 0,
        violations: Vec::new(),
    };
    for write in writes.iter().filter(|op| op.is_ok()) {
        report.acknowledged_writes += 1;
        if write.version.is_none() {
            report.without_version += 1;
            continue;
        }
        let later_deletes = deletes
            .get(&(&write.object, write.key.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for node in final_nodes
            .iter()
            .filter(|n| replicas.allows(&write.object, n.node))
        {
            let found = node
                .namespaces
                .get(&write.object)
                .and_then(|entries| entries.get(&write.key));
            if let Some(v) = judge(write, found, later_deletes, node.node) {
                report.violations_total += 1;
                if report.violations.len() < KV_REPORTED_MAX {
                    report.violations.push(v);
                }
            }
        }
    }
    for violation in read_mismatches(history) {
        report.violations_total += 1;
        if report.violations.len() < KV_REPORTED_MAX {
            report.violations.push(violation);
        }
    }
    let undecided = usize::from(
        report.acknowledged_writes > 0 && report.without_version == report.acknowledged_writes,
    );
    report.verdict = Verdict::from_counts(report.violations_total, undecided);
    report
}

fn judge(
    write: &Operation,
    found: Option<&KvEntry>,
    deletes: &[&Operation],
    node: NodeId,
) -> Option<KvViolation> {
    let version = write.version.as_ref()?;
    let boxed = || Box::new(write.clone());
    let Some(entry) = found else {
        // Only a delete that may be newer could have removed the key (and its tombstone
        // been collected since).
        let removable = deletes.iter().any(|d| {
            d.outcome == Outcome::Unknown
                || (d.is_ok() && d.version.as_ref().is_none_or(|dv| dv > version))
        });
        return (write.op == OpName::Put && !removable).then(|| KvViolation::WriteLost {
            node,
            write: boxed(),
            found: None,
        });
    };
    if entry.version > *version {
        return None;
    }
    if entry.version < *version {
        if write.op == OpName::Delete && !entry.tombstone {
            return Some(KvViolation::DeletedKeyCameBack {
                node,
                delete: boxed(),
                found: entry.clone(),
            });
        }
        return Some(KvViolation::WriteLost {
            node,
            write: boxed(),
            found: Some(entry.clone()),
        });
    }
    let same = match (write.op, &write.input) {
        (OpName::Delete, _) => entry.tombstone,
        (_, Some(Value::Text(text))) => !entry.tombstone && entry.value.as_ref() == Some(text),
        _ => !entry.tombstone,
    };
    (!same).then(|| KvViolation::VersionMismatch {
        node,
        write: boxed(),
        found: entry.clone(),
    })
}

/// Ok gets whose version is an acknowledged put's but whose value is not.
fn read_mismatches(history: &History) -> Vec<KvViolation> {
    let mut puts: BTreeMap<(&ObjectId, &str, &Version), &Operation> = BTreeMap::new();
    for op in &history.operations {
        if op.op == OpName::Put
            && op.is_ok()
            && let Some(version) = &op.version
        {
            puts.insert((&op.object, &op.key, version), op);
        }
    }
    let mut out = Vec::new();
    for read in &history.operations {
        if read.op != OpName::Get || !read.is_ok() {
            continue;
        }
        let Some(version) = &read.version else {
            continue;
        };
        if let Some(put) = puts.get(&(&read.object, read.key.as_str(), version))
            && put.input != read.output
        {
            out.push(KvViolation::ReadMismatch {
                read: Box::new(read.clone()),
                write: Box::new((*put).clone()),
            });
        }
    }
    out
}
