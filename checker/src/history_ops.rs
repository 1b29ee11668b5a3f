//! [`History`]: the events of a run with their operations, ready for the checkers.

use std::path::Path;

use crate::{CheckError, Event, Operation, merge_retries, pair_operations, read_history_file};

/// A recorded history: its events, each attempt (invocation and completion), and the
/// logical operations (attempts of one request id merged).
#[derive(Debug, Clone, Default)]
pub struct History {
    pub events: Vec<Event>,
    pub attempts: Vec<Operation>,
    pub operations: Vec<Operation>,
}

impl History {
    pub fn from_events(events: Vec<Event>) -> Result<History, CheckError> {
        let attempts = pair_operations(&events)?;
        let operations = merge_retries(&attempts)?;
        Ok(History {
            events,
            attempts,
            operations,
        })
    }

    pub fn read_file(path: &Path) -> Result<History, CheckError> {
        History::from_events(read_history_file(path)?)
    }
}
