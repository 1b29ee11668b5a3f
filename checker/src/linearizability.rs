//! Linearizability of every object key: the history is split by (object, key) (an
//! operation touches one key, and linearizability is local, so each key is checked on its
//! own) and each part is searched with [`check_wgl`] against the register or the counter
//! model (counter when the key sees any `add`, register when it sees a `write` or `cas`; a
//! key with only reads is a counter if one of them returned a number).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{
    CheckError, CounterModel, CounterOp, History, Model, ObjectId, OpName, Operation, Outcome,
    RegisterModel, RegisterOp, SearchLimits, SearchOutcome, SearchStats, TimedOp, UnknownReason,
    Value, Verdict, by_key, check_wgl,
};

/// Limits of one linearizability check (all keys together share `time_max`).
#[derive(Debug, Clone, Copy)]
pub struct LinearizabilityLimits {
    pub time_max: Duration,
    /// Model steps per key.
    pub steps_max: u64,
    /// Memory for remembered configurations, per key.
    pub cache_bytes_max: usize,
}

impl Default for LinearizabilityLimits {
    fn default() -> Self {
        let search = SearchLimits::default();
        LinearizabilityLimits {
            time_max: Duration::from_secs(60),
            steps_max: search.steps_max,
            cache_bytes_max: search.cache_bytes_max,
        }
    }
}

/// Operations of the explanation's linearizable prefix that are shown (its last ones).
pub const PREFIX_SHOWN_MAX: usize = 8;

/// A key whose history is not linearizable, with the operations around the point where
/// every search failed.
#[derive(Debug, Clone, Serialize)]
pub struct NotLinearizable {
    pub object: ObjectId,
    pub key: String,
    pub model: &'static str,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// The last operations of that prefix, in linearization order.
    pub prefix_tail: Vec<Operation>,
    /// The model state after the prefix.
    pub state: String,
    /// The operation that completed while it could not be linearized after the prefix.
    pub stuck: Operation,
    /// The other operations that could have come next, none of which led anywhere.
    pub candidates: Vec<Operation>,
}

/// A key the search could not decide.
#[derive(Debug, Clone, Serialize)]
pub struct UndecidedKey {
    pub object: ObjectId,
    pub key: String,
    #[serde(flatten)]
    pub reason: UnknownReason,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinearizabilityReport {
    pub verdict: Verdict,
    pub keys: usize,
    /// Operations searched (failed operations and unknown reads are left out).
    pub operations: usize,
    pub violations: Vec<NotLinearizable>,
    pub undecided: Vec<UndecidedKey>,
    pub stats: SearchStats,
}

/// Checks every (object, key) of the history's object operations.
pub fn check_linearizability(
    history: &History,
    limits: &LinearizabilityLimits,
) -> Result<LinearizabilityReport, CheckError> {
    let search = SearchLimits {
        deadline: Some(Instant::now() + limits.time_max),
        steps_max: limits.steps_max,
        cache_bytes_max: limits.cache_bytes_max,
    };
    let objects: Vec<Operation> = history
        .operations
        .iter()
        .filter(|op| op.op.is_object_op())
        .cloned()
        .collect();
    let mut report = LinearizabilityReport {
        verdict: Verdict::Pass,
        keys: 0,
        operations: 0,
        violations: Vec::new(),
        undecided: Vec::new(),
        stats: SearchStats::default(),
    };
    for ((object, key), ops) in by_key(&objects) {
        report.keys += 1;
        let is_counter = is_counter(&ops).ok_or(CheckError::MixedModels {
            object: object.clone(),
            key: key.clone(),
        })?;
        let checked = if is_counter {
            check_key(&CounterModel, "counter", &ops, counter_op, &search)
        } else {
            check_key(&RegisterModel, "register", &ops, register_op, &search)
        };
        report.operations += checked.operations;
        report.stats.steps += checked.stats.steps;
        report.stats.states += checked.stats.states;
        match checked.outcome {
            KeyOutcome::Linearizable => {}
            KeyOutcome::Not(mut found) => {
                (found.object, found.key) = (object, key);
                report.violations.push(*found);
            }
            KeyOutcome::Unknown(reason) => report.undecided.push(UndecidedKey {
                object,
                key,
                reason,
            }),
        }
    }
    report.verdict = Verdict::from_counts(report.violations.len(), report.undecided.len());
    Ok(report)
}

/// Whether a key's operations are a counter's (`None`: they mix counter and register
/// operations). A key with only reads is a counter if one of them returned a number (a
/// counter never added to reads 0), else a register.
pub(crate) fn is_counter(ops: &[&Operation]) -> Option<bool> {
    let adds = ops.iter().any(|op| op.op == OpName::Add);
    let writes = ops
        .iter()
        .any(|op| matches!(op.op, OpName::Write | OpName::Cas));
    match (adds, writes) {
        (true, true) => None,
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => Some(ops.iter().any(|op| op.is_ok() && op.output_int().is_some())),
    }
}

enum KeyOutcome {
    Linearizable,
    Not(Box<NotLinearizable>),
    Unknown(UnknownReason),
}

struct KeyCheck {
    outcome: KeyOutcome,
    operations: usize,
    stats: SearchStats,
}

fn check_key<M: Model>(
    model: &M,
    name: &'static str,
    ops: &[&Operation],
    convert: fn(&Operation) -> Option<M::Op>,
    limits: &SearchLimits,
) -> KeyCheck {
    let mut source = Vec::new();
    let mut timed = Vec::new();
    for op in ops {
        if let Some(model_op) = convert(op) {
            source.push(*op);
            timed.push(TimedOp {
                op: model_op,
                invoke_ns: op.invoke_ns,
                complete_ns: op.complete_ns,
            });
        }
    }
    let (outcome, stats) = check_wgl(model, &timed, limits);
    let outcome = match outcome {
        SearchOutcome::Linearizable => KeyOutcome::Linearizable,
        SearchOutcome::Unknown(reason) => KeyOutcome::Unknown(reason),
        SearchOutcome::NotLinearizable(found) => {
            KeyOutcome::Not(Box::new(explain(name, &source, found)))
        }
    };
    KeyCheck {
        outcome,
        operations: timed.len(),
        stats,
    }
}

fn explain<S: Debug>(
    model: &'static str,
    source: &[&Operation],
    found: crate::Counterexample<S>,
) -> NotLinearizable {
    let shown_from = found.prefix.len().saturating_sub(PREFIX_SHOWN_MAX);
    NotLinearizable {
        object: ObjectId::default(),
        key: String::new(),
        model,
        prefix_len: found.prefix.len(),
        prefix_tail: found.prefix[shown_from..]
            .iter()
            .map(|&i| source[i].clone())
            .collect(),
        state: format!("{:?}", found.state),
        stuck: source[found.stuck].clone(),
        candidates: found
            .candidates
            .iter()
            .filter(|&&i| i != found.stuck)
            .map(|&i| source[i].clone())
            .collect(),
    }
}

/// The register operation `op` stands for; `None` for operations that constrain nothing
/// (failed ones, reads with unknown outcome).
pub fn register_op(op: &Operation) -> Option<RegisterOp> {
    if op.outcome == Outcome::Fail {
        return None;
    }
    let ok = op.outcome == Outcome::Ok;
    match (op.op, &op.input) {
        (OpName::Read, _) if ok => Some(RegisterOp::Read {
            seen: op.output_int(),
        }),
        (OpName::Write, Some(Value::Int(value))) => Some(RegisterOp::Write { value: *value }),
        (OpName::Cas, Some(Value::Pair(expected, Some(new)))) => Some(if ok {
            RegisterOp::CasOk {
                expected: *expected,
                new: *new,
            }
        } else {
            RegisterOp::CasUnknown {
                expected: *expected,
                new: *new,
            }
        }),
        _ => None,
    }
}

/// The counter operation `op` stands for; `None` for operations that constrain nothing.
pub fn counter_op(op: &Operation) -> Option<CounterOp> {
    if op.outcome == Outcome::Fail {
        return None;
    }
    let ok = op.outcome == Outcome::Ok;
    match op.op {
        OpName::Read if ok => Some(CounterOp::Read {
            seen: op.output_int().unwrap_or(0),
        }),
        OpName::Add => Some(CounterOp::Add {
            delta: op.input_int()?,
            returned: if ok { op.output_int() } else { None },
        }),
        _ => None,
    }
}
