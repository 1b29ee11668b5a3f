//! Operations: each invocation paired with its completion, and retries of one request id
//! merged into one logical operation.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{
    CheckError, Epoch, Event, EventKind, NodeId, ObjectId, OpName, ProcessId, RequestId, Value,
    Version,
};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Took effect once, between invocation and completion.
    Ok,
    /// Certainly took no effect.
    Fail,
    /// Completed `info`, or never completed: took effect at some point after its
    /// invocation, or never.
    Unknown,
}

/// One operation: an invocation and its completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub process: ProcessId,
    pub op: OpName,
    pub object: ObjectId,
    pub key: String,
    /// The invocation's value (the argument).
    pub input: Option<Value>,
    pub outcome: Outcome,
    /// The ok completion's value (the result).
    pub output: Option<Value>,
    pub version: Option<Version>,
    pub epoch: Option<Epoch>,
    /// The node the client sent the (first) invocation to.
    pub invoke_node: Option<NodeId>,
    /// The node that acknowledged (from the ok completion; for objects, the owner).
    pub node: Option<NodeId>,
    pub invoke_ns: u64,
    /// `None` when the outcome is unknown: for linearizability, completion at +infinity.
    pub complete_ns: Option<u64>,
    pub request_id: Option<RequestId>,
    /// Index in the event list of the (first) invocation.
    pub invoke_event: usize,
    /// Invocations merged into this operation (retries carrying one request id).
    pub attempts: u32,
}

impl Operation {
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    pub fn input_int(&self) -> Option<i64> {
        self.input.as_ref().and_then(Value::as_int)
    }

    pub fn output_int(&self) -> Option<i64> {
        self.output.as_ref().and_then(Value::as_int)
    }

    /// Whether this operation completed before `other` was invoked (real-time order).
    /// Equal times count as concurrent.
    pub fn precedes(&self, other: &Operation) -> bool {
        self.complete_ns.is_some_and(|done| done < other.invoke_ns)
    }
}

/// Pairs each invocation with its process's next completion. A process has at most one
/// outstanding operation; an invocation left without completion is unknown. Returns the
/// operations ordered by invocation time.
pub fn pair_operations(events: &[Event]) -> Result<Vec<Operation>, CheckError> {
    let mut open: HashMap<ProcessId, Operation> = HashMap::new();
    let mut done = Vec::with_capacity(events.len() / 2 + 1);
    for (index, event) in events.iter().enumerate() {
        validate_value(index, event)?;
        if event.kind == EventKind::Invoke {
            if open.contains_key(&event.process) {
                return Err(CheckError::DoubleInvoke {
                    index,
                    process: event.process,
                });
            }
            open.insert(event.process, invocation(index, event));
            continue;
        }
        let Some(mut op) = open.remove(&event.process) else {
            return Err(CheckError::CompletionWithoutInvoke {
                index,
                process: event.process,
            });
        };
        complete(&mut op, index, event)?;
        done.push(op);
    }
    done.extend(open.into_values());
    done.sort_by_key(|op| (op.invoke_ns, op.invoke_event));
    Ok(done)
}

fn invocation(index: usize, event: &Event) -> Operation {
    Operation {
        process: event.process,
        op: event.op,
        object: event.object.clone(),
        key: event.key.clone(),
        input: event.value.clone(),
        outcome: Outcome::Unknown,
        output: None,
        version: None,
        epoch: None,
        invoke_node: event.node,
        node: None,
        invoke_ns: event.time_ns,
        complete_ns: None,
        request_id: event.request_id.clone(),
        invoke_event: index,
        attempts: 1,
    }
}

fn complete(op: &mut Operation, index: usize, event: &Event) -> Result<(), CheckError> {
    let mismatch = |field| CheckError::CompletionMismatch {
        index,
        process: event.process,
        field,
    };
    if event.op != op.op {
        return Err(mismatch("op"));
    }
    if event.object != op.object || event.key != op.key {
        return Err(mismatch("object or key"));
    }
    if event.request_id.is_some() && event.request_id != op.request_id {
        return Err(mismatch("request_id"));
    }
    if event.time_ns < op.invoke_ns {
        return Err(CheckError::CompletionBeforeInvoke {
            index,
            process: event.process,
        });
    }
    op.outcome = match event.kind {
        EventKind::Ok => Outcome::Ok,
        EventKind::Fail => Outcome::Fail,
        EventKind::Info | EventKind::Invoke => Outcome::Unknown,
    };
    if op.outcome == Outcome::Unknown {
        return Ok(());
    }
    op.complete_ns = Some(event.time_ns);
    if op.outcome == Outcome::Ok {
        op.output = event.value.clone();
        op.version = event.version.clone();
        op.epoch = event.epoch;
        op.node = event.node;
    }
    Ok(())
}

fn validate_value(index: usize, event: &Event) -> Result<(), CheckError> {
    let bad = |reason| {
        Err(CheckError::BadValue {
            index,
            op: event.op,
            reason,
        })
    };
    let int_or_none = matches!(event.value, None | Some(Value::Int(_)));
    match (event.op, event.kind) {
        (OpName::Write | OpName::Add, EventKind::Invoke)
            if event.value.as_ref().and_then(Value::as_int).is_none() =>
        {
            bad("the invocation needs an integer value")
        }
        (OpName::Cas, EventKind::Invoke)
            if !matches!(event.value, Some(Value::Pair(_, Some(_)))) =>
        {
            bad("the invocation needs [expected, new] with an integer new value")
        }
        (OpName::Read | OpName::Add, EventKind::Ok) if !int_or_none => {
            bad("the result must be an integer or null")
        }
        _ => Ok(()),
    }
}

/// Merges the attempts of one request id (same object, key, op and argument) into one
/// logical operation: invoked at the first invocation; ok at the first ok completion (with
/// its result) if any attempt succeeded, else unknown if any attempt's outcome is, else
/// failed. Sound when the system applies a request id at most once, which
/// [`crate::check_duplicates`] checks separately.
pub fn merge_retries(ops: &[Operation]) -> Result<Vec<Operation>, CheckError> {
    let mut merged: Vec<Operation> = Vec::with_capacity(ops.len());
    let mut by_request: HashMap<(ObjectId, RequestId), usize> = HashMap::new();
    for op in ops {
        let Some(request_id) = &op.request_id else {
            merged.push(op.clone());
            continue;
        };
        let slot = (op.object.clone(), request_id.clone());
        let Some(&at) = by_request.get(&slot) else {
            by_request.insert(slot, merged.len());
            merged.push(op.clone());
            continue;
        };
        let first = &mut merged[at];
        if first.op != op.op || first.key != op.key || first.input != op.input {
            return Err(CheckError::RequestIdReused {
                object: op.object.clone(),
                request_id: request_id.clone(),
            });
        }
        absorb(first, op);
    }
    merged.sort_by_key(|op| (op.invoke_ns, op.invoke_event));
    Ok(merged)
}

fn absorb(into: &mut Operation, attempt: &Operation) {
    into.attempts += 1;
    if attempt.invoke_ns < into.invoke_ns {
        into.invoke_ns = attempt.invoke_ns;
        into.invoke_event = attempt.invoke_event;
        into.invoke_node = attempt.invoke_node;
    }
    let take = match (into.outcome, attempt.outcome) {
        (Outcome::Ok, Outcome::Ok) => attempt.complete_ns < into.complete_ns,
        (_, Outcome::Ok) => true,
        (Outcome::Fail, Outcome::Unknown) => true,
        _ => false,
    };
    if take {
        into.outcome = attempt.outcome;
        into.complete_ns = attempt.complete_ns;
        into.output = attempt.output.clone();
        into.version = attempt.version.clone();
        into.epoch = attempt.epoch;
        into.node = attempt.node;
    }
}

/// Operations grouped by (object, key), each group in invocation order.
pub fn by_key(ops: &[Operation]) -> BTreeMap<(ObjectId, String), Vec<&Operation>> {
    let mut groups: BTreeMap<(ObjectId, String), Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        groups
            .entry((op.object.clone(), op.key.clone()))
            .or_default()
            .push(op);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(p: u64, kind: EventKind, op: OpName, t: u64) -> Event {
        Event::new(p, kind, op, "o", "x", t)
    }

    #[test]
    fn pairs_per_process_and_leaves_open_invocations_unknown() {
        let events = vec![
            ev(1, EventKind::Invoke, OpName::Write, 1).with_int(5),
            ev(2, EventKind::Invoke, OpName::Read, 2),
            ev(1, EventKind::Ok, OpName::Write, 3),
            ev(2, EventKind::Ok, OpName::Read, 4).with_int(5),
            ev(1, EventKind::Invoke, OpName::Write, 5).with_int(6),
        ];
        let ops = pair_operations(&events).expect("well formed");
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].complete_ns, Some(3));
        assert_eq!(ops[1].output_int(), Some(5));
        assert_eq!(ops[2].outcome, Outcome::Unknown);
        assert_eq!(ops[2].complete_ns, None);
    }

    #[test]
    fn malformed_histories_are_errors() {
        let double = vec![
            ev(1, EventKind::Invoke, OpName::Read, 1),
            ev(1, EventKind::Invoke, OpName::Read, 2),
        ];
        assert!(matches!(
            pair_operations(&double),
            Err(CheckError::DoubleInvoke { index: 1, .. })
        ));
        let orphan = vec![ev(1, EventKind::Ok, OpName::Read, 1)];
        assert!(matches!(
            pair_operations(&orphan),
            Err(CheckError::CompletionWithoutInvoke { .. })
        ));
        let mismatch = vec![
            ev(1, EventKind::Invoke, OpName::Read, 1),
            ev(1, EventKind::Ok, OpName::Write, 2),
        ];
        assert!(matches!(
            pair_operations(&mismatch),
            Err(CheckError::CompletionMismatch { .. })
        ));
        let no_value = vec![ev(1, EventKind::Invoke, OpName::Write, 1)];
        assert!(matches!(
            pair_operations(&no_value),
            Err(CheckError::BadValue { .. })
        ));
    }

    #[test]
    fn retries_of_one_request_id_become_one_operation() {
        let mut events = vec![
            ev(1, EventKind::Invoke, OpName::Add, 1).with_int(2),
            ev(1, EventKind::Info, OpName::Add, 5),
            ev(1, EventKind::Invoke, OpName::Add, 6).with_int(2),
            ev(1, EventKind::Ok, OpName::Add, 9).with_int(2),
        ];
        for e in &mut events {
            e.request_id = Some(RequestId::from("r1"));
        }
        let ops = merge_retries(&pair_operations(&events).expect("well formed")).expect("merge");
        assert_eq!(ops.len(), 1);
        assert_eq!((ops[0].invoke_ns, ops[0].complete_ns), (1, Some(9)));
        assert_eq!((ops[0].outcome, ops[0].attempts), (Outcome::Ok, 2));
    }
}
