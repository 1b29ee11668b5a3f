//! Residency: a restricted namespace's data is never stored or served outside its nodes.
//!
//! Checked: no dump of a node outside a namespace's [`ReplicaSets`] entry holds any entry
//! of it (tombstones included: a tombstone leaks the key), in any snapshot; and no `get`
//! answered by such a node returned a value (data sent outside). Not provable from these:
//! copies that were written outside and deleted before the dumps, or data in transit.

use serde::Serialize;

use crate::{History, NodeDump, NodeId, ObjectId, OpName, Operation, ReplicaSets, Verdict};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResidencyViolation {
    StoredOutside {
        node: NodeId,
        namespace: ObjectId,
        entries: usize,
        after_heal_ms: Option<u64>,
    },
    ServedOutside {
        node: NodeId,
        read: Box<Operation>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ResidencyReport {
    pub verdict: Verdict,
    pub restricted_namespaces: usize,
    pub violations: Vec<ResidencyViolation>,
}

/// Checks dumps (each with the time it was taken after the heal, if known) and the
/// history's reads against the replica sets.
pub fn check_residency(
    history: &History,
    dumps: &[(Option<u64>, &[NodeDump])],
    replicas: &ReplicaSets,
) -> ResidencyReport {
    let mut violations = Vec::new();
    for (after_heal_ms, nodes) in dumps {
        for node in nodes.iter() {
            for (namespace, entries) in &node.namespaces {
                if !entries.is_empty() && !replicas.allows(namespace, node.node) {
                    violations.push(ResidencyViolation::StoredOutside {
                        node: node.node,
                        namespace: namespace.clone(),
                        entries: entries.len(),
                        after_heal_ms: *after_heal_ms,
                    });
                }
            }
        }
    }
    for op in &history.operations {
        if op.op == OpName::Get
            && op.is_ok()
            && op.output.is_some()
            && let Some(node) = op.node
            && !replicas.allows(&op.object, node)
        {
            violations.push(ResidencyViolation::ServedOutside {
                node,
                read: Box::new(op.clone()),
            });
        }
    }
    ResidencyReport {
        verdict: Verdict::from_counts(violations.len(), 0),
        restricted_namespaces: replicas.namespaces.len(),
        violations,
    }
}
