//! No acknowledged object write lost, judged from final reads.
//!
//! A *final read* of a key is an ok read invoked after every acknowledged write of that key
//! completed (the harness does one per key after the last heal). What is checked, per key:
//!
//! - register: the final value must have been written by some write or `cas` (acknowledged
//!   or unknown) — else it came from nowhere; it may be absent only if no write was
//!   acknowledged; and for every acknowledged write `A` of another value, some write of the
//!   final value must not have completed before `A` was invoked. If all of them did, `A`
//!   was linearized after them and before the final read, so the final read should not see
//!   their value: `A` was lost. Written values need not be unique for this to be sound;
//!   with unique values it catches every lost write that some final read can expose.
//! - counter: with `acked` the sum of acknowledged adds, the final value must be at least
//!   `acked` plus the negative unknown adds. (Above `acked` plus the positive unknown adds
//!   is an add applied twice: [`crate::check_duplicates`].)
//!
//! Not proved here: that no write was lost and later overwritten (a later write hides the
//! loss; the linearizability checker sees it if a read observed the gap), or anything about
//! keys without a final read (reported as undecided).

use serde::Serialize;

use crate::linearizability::is_counter;
use crate::{History, ObjectId, OpName, Operation, Outcome, Value, Verdict, by_key};

/// Lost writes reported per key at most.
pub const LOST_REPORTED_PER_KEY_MAX: usize = 20;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LostWrite {
    /// The acknowledged write `lost` is missing from the final read.
    RegisterWriteLost {
        object: ObjectId,
        key: String,
        final_read: Operation,
        lost: Box<Operation>,
    },
    /// The final read returned a value no write wrote.
    RegisterValueFromNowhere {
        object: ObjectId,
        key: String,
        final_read: Operation,
    },
    /// The final read found the register absent although writes were acknowledged.
    RegisterEmptied {
        object: ObjectId,
        key: String,
        final_read: Operation,
        acknowledged_writes: usize,
    },
    /// The final counter value is below what the acknowledged adds guarantee.
    CounterAddsLost {
        object: ObjectId,
        key: String,
        final_read: Operation,
        final_value: i64,
        lower_bound: i64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct LostWritesReport {
    pub verdict: Verdict,
    pub keys_checked: usize,
    /// Keys with acknowledged writes but no final read: nothing could be decided.
    pub keys_without_final_read: Vec<(ObjectId, String)>,
    pub violations: Vec<LostWrite>,
}

/// Checks every object key's final reads against its acknowledged writes.
pub fn check_lost_writes(history: &History) -> LostWritesReport {
    let objects: Vec<Operation> = history
        .operations
        .iter()
        .filter(|op| op.op.is_object_op())
        .cloned()
        .collect();
    let mut report = LostWritesReport {
        verdict: Verdict::Pass,
        keys_checked: 0,
        keys_without_final_read: Vec::new(),
        violations: Vec::new(),
    };
    for ((object, key), ops) in by_key(&objects) {
        let acked_writes = ops
            .iter()
            .filter(|op| op.is_ok() && op.op.is_mutation())
            .count();
        let finals = final_reads(&ops);
        if finals.is_empty() {
            if acked_writes > 0 {
                report.keys_without_final_read.push((object, key));
            }
            continue;
        }
        report.keys_checked += 1;
        let counter = is_counter(&ops).unwrap_or(true);
        for read in finals {
            if counter {
                check_counter(&object, &key, &ops, read, &mut report.violations);
            } else {
                check_register(&object, &key, &ops, read, &mut report.violations);
            }
        }
    }
    report.verdict = Verdict::from_counts(
        report.violations.len(),
        report.keys_without_final_read.len(),
    );
    report
}

/// The ok reads of one key invoked after every acknowledged write completed.
pub(crate) fn final_reads<'a>(ops: &[&'a Operation]) -> Vec<&'a Operation> {
    let settled = ops
        .iter()
        .filter(|op| op.is_ok() && op.op.is_mutation())
        .filter_map(|op| op.complete_ns)
        .max();
    ops.iter()
        .filter(|op| op.is_ok() && op.op == OpName::Read)
        .filter(|op| settled.is_none_or(|done| op.invoke_ns > done))
        .copied()
        .collect()
}

/// The range a counter's value must lie in once every acknowledged add completed: the
/// acknowledged adds plus any subset of the unknown ones.
pub(crate) fn counter_bounds(ops: &[&Operation]) -> (i64, i64) {
    let mut lower = 0i64;
    let mut upper = 0i64;
    for op in ops.iter().filter(|op| op.op == OpName::Add) {
        let delta = op.input_int().unwrap_or(0);
        match op.outcome {
            Outcome::Ok => {
                lower = lower.saturating_add(delta);
                upper = upper.saturating_add(delta);
            }
            Outcome::Unknown => {
                lower = lower.saturating_add(delta.min(0));
                upper = upper.saturating_add(delta.max(0));
            }
            Outcome::Fail => {}
        }
    }
    (lower, upper)
}

fn check_counter(
    object: &ObjectId,
    key: &str,
    ops: &[&Operation],
    read: &Operation,
    out: &mut Vec<LostWrite>,
) {
    let (lower, _) = counter_bounds(ops);
    let value = read.output_int().unwrap_or(0);
    if value < lower {
        out.push(LostWrite::CounterAddsLost {
            object: object.clone(),
            key: key.to_owned(),
            final_read: read.clone(),
            final_value: value,
            lower_bound: lower,
        });
    }
}

/// The value a register write or cas writes, if it is one.
fn written(op: &Operation) -> Option<i64> {
    match (op.op, &op.input) {
        (OpName::Write, Some(Value::Int(v))) => Some(*v),
        (OpName::Cas, Some(Value::Pair(_, Some(new)))) => Some(*new),
        _ => None,
    }
}

fn check_register(
    object: &ObjectId,
    key: &str,
    ops: &[&Operation],
    read: &Operation,
    out: &mut Vec<LostWrite>,
) {
    let acked: Vec<&Operation> = ops
        .iter()
        .filter(|op| op.is_ok() && written(op).is_some())
        .copied()
        .collect();
    let Some(value) = read.output_int() else {
        if !acked.is_empty() {
            out.push(LostWrite::RegisterEmptied {
                object: object.clone(),
                key: key.to_owned(),
                final_read: read.clone(),
                acknowledged_writes: acked.len(),
            });
        }
        return;
    };
    let writers: Vec<&Operation> = ops
        .iter()
        .filter(|op| op.outcome != Outcome::Fail && written(op) == Some(value))
        .copied()
        .collect();
    if writers.is_empty() {
        out.push(LostWrite::RegisterValueFromNowhere {
            object: object.clone(),
            key: key.to_owned(),
            final_read: read.clone(),
        });
        return;
    }
    let lost = acked
        .iter()
        .filter(|a| written(a) != Some(value))
        .filter(|a| writers.iter().all(|w| w.precedes(a)))
        .take(LOST_REPORTED_PER_KEY_MAX);
    for a in lost {
        out.push(LostWrite::RegisterWriteLost {
            object: object.clone(),
            key: key.to_owned(),
            final_read: read.clone(),
            lost: Box::new((*a).clone()),
        });
    }
}
