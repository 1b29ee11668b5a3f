//! Every checker run on one history, with verdicts and timings: what `larder-check`
//! prints.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::{
    ApplyRecord, CheckError, History, LinearizabilityLimits, OpName, Outcome, ReplicaSets,
    Snapshot, Verdict, check_convergence, check_duplicates, check_fencing, check_kv_writes,
    check_linearizability, check_lost_writes, check_residency, read_jsonl,
};

/// The default convergence bound: KV anti-entropy runs every 2 s by default and each round
/// syncs a node with one partner, so 10 rounds bring a small cluster (≤ 7 nodes) together
/// with room to spare.
pub const DEFAULT_CONVERGENCE_BOUND_MS: u64 = 20_000;

/// KV state after the run (the `--kv` file): which nodes may hold which namespace, and
/// dumps of every node taken after the last heal, in time order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvState {
    #[serde(default)]
    pub replicas: ReplicaSets,
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    /// Defaults to [`DEFAULT_CONVERGENCE_BOUND_MS`].
    #[serde(default)]
    pub convergence_bound_ms: Option<u64>,
}

/// What the checkers take besides the history.
#[derive(Debug, Clone, Default)]
pub struct CheckInputs {
    pub apply_records: Vec<ApplyRecord>,
    /// `None`: no KV state recorded (KV checkers that need it are then undecided when the
    /// history has KV writes).
    pub kv: Option<KvState>,
    pub limits: LinearizabilityLimits,
}

/// One checker's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CheckerResult {
    pub name: &'static str,
    pub verdict: Verdict,
    pub elapsed_ms: f64,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistorySummary {
    pub events: usize,
    pub operations: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    pub retried: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub history: HistorySummary,
    pub checkers: Vec<CheckerResult>,
}

impl Report {
    /// 0: every verdict a pass; 1: a violation; 3: no violation, but something undecided.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Unknown => 3,
        }
    }
}

/// Runs every applicable checker. Object checkers always run; KV checkers run when the
/// history has KV operations or KV state was given.
pub fn check_all(history: &History, inputs: &CheckInputs) -> Result<Report, CheckError> {
    let mut checkers = Vec::new();
    let lin = timed(|| check_linearizability(history, &inputs.limits));
    let (report, elapsed_ms) = (lin.0?, lin.1);
    checkers.push(result(
        "linearizability",
        report.verdict,
        elapsed_ms,
        &report,
    ));
    let (report, elapsed_ms) = timed(|| check_lost_writes(history));
    checkers.push(result("lost_writes", report.verdict, elapsed_ms, &report));
    let (report, elapsed_ms) = timed(|| check_duplicates(history, &inputs.apply_records));
    checkers.push(result("duplicates", report.verdict, elapsed_ms, &report));
    let (report, elapsed_ms) = timed(|| check_fencing(history));
    checkers.push(result("fencing", report.verdict, elapsed_ms, &report));

    let has_kv = history
        .operations
        .iter()
        .any(|op| matches!(op.op, OpName::Put | OpName::Delete | OpName::Get));
    if has_kv || inputs.kv.is_some() {
        kv_checkers(history, inputs.kv.as_ref(), &mut checkers);
    }
    let verdict = checkers
        .iter()
        .fold(Verdict::Pass, |all, c| all.and(c.verdict));
    Ok(Report {
        verdict,
        history: summary(history),
        checkers,
    })
}

fn kv_checkers(history: &History, kv: Option<&KvState>, checkers: &mut Vec<CheckerResult>) {
    let empty = KvState::default();
    let kv = kv.unwrap_or(&empty);
    let bound_ms = kv
        .convergence_bound_ms
        .unwrap_or(DEFAULT_CONVERGENCE_BOUND_MS);
    let (report, elapsed_ms) = timed(|| check_convergence(&kv.snapshots, &kv.replicas, bound_ms));
    checkers.push(result(
        "kv_convergence",
        report.verdict,
        elapsed_ms,
        &report,
    ));
    let final_nodes = kv.snapshots.last().map(|s| s.nodes.as_slice());
    let (report, elapsed_ms) =
        timed(|| check_kv_writes(history, final_nodes.unwrap_or_default(), &kv.replicas));
    // Without any dump, nothing was compared: undecided, whatever the writes.
    let verdict = if final_nodes.is_none() && report.acknowledged_writes > 0 {
        Verdict::Unknown
    } else {
        report.verdict
    };
    checkers.push(result("kv_writes", verdict, elapsed_ms, &report));
    let dumps: Vec<(Option<u64>, &[crate::NodeDump])> = kv
        .snapshots
        .iter()
        .map(|s| (Some(s.after_heal_ms), s.nodes.as_slice()))
        .collect();
    let (report, elapsed_ms) = timed(|| check_residency(history, &dumps, &kv.replicas));
    checkers.push(result("residency", report.verdict, elapsed_ms, &report));
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed().as_secs_f64() * 1000.0)
}

fn result<T: Serialize>(
    name: &'static str,
    verdict: Verdict,
    elapsed_ms: f64,
    details: &T,
) -> CheckerResult {
    CheckerResult {
        name,
        verdict,
        elapsed_ms,
        details: serde_json::to_value(details)
            .unwrap_or_else(|err| serde_json::json!({ "unserializable": err.to_string() })),
    }
}

fn summary(history: &History) -> HistorySummary {
    let count = |outcome| {
        history
            .operations
            .iter()
            .filter(|op| op.outcome == outcome)
            .count()
    };
    HistorySummary {
        events: history.events.len(),
        operations: history.operations.len(),
        ok: count(Outcome::Ok),
        failed: count(Outcome::Fail),
        unknown: count(Outcome::Unknown),
        retried: history
            .operations
            .iter()
            .filter(|op| op.attempts > 1)
            .count(),
    }
}

/// Reads the `--kv` file.
pub fn read_kv_state(path: &Path) -> Result<KvState, CheckError> {
    let file = File::open(path).map_err(|source| CheckError::Open {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_reader(BufReader::new(file)).map_err(|err| CheckError::Parse {
        line: err.line(),
        reason: err.to_string(),
    })
}

/// Reads an apply-records file (JSON Lines of [`ApplyRecord`]).
pub fn read_apply_records(path: &Path) -> Result<Vec<ApplyRecord>, CheckError> {
    let file = File::open(path).map_err(|source| CheckError::Open {
        path: path.to_owned(),
        source,
    })?;
    read_jsonl(BufReader::new(file))
}
