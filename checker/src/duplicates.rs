//! No request id applied twice. Three sources of evidence, each sound on its own:
//!
//! - apply records the harness collected from the nodes (which versions each request id
//!   produced): a request id with two different versions was applied twice;
//! - the history: attempts (retries) of one write's request id acknowledged with different
//!   versions or results. A deduplicated retry must report the first application's version and
//!   result, so a difference means a second application;
//! - counter arithmetic: a final read (see [`crate::check_lost_writes`]) above the
//!   acknowledged adds plus every positive unknown add means some add counted more than
//!   once (retries of one request id count once).
//!
//! Not proved: a second application that left no trace in these (a register rewritten
//! with the same value and no version reported, a counter whose excess is hidden by adds
//! that were lost).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::linearizability::is_counter;
use crate::lost_writes::{counter_bounds, final_reads};
use crate::{History, ObjectId, Operation, RequestId, Value, Verdict, Version, by_key};

/// One application of a request, as a node recorded it (JSON Lines for the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRecord {
    pub object: ObjectId,
    #[serde(default)]
    pub key: String,
    pub request_id: RequestId,
    /// The version the application produced.
    pub version: Version,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Duplicate {
    /// Apply records show the request producing several versions.
    AppliedTwice {
        object: ObjectId,
        request_id: RequestId,
        versions: Vec<Version>,
    },
    /// Acknowledged attempts of one request id reported different versions or results.
    AcknowledgedDifferently {
        object: ObjectId,
        request_id: RequestId,
        attempts: Vec<Operation>,
    },
    /// A counter's final value exceeds every add applied at most once.
    CounterTooHigh {
        object: ObjectId,
        key: String,
        final_read: Box<Operation>,
        final_value: i64,
        upper_bound: i64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct DuplicatesReport {
    pub verdict: Verdict,
    /// Distinct request ids seen in the history and the records.
    pub request_ids: usize,
    pub apply_records: usize,
    pub violations: Vec<Duplicate>,
}

/// Checks that no request id was applied twice, from the history and `records`.
pub fn check_duplicates(history: &History, records: &[ApplyRecord]) -> DuplicatesReport {
    let mut violations = Vec::new();
    let mut ids: BTreeSet<(ObjectId, RequestId)> = BTreeSet::new();

    let mut versions: BTreeMap<(ObjectId, RequestId), BTreeSet<Version>> = BTreeMap::new();
    for record in records {
        versions
            .entry((record.object.clone(), record.request_id.clone()))
            .or_default()
            .insert(record.version.clone());
    }
    for ((object, request_id), seen) in versions {
        if seen.len() > 1 {
            violations.push(Duplicate::AppliedTwice {
                object: object.clone(),
                request_id: request_id.clone(),
                versions: seen.into_iter().collect(),
            });
        }
        ids.insert((object, request_id));
    }

    let mut acked: BTreeMap<(ObjectId, RequestId), Vec<&Operation>> = BTreeMap::new();
    for op in &history.attempts {
        if let Some(request_id) = &op.request_id {
            ids.insert((op.object.clone(), request_id.clone()));
            if op.is_ok() && op.op.is_mutation() {
                acked
                    .entry((op.object.clone(), request_id.clone()))
                    .or_default()
                    .push(op);
            }
        }
    }
    for ((object, request_id), attempts) in acked {
        let results: BTreeSet<(Option<&Version>, Option<&Value>)> = attempts
            .iter()
            .map(|op| (op.version.as_ref(), op.output.as_ref()))
            .collect();
        if results.len() > 1 {
            violations.push(Duplicate::AcknowledgedDifferently {
                object,
                request_id,
                attempts: attempts.into_iter().cloned().collect(),
            });
        }
    }

    counters_too_high(history, &mut violations);
    DuplicatesReport {
        verdict: Verdict::from_counts(violations.len(), 0),
        request_ids: ids.len(),
        apply_records: records.len(),
        violations,
    }
}

fn counters_too_high(history: &History, out: &mut Vec<Duplicate>) {
    let adds_and_reads: Vec<Operation> = history
        .operations
        .iter()
        .filter(|op| op.op.is_object_op())
        .cloned()
        .collect();
    for ((object, key), ops) in by_key(&adds_and_reads) {
        if is_counter(&ops) != Some(true) {
            continue;
        }
        let (_, upper) = counter_bounds(&ops);
        for read in final_reads(&ops) {
            let value = read.output_int().unwrap_or(0);
            if value > upper {
                out.push(Duplicate::CounterTooHigh {
                    object: object.clone(),
                    key: key.clone(),
                    final_read: Box::new(read.clone()),
                    final_value: value,
                    upper_bound: upper,
                });
            }
        }
    }
}
