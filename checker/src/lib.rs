//! Checkers that decide whether a recorded history of a fault test is correct. The history
//! format, what each checker proves and what it cannot, and measured speed are in this
//! crate's README.md.
//!
//! Layout:
//! - [`history`]: the [`Event`] type and JSON Lines reading and writing;
//! - [`operation`]: invocations paired with completions into [`Operation`]s, retries merged;
//!   [`history_ops`]: a run's events with their operations, ready for the checkers;
//!   [`ids`]: the identifier newtypes (processes, nodes, epochs, objects, request ids);
//! - [`model`]: the [`Model`] trait and the register and counter specifications;
//! - [`wgl`]: the Wing–Gong–Lowe linearizability search over one object's history, on
//!   `entry_list`'s call and return entries (dancing links);
//! - [`brute_force`]: an exhaustive checker for small histories, to cross-check WGL;
//! - [`linearizability`]: every object key of a history checked with WGL;
//! - [`lost_writes`]: no acknowledged object write missing from the final reads;
//! - [`duplicates`]: no request id applied twice;
//! - [`fencing`]: no write acknowledged by an owner whose epoch was superseded;
//! - [`kv_dump`]: KV replica dumps, digests and convergence after the last heal;
//! - [`kv_writes`]: no acknowledged KV write lost, no deleted key back;
//! - [`kv_sessions`]: each node's own KV versions increase; read-your-writes per process;
//! - [`residency`]: restricted namespaces stay on their nodes;
//! - [`report`]: every checker on one history, verdicts and timings (`larder-check`);
//!   [`verdict`]: a checker's answer; [`error`]: what stops a check;
//! - [`simulate`]: synthetic histories (correct or chaotic) for tests and benchmarks.

pub mod brute_force;
pub mod duplicates;
mod entry_list;
pub mod error;
pub mod fencing;
pub mod history;
pub mod history_ops;
pub mod ids;
pub mod kv_dump;
pub mod kv_sessions;
pub mod kv_writes;
pub mod linearizability;
pub mod lost_writes;
pub mod model;
pub mod operation;
pub mod report;
pub mod residency;
pub mod simulate;
pub mod verdict;
pub mod wgl;

pub use brute_force::{BRUTE_FORCE_OPS_MAX, check_brute_force};
pub use duplicates::{ApplyRecord, Duplicate, DuplicatesReport, check_duplicates};
pub use error::CheckError;
pub use fencing::{FencingReport, FencingViolation, check_fencing};
pub use history::{
    Event, EventKind, OpName, Value, Version, read_history_file, read_jsonl, write_history_file,
    write_jsonl,
};
pub use history_ops::History;
pub use ids::{Epoch, NodeId, ObjectId, ProcessId, RequestId};
pub use kv_dump::{
    ConvergenceReport, DumpComparison, KeyDifference, KvEntry, NodeDump, ReplicaSets, Snapshot,
    check_convergence, compare_dumps, digest,
};
pub use kv_sessions::{KvSessionViolation, KvSessionsReport, check_kv_sessions};
pub use kv_writes::{KvViolation, KvWritesReport, check_kv_writes};
pub use linearizability::{
    LinearizabilityLimits, LinearizabilityReport, NotLinearizable, UndecidedKey,
    check_linearizability, counter_op, register_op,
};
pub use lost_writes::{LostWrite, LostWritesReport, check_lost_writes};
pub use model::{CounterModel, CounterOp, Model, RegisterModel, RegisterOp};
pub use operation::{Operation, Outcome, by_key, merge_retries, pair_operations};
pub use report::{CheckInputs, CheckerResult, KvState, Report, check_all};
pub use residency::{ResidencyReport, ResidencyViolation, check_residency};
pub use verdict::Verdict;
pub use wgl::{
    Counterexample, SearchLimits, SearchOutcome, SearchStats, TimedOp, UnknownReason, check_wgl,
};
