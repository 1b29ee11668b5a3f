//! What the KV simulation judges, and how: every node's store dumped from its simulated
//! disk (tombstones included), snapshots of them after the heal, and `larder-checker`'s
//! KV checkers on the history.
//!
//! A put with a TTL reads as absent once it expires, and collection then buries it (a
//! tombstone of its version): to the checkers it is what it becomes, a delete at its
//! version. So the dumps show an entry expired at the node's clock as that tombstone,
//! and the history given to the checkers turns each put with a TTL into a delete
//! (`expiring_puts_as_deletes`). Every TTL has run out on every node before the final
//! dump, so "no acknowledged write lost, no deleted key back" covers them exactly; what
//! is not checked is that such a put was readable before it expired.

use std::collections::BTreeMap;

use larder_checker::{
    CheckInputs, Event, EventKind, History, KvState, NodeDump, OpName, Report, Snapshot, Value,
    check_all, check_kv_sessions,
};
use larder_kv::keyspace::Keyspace;
use larder_store::{MemoryDisk, Store};

use super::support::kv_dump::keyspace_dump;
use super::{CONVERGENCE_BOUND, EU, OPEN, replica_sets};

/// Node `id`'s stored entries, tombstones included; one expired at its clock `now_ms` is
/// shown as the tombstone collection turns it into.
pub fn dump(id: u64, disk: &MemoryDisk, now_ms: u64) -> NodeDump {
    let store = Store::open_memory(disk).expect("the node's simulated disk");
    let keyspace = Keyspace::open(store).expect("the KV tree");
    keyspace_dump(id, &keyspace, &[OPEN, EU], Some(now_ms)).expect("dump the store")
}

/// The history with each put that carried a TTL (its value starts with `t`) turned into
/// a delete at its version, which is what it is once expired.
pub fn expiring_puts_as_deletes(events: &[Event]) -> Vec<Event> {
    let mut open: BTreeMap<u64, bool> = BTreeMap::new();
    events
        .iter()
        .cloned()
        .map(|mut event| {
            let expiring = if event.kind == EventKind::Invoke {
                let expiring = event.op == OpName::Put
                    && matches!(&event.value, Some(Value::Text(v)) if v.starts_with('t'));
                open.insert(event.process.0, expiring);
                expiring
            } else {
                open.remove(&event.process.0).unwrap_or(false)
            };
            if expiring {
                event.op = OpName::Delete;
                event.value = None;
            }
            event
        })
        .collect()
}

/// The checkers' verdicts on one run.
pub struct Verdicts {
    pub report: Report,
    pub sessions: larder_checker::KvSessionsReport,
    /// The history and KV state they judged.
    pub history: History,
    pub kv: KvState,
}

impl Verdicts {
    pub fn passed(&self) -> bool {
        self.report.exit_code() == 0 && self.sessions.verdict == larder_checker::Verdict::Pass
    }

    pub fn summary(&self) -> String {
        let verdicts: Vec<String> = self
            .report
            .checkers
            .iter()
            .filter(|c| c.name.starts_with("kv_") || c.name == "residency")
            .map(|c| format!("{} {:?}", c.name, c.verdict))
            .collect();
        format!(
            "checkers: {verdicts:?}; kv_sessions {:?} ({} own writes, {} session reads)",
            self.sessions.verdict, self.sessions.writes_checked, self.sessions.reads_checked
        )
    }

    pub fn details(&self) -> String {
        format!(
            "{}\n{}",
            serde_json::to_string_pretty(&self.report).expect("report"),
            serde_json::to_string_pretty(&self.sessions).expect("sessions report")
        )
    }
}

/// Runs convergence (over `snapshots`, taken after the heal), lost writes and deleted
/// keys (against the last snapshot), residency and the session checks.
pub fn judge(events: &[Event], snapshots: Vec<Snapshot>) -> Verdicts {
    let history =
        History::from_events(expiring_puts_as_deletes(events)).expect("well-formed history");
    let kv = KvState {
        replicas: replica_sets(),
        snapshots,
        convergence_bound_ms: Some(CONVERGENCE_BOUND.as_millis() as u64),
    };
    let inputs = CheckInputs {
        kv: Some(kv.clone()),
        ..Default::default()
    };
    Verdicts {
        report: check_all(&history, &inputs).expect("checkers ran"),
        sessions: check_kv_sessions(&history),
        history,
        kv,
    }
}
