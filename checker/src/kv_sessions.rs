//! KV session guarantees, judged on the history alone:
//!
//! - **own versions increase**: every node's hybrid logical clock stamps its own writes
//!   with increasing versions, also across restarts and wall-clock jumps. For two
//!   acknowledged `put`/`delete`s stamped by one origin (the version's third part), the one
//!   that completed before the other was invoked has the smaller version; and an
//!   acknowledged write is stamped by the node that acknowledged it (when recorded).
//! - **read-your-writes**: a process that passes its session token (every write it had
//!   acknowledged) on each `get` sees its own writes. For an ok `get` of a key, take the
//!   process's acknowledged write of that key with the greatest version that completed
//!   before the get was invoked: a value found must have a version at least that great;
//!   "absent" needs that write to be a delete, or some other delete of the key that may
//!   have replaced it (acknowledged with a greater version, or of unknown outcome).
//!
//! Only meaningful for histories whose clients carry session tokens; `larder-check`
//! does not run it by default for that reason.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{History, NodeId, ObjectId, OpName, Operation, Outcome, ProcessId, Verdict};

/// Violations reported at most.
pub const SESSIONS_REPORTED_MAX: usize = 100;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KvSessionViolation {
    /// `later` was invoked after `earlier` completed, both stamped by `origin`, yet its
    /// version is not greater.
    VersionWentBack {
        origin: u64,
        earlier: Box<Operation>,
        later: Box<Operation>,
    },
    /// The version's origin is not the node that acknowledged the write.
    ForeignStamp { node: NodeId, write: Box<Operation> },
    /// A read missed a write its process had acknowledged before.
    MissedOwnWrite {
        read: Box<Operation>,
        write: Box<Operation>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct KvSessionsReport {
    pub verdict: Verdict,
    /// Acknowledged writes with a three-part version.
    pub writes_checked: usize,
    /// Ok gets preceded by an acknowledged write of their process to the same key.
    pub reads_checked: usize,
    pub violations_total: usize,
    pub violations: Vec<KvSessionViolation>,
}

/// Checks own-version order per origin and read-your-writes per process.
pub fn check_kv_sessions(history: &History) -> KvSessionsReport {
    let writes: Vec<&Operation> = history
        .operations
        .iter()
        .filter(|op| matches!(op.op, OpName::Put | OpName::Delete) && op.is_ok())
        .filter(|op| op.version.as_ref().is_some_and(|v| v.0.len() == 3))
        .collect();
    let mut violations = own_versions(&writes);
    let (reads_checked, missed) = read_your_writes(history);
    violations.extend(missed);
    let violations_total = violations.len();
    violations.truncate(SESSIONS_REPORTED_MAX);
    KvSessionsReport {
        verdict: Verdict::from_counts(violations_total, 0),
        writes_checked: writes.len(),
        reads_checked,
        violations_total,
        violations,
    }
}

fn origin(op: &Operation) -> u64 {
    op.version.as_ref().map_or(0, |v| v.0[2])
}

/// Per origin: a sweep in invocation order, keeping the greatest version among the writes
/// that completed before the current one was invoked.
fn own_versions(writes: &[&Operation]) -> Vec<KvSessionViolation> {
    let mut out = Vec::new();
    let mut by_origin: BTreeMap<u64, Vec<&Operation>> = BTreeMap::new();
    for write in writes {
        if let Some(node) = write.node
            && node.0 != origin(write)
        {
            out.push(KvSessionViolation::ForeignStamp {
                node,
                write: Box::new((*write).clone()),
            });
        }
        by_origin.entry(origin(write)).or_default().push(write);
    }
    for (origin, mut ops) in by_origin {
        ops.sort_by_key(|op| op.invoke_ns);
        let mut by_completion = ops.clone();
        by_completion.sort_by_key(|op| op.complete_ns);
        let mut done = by_completion.iter().peekable();
        let mut greatest: Option<&Operation> = None;
        for op in ops {
            while let Some(earlier) = done.next_if(|e| e.complete_ns < Some(op.invoke_ns)) {
                if greatest.is_none_or(|g| earlier.version > g.version) {
                    greatest = Some(earlier);
                }
            }
            if let Some(earlier) = greatest
                && earlier.version >= op.version
            {
                out.push(KvSessionViolation::VersionWentBack {
                    origin,
                    earlier: Box::new(earlier.clone()),
                    later: Box::new(op.clone()),
                });
            }
        }
    }
    out
}

/// Returns the reads checked and the violations. A process has one outstanding
/// operation at a time, so its earlier operations all completed before its next one.
fn read_your_writes(history: &History) -> (usize, Vec<KvSessionViolation>) {
    let mut deletes: BTreeMap<(&ObjectId, &str), Vec<&Operation>> = BTreeMap::new();
    let mut by_process: BTreeMap<ProcessId, Vec<&Operation>> = BTreeMap::new();
    for op in &history.operations {
        if op.op == OpName::Delete {
            deletes.entry((&op.object, &op.key)).or_default().push(op);
        }
        if matches!(op.op, OpName::Put | OpName::Delete | OpName::Get) {
            by_process.entry(op.process).or_default().push(op);
        }
    }
    let mut checked = 0;
    let mut out = Vec::new();
    for ops in by_process.values() {
        let mut own: BTreeMap<(&ObjectId, &str), &Operation> = BTreeMap::new();
        for op in ops {
            let key = (&op.object, op.key.as_str());
            if op.op != OpName::Get {
                if op.is_ok()
                    && op.version.is_some()
                    && own.get(&key).is_none_or(|w| op.version > w.version)
                {
                    own.insert(key, op);
                }
                continue;
            }
            let Some(write) = own.get(&key).filter(|_| op.is_ok()) else {
                continue;
            };
            checked += 1;
            let fine = match &op.version {
                Some(seen) if op.output.is_some() => Some(seen) >= write.version.as_ref(),
                _ => {
                    write.op == OpName::Delete
                        || deletes
                            .get(&key)
                            .is_some_and(|ds| ds.iter().any(|d| replaced_by(write, d, op)))
                }
            };
            if !fine {
                out.push(KvSessionViolation::MissedOwnWrite {
                    read: Box::new((*op).clone()),
                    write: Box::new((*write).clone()),
                });
            }
        }
    }
    (checked, out)
}

/// Whether delete `d` may have replaced `write` before `read` completed.
fn replaced_by(write: &Operation, d: &Operation, read: &Operation) -> bool {
    let in_time = read.complete_ns.is_none_or(|done| d.invoke_ns < done);
    let newer = match d.outcome {
        Outcome::Ok => d.version.is_none() || d.version > write.version,
        Outcome::Unknown => true,
        Outcome::Fail => false,
    };
    in_time && newer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, EventKind, Value, Version};

    /// One completed operation: invoke at `t`, complete at `t + 1`.
    fn op(
        process: u64,
        name: OpName,
        key: &str,
        t: u64,
        ok: Option<(Option<&str>, [u64; 3])>,
    ) -> Vec<Event> {
        let mut invoke = Event::new(process, EventKind::Invoke, name, "ns", key, t * 10);
        if name == OpName::Put {
            invoke.value = Some(Value::Text(format!("v{t}")));
        }
        invoke.node = Some(NodeId(1));
        let mut done = Event::new(process, EventKind::Info, name, "ns", key, t * 10 + 5);
        if let Some((value, version)) = ok {
            done.kind = EventKind::Ok;
            done.value = value.map(|v| Value::Text(v.into()));
            done.version = (version != [0; 3]).then(|| Version(version.to_vec()));
            done.node = (name != OpName::Get).then_some(NodeId(version[2]));
        }
        vec![invoke, done]
    }

    fn check(ops: Vec<Vec<Event>>) -> KvSessionsReport {
        let events = ops.into_iter().flatten().collect();
        check_kv_sessions(&History::from_events(events).expect("well formed"))
    }

    #[test]
    fn increasing_own_versions_and_reads_of_them_pass() {
        let report = check(vec![
            op(1, OpName::Put, "k", 1, Some((None, [100, 0, 1]))),
            op(1, OpName::Get, "k", 2, Some((Some("v1"), [100, 0, 1]))),
            op(2, OpName::Put, "k", 3, Some((None, [100, 1, 1]))),
            op(1, OpName::Delete, "k", 4, Some((None, [101, 0, 1]))),
            op(1, OpName::Get, "k", 5, Some((None, [0, 0, 0]))),
        ]);
        assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
        assert_eq!((report.writes_checked, report.reads_checked), (3, 2));
    }

    #[test]
    fn a_clock_that_goes_back_for_later_writes_fails() {
        let report = check(vec![
            op(1, OpName::Put, "a", 1, Some((None, [200, 0, 3]))),
            op(2, OpName::Put, "b", 2, Some((None, [150, 0, 3]))),
        ]);
        assert_eq!(report.verdict, Verdict::Fail);
        assert!(matches!(
            report.violations[0],
            KvSessionViolation::VersionWentBack { origin: 3, .. }
        ));
    }

    #[test]
    fn concurrent_writes_may_be_stamped_in_either_order() {
        let mut first = op(1, OpName::Put, "a", 1, Some((None, [200, 0, 3])));
        let second = op(2, OpName::Put, "b", 1, Some((None, [150, 0, 3])));
        first[1].time_ns = 12;
        let report = check(vec![first, second]);
        assert_eq!(report.verdict, Verdict::Pass, "{report:?}");
    }

    #[test]
    fn a_read_older_than_the_own_write_fails_unless_a_delete_replaced_it() {
        let stale = check(vec![
            op(1, OpName::Put, "k", 1, Some((None, [100, 0, 1]))),
            op(1, OpName::Get, "k", 2, Some((Some("old"), [90, 0, 2]))),
        ]);
        assert_eq!(stale.verdict, Verdict::Fail);
        assert!(matches!(
            stale.violations[0],
            KvSessionViolation::MissedOwnWrite { .. }
        ));
        let absent = check(vec![
            op(1, OpName::Put, "k", 1, Some((None, [100, 0, 1]))),
            op(1, OpName::Get, "k", 2, Some((None, [0, 0, 0]))),
        ]);
        assert_eq!(absent.verdict, Verdict::Fail);
        let deleted_by_another = check(vec![
            op(1, OpName::Put, "k", 1, Some((None, [100, 0, 1]))),
            op(2, OpName::Delete, "k", 2, None),
            op(1, OpName::Get, "k", 3, Some((None, [0, 0, 0]))),
        ]);
        assert_eq!(deleted_by_another.verdict, Verdict::Pass);
    }

    #[test]
    fn a_write_stamped_by_another_node_fails() {
        let mut events = op(1, OpName::Put, "k", 1, Some((None, [100, 0, 1])));
        events[1].node = Some(NodeId(2));
        let report = check(vec![events]);
        assert!(matches!(
            report.violations[0],
            KvSessionViolation::ForeignStamp { .. }
        ));
    }
}
