//! Epoch fencing: no write acknowledged by an owner whose epoch was superseded.
//!
//! The evidence is each acknowledgement of an object write — every ok attempt, retries
//! included — with its (epoch, node, [invoke, complete]) from the history: `epoch` is the acknowledging owner's epoch and `node` that owner, as
//! the response reported them; times come from the harness's one clock. Checked per object:
//!
//! - one owner per epoch: two writes acknowledged with the same epoch by different nodes;
//! - no acknowledgement from a superseded epoch: a write acknowledged with epoch `e`
//!   although another write acknowledged with an epoch above `e` had *completed before it
//!   was invoked*. The newer owner was in office (fenced the old epoch on a majority)
//!   before the older owner's acknowledgement, which the fence must prevent.
//!
//! Not decidable from the history, so not checked: the order of writes that overlap in
//! time (either may have been applied first), writes whose outcome is unknown (no epoch is
//! reported), writes recorded without an epoch (counted), and a superseded owner serving
//! stale *reads* (that is the linearizability checker's business).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{Epoch, History, NodeId, ObjectId, Operation, Verdict};

/// Violations reported per object at most.
pub const FENCING_REPORTED_PER_OBJECT_MAX: usize = 20;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FencingViolation {
    /// Two nodes acknowledged writes in the same epoch.
    TwoOwnersInOneEpoch {
        object: ObjectId,
        epoch: Epoch,
        first: Operation,
        second: Operation,
    },
    /// `stale` was acknowledged with a lower epoch after `newer` had completed.
    SupersededEpochAcknowledged {
        object: ObjectId,
        newer: Operation,
        stale: Operation,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct FencingReport {
    pub verdict: Verdict,
    pub acknowledged_writes: usize,
    /// Acknowledged writes that carried no epoch and could not be checked.
    pub without_epoch: usize,
    pub violations: Vec<FencingViolation>,
}

/// Checks the epochs of every object's acknowledged writes. Unknown when writes were
/// acknowledged but none carried an epoch.
pub fn check_fencing(history: &History) -> FencingReport {
    let mut per_object: BTreeMap<&ObjectId, Vec<&Operation>> = BTreeMap::new();
    let mut acknowledged_writes = 0;
    let mut without_epoch = 0;
    for op in &history.attempts {
        if !(op.op.is_object_op() && op.op.is_mutation() && op.is_ok()) {
            continue;
        }
        acknowledged_writes += 1;
        if op.epoch.is_none() {
            without_epoch += 1;
            continue;
        }
        per_object.entry(&op.object).or_default().push(op);
    }
    let mut violations = Vec::new();
    for (object, writes) in per_object {
        let mut found = Vec::new();
        two_owners(object, &writes, &mut found);
        superseded(object, &writes, &mut found);
        found.truncate(FENCING_REPORTED_PER_OBJECT_MAX);
        violations.extend(found);
    }
    let undecided = usize::from(acknowledged_writes > 0 && without_epoch == acknowledged_writes);
    FencingReport {
        verdict: Verdict::from_counts(violations.len(), undecided),
        acknowledged_writes,
        without_epoch,
        violations,
    }
}

fn two_owners(object: &ObjectId, writes: &[&Operation], out: &mut Vec<FencingViolation>) {
    let mut owner: BTreeMap<Epoch, (NodeId, &Operation)> = BTreeMap::new();
    let mut reported: BTreeSet<Epoch> = BTreeSet::new();
    for op in writes {
        let (Some(epoch), Some(node)) = (op.epoch, op.node) else {
            continue;
        };
        match owner.get(&epoch) {
            None => {
                owner.insert(epoch, (node, op));
            }
            Some((first_node, first)) if *first_node != node && !reported.contains(&epoch) => {
                reported.insert(epoch);
                out.push(FencingViolation::TwoOwnersInOneEpoch {
                    object: object.clone(),
                    epoch,
                    first: (*first).clone(),
                    second: (*op).clone(),
                });
            }
            Some(_) => {}
        }
    }
}

/// Sweeps the writes in invocation order, keeping the highest-epoch write among those
/// completed before the current invocation.
fn superseded(object: &ObjectId, writes: &[&Operation], out: &mut Vec<FencingViolation>) {
    let mut by_invoke: Vec<&Operation> = writes.to_vec();
    by_invoke.sort_by_key(|op| op.invoke_ns);
    let mut by_complete: Vec<&Operation> = writes.to_vec();
    by_complete.sort_by_key(|op| op.complete_ns);
    let mut completed = 0;
    let mut newest: Option<&Operation> = None;
    for op in by_invoke {
        while completed < by_complete.len()
            && by_complete[completed]
                .complete_ns
                .is_some_and(|done| done < op.invoke_ns)
        {
            let done = by_complete[completed];
            if newest.is_none_or(|n| done.epoch > n.epoch) {
                newest = Some(done);
            }
            completed += 1;
        }
        if let Some(newer) = newest
            && newer.epoch > op.epoch
        {
            out.push(FencingViolation::SupersededEpochAcknowledged {
                object: object.clone(),
                newer: newer.clone(),
                stale: op.clone(),
            });
        }
    }
}
