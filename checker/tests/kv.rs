//! KV convergence, lost writes, resurrected deletes and residency on hand-made dumps.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use larder_checker::{
    KvEntry, KvViolation, NodeDump, NodeId, ObjectId, OpName, ReplicaSets, ResidencyViolation,
    Snapshot, Value, Verdict, Version, check_convergence, check_kv_writes, check_residency,
    compare_dumps, digest,
};
use support::{End, Hist};

fn v(ms: u64, origin: u64) -> Version {
    Version(vec![ms, 0, origin])
}

fn live(value: &str, version: Version) -> KvEntry {
    KvEntry {
        value: Some(value.into()),
        version,
        tombstone: false,
    }
}

fn tomb(version: Version) -> KvEntry {
    KvEntry {
        value: None,
        version,
        tombstone: true,
    }
}

fn dump(node: u64, entries: &[(&str, &str, KvEntry)]) -> NodeDump {
    let mut out = NodeDump {
        node: NodeId(node),
        namespaces: BTreeMap::new(),
    };
    for (ns, key, entry) in entries {
        out.namespaces
            .entry(ObjectId::from(*ns))
            .or_default()
            .insert((*key).into(), entry.clone());
    }
    out
}

fn restricted(ns: &str, nodes: &[u64]) -> ReplicaSets {
    ReplicaSets {
        namespaces: BTreeMap::from([(
            ObjectId::from(ns),
            nodes.iter().map(|n| NodeId(*n)).collect::<BTreeSet<_>>(),
        )]),
    }
}

#[test]
fn identical_replicas_converge_and_share_digests() {
    let a = dump(
        1,
        &[("ns", "k", live("x", v(5, 1))), ("ns", "d", tomb(v(6, 2)))],
    );
    let b = NodeDump {
        node: NodeId(2),
        ..a.clone()
    };
    let cmp = compare_dumps(&[a, b], &ReplicaSets::default());
    assert!(cmp.converged);
    let digests: BTreeSet<&String> = cmp.digests[&ObjectId::from("ns")].values().collect();
    assert_eq!(digests.len(), 1);
}

#[test]
fn differing_replicas_name_the_keys_and_each_nodes_entry() {
    let a = dump(
        1,
        &[
            ("ns", "k", live("x", v(5, 1))),
            ("ns", "j", live("y", v(5, 1))),
        ],
    );
    let b = dump(
        2,
        &[
            ("ns", "k", live("z", v(7, 2))),
            ("ns", "j", live("y", v(5, 1))),
        ],
    );
    let c = dump(3, &[("ns", "j", live("y", v(5, 1)))]);
    let cmp = compare_dumps(&[a, b, c], &ReplicaSets::default());
    assert!(!cmp.converged);
    assert_eq!(cmp.differing_keys, 1);
    let diff = &cmp.differences[0];
    assert_eq!(diff.key, "k");
    assert_eq!(diff.entries[&NodeId(3)], None);
    assert_eq!(diff.entries[&NodeId(2)], Some(live("z", v(7, 2))));
    let digests: BTreeSet<&String> = cmp.digests[&ObjectId::from("ns")].values().collect();
    assert_eq!(digests.len(), 3);
}

#[test]
fn a_restricted_namespace_is_compared_only_where_it_may_live() {
    let a = dump(1, &[("eu", "k", live("x", v(5, 1)))]);
    let b = dump(2, &[("eu", "k", live("x", v(5, 1)))]);
    let c = dump(3, &[]);
    let cmp = compare_dumps(&[a, b, c], &restricted("eu", &[1, 2]));
    assert!(cmp.converged, "{cmp:?}");
}

#[test]
fn digests_depend_on_every_field() {
    let ns = ObjectId::from("ns");
    let base = BTreeMap::from([("k".to_string(), live("x", v(5, 1)))]);
    let variants = [
        BTreeMap::from([("k".to_string(), live("y", v(5, 1)))]),
        BTreeMap::from([("k".to_string(), live("x", v(5, 2)))]),
        BTreeMap::from([("k2".to_string(), live("x", v(5, 1)))]),
        BTreeMap::from([("k".to_string(), tomb(v(5, 1)))]),
    ];
    for other in &variants {
        assert_ne!(digest(&ns, &base), digest(&ns, other));
    }
    assert_eq!(digest(&ns, &base), digest(&ns, &base.clone()));
}

#[test]
fn convergence_must_happen_within_the_bound_and_last() {
    let same = vec![
        dump(1, &[("ns", "k", live("x", v(5, 1)))]),
        dump(2, &[("ns", "k", live("x", v(5, 1)))]),
    ];
    let apart = vec![dump(1, &[("ns", "k", live("x", v(5, 1)))]), dump(2, &[])];
    let snap = |ms, nodes: &Vec<NodeDump>| Snapshot {
        after_heal_ms: ms,
        nodes: nodes.clone(),
    };
    let replicas = ReplicaSets::default();
    let healed = [snap(500, &apart), snap(3000, &same)];
    let report = check_convergence(&healed, &replicas, 5000);
    assert_eq!(
        (report.verdict, report.converged_after_ms),
        (Verdict::Pass, Some(3000))
    );
    assert_eq!(
        check_convergence(&healed, &replicas, 2000).verdict,
        Verdict::Fail
    );
    let flapping = [snap(500, &same), snap(1000, &apart), snap(9000, &same)];
    let report = check_convergence(&flapping, &replicas, 5000);
    assert_eq!(
        (report.verdict, report.converged_after_ms),
        (Verdict::Fail, Some(9000))
    );
    let never = [snap(500, &same), snap(9000, &apart)];
    let report = check_convergence(&never, &replicas, 5000);
    assert_eq!(
        (report.verdict, report.converged_after_ms),
        (Verdict::Fail, None)
    );
    assert_eq!(
        check_convergence(&[], &replicas, 5000).verdict,
        Verdict::Unknown
    );
}

fn put(h: &mut Hist, p: u64, key: &str, value: &str, t: u64, version: Version) {
    let done = h.op_on(
        p,
        "ns",
        OpName::Put,
        key,
        Some(Value::Text(value.into())),
        t,
        End::Ok(None),
        t + 5,
    );
    done.version = Some(version);
}

fn delete(h: &mut Hist, p: u64, key: &str, t: u64, version: Version) {
    let done = h.op_on(p, "ns", OpName::Delete, key, None, t, End::Ok(None), t + 5);
    done.version = Some(version);
}

#[test]
fn acknowledged_puts_must_survive_unless_replaced() {
    let mut h = Hist::default();
    put(&mut h, 1, "k", "x", 0, v(10, 1));
    let history = h.history();
    let replicas = ReplicaSets::default();
    let kept = [
        dump(1, &[("ns", "k", live("x", v(10, 1)))]),
        dump(2, &[("ns", "k", live("y", v(11, 2)))]),
    ];
    assert_eq!(
        check_kv_writes(&history, &kept, &replicas).verdict,
        Verdict::Pass
    );
    let older = [dump(1, &[("ns", "k", live("w", v(9, 3)))])];
    let report = check_kv_writes(&history, &older, &replicas);
    assert!(matches!(
        &report.violations[..],
        [KvViolation::WriteLost { found: Some(_), .. }]
    ));
    let gone = [dump(1, &[])];
    let report = check_kv_writes(&history, &gone, &replicas);
    assert!(matches!(
        &report.violations[..],
        [KvViolation::WriteLost { found: None, .. }]
    ));
    let other_value = [dump(1, &[("ns", "k", live("q", v(10, 1)))])];
    let report = check_kv_writes(&history, &other_value, &replicas);
    assert!(matches!(
        &report.violations[..],
        [KvViolation::VersionMismatch { .. }]
    ));
}

#[test]
fn a_missing_key_is_fine_when_a_newer_delete_may_have_removed_it() {
    let mut h = Hist::default();
    put(&mut h, 1, "k", "x", 0, v(10, 1));
    delete(&mut h, 2, "k", 20, v(12, 2));
    let history = h.history();
    let report = check_kv_writes(&history, &[dump(1, &[])], &ReplicaSets::default());
    assert_eq!(report.verdict, Verdict::Pass);
}

#[test]
fn deleted_keys_must_not_come_back() {
    let mut h = Hist::default();
    delete(&mut h, 1, "k", 0, v(12, 1));
    let history = h.history();
    let replicas = ReplicaSets::default();
    let fine = [
        dump(1, &[("ns", "k", tomb(v(12, 1)))]),
        dump(2, &[("ns", "k", live("new", v(13, 2)))]),
        dump(3, &[]),
    ];
    assert_eq!(
        check_kv_writes(&history, &fine, &replicas).verdict,
        Verdict::Pass
    );
    let back = [dump(1, &[("ns", "k", live("old", v(11, 2)))])];
    let report = check_kv_writes(&history, &back, &replicas);
    assert!(matches!(
        &report.violations[..],
        [KvViolation::DeletedKeyCameBack { .. }]
    ));
    let older_tombstone = [dump(1, &[("ns", "k", tomb(v(11, 2)))])];
    let report = check_kv_writes(&history, &older_tombstone, &replicas);
    assert!(matches!(
        &report.violations[..],
        [KvViolation::WriteLost { .. }]
    ));
}

#[test]
fn kv_writes_without_versions_are_undecided() {
    let mut h = Hist::default();
    h.op_on(
        1,
        "ns",
        OpName::Put,
        "k",
        Some(Value::Text("x".into())),
        0,
        End::Ok(None),
        5,
    );
    let report = check_kv_writes(&h.history(), &[dump(1, &[])], &ReplicaSets::default());
    assert_eq!(
        (report.verdict, report.without_version),
        (Verdict::Unknown, 1)
    );
}

#[test]
fn residency_is_violated_by_data_stored_or_served_outside() {
    let replicas = restricted("eu", &[1, 2]);
    let inside = [
        dump(1, &[("eu", "k", live("x", v(5, 1)))]),
        dump(3, &[("us", "k", live("x", v(5, 1)))]),
    ];
    let history = Hist::default().history();
    let report = check_residency(&history, &[(Some(0), &inside[..])], &replicas);
    assert_eq!(report.verdict, Verdict::Pass);
    let outside = [dump(3, &[("eu", "k", tomb(v(5, 1)))])];
    let report = check_residency(&history, &[(Some(700), &outside[..])], &replicas);
    assert!(matches!(
        &report.violations[..],
        [ResidencyViolation::StoredOutside {
            node: NodeId(3),
            entries: 1,
            ..
        }]
    ));
    let mut h = Hist::default();
    let read = h.op_on(
        1,
        "eu",
        OpName::Get,
        "k",
        None,
        0,
        End::Ok(Some(Value::Text("x".into()))),
        5,
    );
    read.node = Some(NodeId(3));
    let report = check_residency(&h.history(), &[], &replicas);
    assert!(matches!(
        &report.violations[..],
        [ResidencyViolation::ServedOutside { .. }]
    ));
}

#[test]
fn a_versioned_read_must_return_the_content_of_that_version() {
    let mut h = Hist::default();
    put(&mut h, 1, "k", "x", 0, v(10, 1));
    let read = h.op_on(
        2,
        "ns",
        OpName::Get,
        "k",
        None,
        20,
        End::Ok(Some(Value::Text("x".into()))),
        25,
    );
    read.version = Some(v(10, 1));
    let replicas = ReplicaSets::default();
    let fine = [dump(1, &[("ns", "k", live("x", v(10, 1)))])];
    assert_eq!(
        check_kv_writes(&h.history(), &fine, &replicas).verdict,
        Verdict::Pass
    );
    let read = h.op_on(
        3,
        "ns",
        OpName::Get,
        "k",
        None,
        30,
        End::Ok(Some(Value::Text("zz".into()))),
        35,
    );
    read.version = Some(v(10, 1));
    let report = check_kv_writes(&h.history(), &fine, &replicas);
    assert!(matches!(
        &report.violations[..],
        [KvViolation::ReadMismatch { .. }]
    ));
}
