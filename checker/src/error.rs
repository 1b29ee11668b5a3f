//! Errors: the history cannot be read, or it is not a well-formed history.

use std::path::PathBuf;

use crate::{ObjectId, OpName, ProcessId, RequestId};

/// Why a history (or another input file) could not be checked. A malformed history is the
/// harness's bug, never a verdict about the system under test.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: cannot read: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error("line {line}: not a valid record: {reason}")]
    Parse { line: usize, reason: String },
    #[error(
        "event {index}: process {process} invoked while its previous operation was outstanding"
    )]
    DoubleInvoke { index: usize, process: ProcessId },
    #[error("event {index}: process {process} completed an operation it had not invoked")]
    CompletionWithoutInvoke { index: usize, process: ProcessId },
    #[error("event {index}: process {process}'s completion does not match its invocation: {field}")]
    CompletionMismatch {
        index: usize,
        process: ProcessId,
        field: &'static str,
    },
    #[error("event {index}: process {process} completed before it invoked")]
    CompletionBeforeInvoke { index: usize, process: ProcessId },
    #[error("event {index}: {op:?} has an invalid value: {reason}")]
    BadValue {
        index: usize,
        op: OpName,
        reason: &'static str,
    },
    #[error("object {object} key {key:?} mixes counter (add) and register operations")]
    MixedModels { object: ObjectId, key: String },
    #[error(
        "object {object}: request id {request_id} is used by operations with different arguments"
    )]
    RequestIdReused {
        object: ObjectId,
        request_id: RequestId,
    },
}
