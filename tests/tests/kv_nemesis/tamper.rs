//! The checkers are not blind to a run's data: each tampered copy of it must fail the
//! checker that guards against that change.

use larder_checker::{
    Event, EventKind, History, KvEntry, KvSessionViolation, KvState, NodeDump, NodeId, ObjectId,
    OpName, Operation, Value, Verdict, Version, check_convergence, check_kv_sessions,
    check_kv_writes, check_residency,
};

use super::{CLIENTS, CONVERGENCE_BOUND, EU, OPEN, replica_sets};

/// Runs every tampering below on the run's history, KV state and store dumps (nodes 1–5
/// in order).
pub fn checkers_see_tampering(history: &History, kv: &KvState, disk: &[NodeDump]) {
    rolled_back_put_fails(history, disk);
    resurrected_key_fails(history, disk);
    diverged_replica_fails(kv);
    data_outside_its_region_fails(history, disk);
    missed_own_write_fails(history);
}

/// Node 1's final entry of the operation's key.
fn final_entry(disk: &[NodeDump], op: &Operation) -> Option<KvEntry> {
    disk[0]
        .namespaces
        .get(&op.object)
        .and_then(|e| e.get(&op.key))
        .cloned()
}

fn kv_writes_verdict(history: &History, dumps: &[NodeDump]) -> Verdict {
    check_kv_writes(history, dumps, &replica_sets()).verdict
}

/// An acknowledged put whose entry survived, rolled back on node 2: a lost write.
fn rolled_back_put_fails(history: &History, disk: &[NodeDump]) {
    let open = ObjectId::from(OPEN);
    let survivor = history.operations.iter().rev().find(|op| {
        op.op == OpName::Put
            && op.is_ok()
            && op.object == open
            && final_entry(disk, op).map(|e| e.version) == op.version
    });
    let survivor = survivor.expect("some acknowledged put is the final entry of its key");
    let mut lost = disk.to_vec();
    let entry = lost[1]
        .namespaces
        .get_mut(&open)
        .and_then(|e| e.get_mut(&survivor.key))
        .expect("replicated to node 2");
    entry.version.0[0] -= 1;
    assert_eq!(
        kv_writes_verdict(history, &lost),
        Verdict::Fail,
        "a rolled-back put must fail kv_writes"
    );
}

/// An acknowledged delete's tombstone replaced on node 3 by an older live entry.
fn resurrected_key_fails(history: &History, disk: &[NodeDump]) {
    let open = ObjectId::from(OPEN);
    let delete = history.operations.iter().find(|op| {
        op.op == OpName::Delete
            && op.is_ok()
            && op.object == open
            && final_entry(disk, op).is_some_and(|e| e.tombstone && Some(e.version) == op.version)
    });
    let delete = delete.expect("some key ends deleted by an acknowledged delete");
    let mut back = disk.to_vec();
    let entry = back[2]
        .namespaces
        .get_mut(&open)
        .and_then(|e| e.get_mut(&delete.key))
        .expect("tombstone at node 3");
    entry.tombstone = false;
    entry.value = Some("resurrected".into());
    entry.version.0[0] -= 1;
    assert_eq!(
        kv_writes_verdict(history, &back),
        Verdict::Fail,
        "a resurrected key must fail kv_writes"
    );
}

/// One replica with an extra entry in the last snapshot: not converged.
fn diverged_replica_fails(kv: &KvState) {
    let mut diverged = kv.clone();
    let last = diverged.snapshots.last_mut().expect("snapshots");
    last.nodes[3]
        .namespaces
        .entry(ObjectId::from(OPEN))
        .or_default()
        .insert(
            "only-here".into(),
            KvEntry {
                value: Some("x".into()),
                version: Version(vec![1, 0, 4]),
                tombstone: false,
            },
        );
    let bound_ms = CONVERGENCE_BOUND.as_millis() as u64;
    let report = check_convergence(&diverged.snapshots, &replica_sets(), bound_ms);
    assert_eq!(
        report.verdict,
        Verdict::Fail,
        "a diverged replica must fail convergence"
    );
}

/// The `eu-west` namespace's entries copied to node 2 (`us-east`).
fn data_outside_its_region_fails(history: &History, disk: &[NodeDump]) {
    let eu = ObjectId::from(EU);
    let entries = disk[0].namespaces.get(&eu).cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "the eu namespace was written");
    let mut outside = disk.to_vec();
    outside[1].namespaces.insert(eu, entries);
    let report = check_residency(history, &[(None, &outside)], &replica_sets());
    assert_eq!(
        report.verdict,
        Verdict::Fail,
        "eu data on node 2 must fail residency"
    );
}

/// An own write, acknowledged just before a session read with a version 1 ms newer than
/// the one the read returned, stamped by a node of its own (no other check trips on it).
fn missed_own_write_fails(history: &History) {
    let mut events = history.events.clone();
    let read = events.iter().position(|e| {
        e.op == OpName::Get
            && e.kind == EventKind::Ok
            && e.process.0 < CLIENTS
            && e.version.is_some()
    });
    let read = read.expect("some read found a value");
    let (process, key, namespace) = (
        events[read].process.0,
        events[read].key.clone(),
        events[read].object.0.clone(),
    );
    let invoked = events[..read]
        .iter()
        .rposition(|e| e.process.0 == process && e.kind == EventKind::Invoke)
        .expect("the read's invocation");
    let time = events[invoked].time_ns;
    let mut newer = events[read].version.clone().expect("version");
    newer.0[0] += 1;
    newer.0[2] = 99;
    let mut put = Event::new(
        process,
        EventKind::Invoke,
        OpName::Put,
        &namespace,
        &key,
        time,
    );
    put.value = Some(Value::Text("tampered".into()));
    let mut ok = Event::new(process, EventKind::Ok, OpName::Put, &namespace, &key, time);
    ok.version = Some(newer);
    ok.node = Some(NodeId(99));
    events.insert(invoked, ok);
    events.insert(invoked, put);
    let report = check_kv_sessions(&History::from_events(events).expect("well formed"));
    let missed = |v: &KvSessionViolation| matches!(v, KvSessionViolation::MissedOwnWrite { .. });
    assert!(
        !report.violations.is_empty() && report.violations.iter().all(missed),
        "a read missing its own write must fail read-your-writes (and only that): {report:?}"
    );
}
