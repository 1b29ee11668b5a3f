//! Hand-written histories for the lost-write, duplicate-apply and fencing checkers.

mod support;

use larder_checker::simulate::{SimConfig, SimObject, simulate_seeded};
use larder_checker::{
    ApplyRecord, Duplicate, FencingViolation, History, LostWrite, ObjectId, OpName, RequestId,
    Value, Verdict, Version, check_duplicates, check_fencing, check_lost_writes,
};
use support::{End, Hist, acked, int, with_request};

#[test]
fn a_final_read_of_the_last_write_passes() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.write(2, 2, 5, End::Ok(None), 15);
    h.read(3, Some(1), 20, 30);
    assert_eq!(check_lost_writes(&h.history()).verdict, Verdict::Pass);
}

#[test]
fn a_register_write_missing_from_the_final_read_is_lost() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.write(2, 2, 20, End::Ok(None), 30);
    h.read(3, Some(1), 40, 50);
    let report = check_lost_writes(&h.history());
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(matches!(
        &report.violations[..],
        [LostWrite::RegisterWriteLost { lost, .. }] if lost.input_int() == Some(2)
    ));
}

#[test]
fn an_unknown_write_may_explain_the_final_value() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.write(2, 2, 20, End::Ok(None), 30);
    h.write(4, 1, 25, End::Info, 26);
    h.read(3, Some(1), 40, 50);
    assert_eq!(check_lost_writes(&h.history()).verdict, Verdict::Pass);
}

#[test]
fn final_values_from_nowhere_or_emptied_registers_fail() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.read(3, Some(9), 40, 50);
    h.read(4, None, 40, 50);
    let report = check_lost_writes(&h.history());
    assert!(matches!(
        &report.violations[..],
        [
            LostWrite::RegisterValueFromNowhere { .. },
            LostWrite::RegisterEmptied { .. }
        ]
    ));
}

#[test]
fn a_key_with_acknowledged_writes_and_no_final_read_is_undecided() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.read(2, Some(1), 5, 8);
    let report = check_lost_writes(&h.history());
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.keys_without_final_read.len(), 1);
}

#[test]
fn counter_final_value_must_cover_the_acknowledged_adds() {
    let mut h = Hist::default();
    h.add(1, 2, 0, End::Ok(None), 10);
    h.add(2, 3, 0, End::Info, 10);
    h.add(3, 4, 0, End::Fail, 10);
    h.read(4, Some(5), 20, 30);
    h.read(5, Some(2), 20, 30);
    assert_eq!(check_lost_writes(&h.history()).verdict, Verdict::Pass);
    assert_eq!(check_duplicates(&h.history(), &[]).verdict, Verdict::Pass);

    let mut lost = Hist::default();
    lost.add(1, 2, 0, End::Ok(None), 10);
    lost.add(2, 3, 11, End::Ok(None), 15);
    lost.read(4, Some(3), 20, 30);
    let report = check_lost_writes(&lost.history());
    assert!(matches!(
        &report.violations[..],
        [LostWrite::CounterAddsLost {
            final_value: 3,
            lower_bound: 5,
            ..
        }]
    ));
}

#[test]
fn a_counter_above_every_add_applied_once_shows_a_duplicate() {
    let mut h = Hist::default();
    h.add(1, 2, 0, End::Info, 10);
    with_request(&mut h, "r1");
    h.add(1, 2, 11, End::Ok(None), 20);
    with_request(&mut h, "r1");
    h.read(2, Some(4), 30, 40);
    let report = check_duplicates(&h.history(), &[]);
    assert!(matches!(
        &report.violations[..],
        [Duplicate::CounterTooHigh {
            final_value: 4,
            upper_bound: 2,
            ..
        }]
    ));
}

#[test]
fn retries_acknowledged_with_different_versions_were_applied_twice() {
    let mut h = Hist::default();
    acked(h.write(1, 7, 0, End::Ok(None), 10), 1, 1, 3);
    with_request(&mut h, "r1");
    acked(h.write(1, 7, 11, End::Ok(None), 20), 1, 1, 3);
    with_request(&mut h, "r1");
    assert_eq!(check_duplicates(&h.history(), &[]).verdict, Verdict::Pass);
    acked(h.write(1, 7, 21, End::Ok(None), 30), 1, 1, 4);
    with_request(&mut h, "r1");
    let report = check_duplicates(&h.history(), &[]);
    assert!(matches!(
        &report.violations[..],
        [Duplicate::AcknowledgedDifferently { attempts, .. }] if attempts.len() == 3
    ));
}

#[test]
fn apply_records_with_two_versions_for_one_request_id_fail() {
    let record = |request: &str, version| ApplyRecord {
        object: ObjectId::from("o1"),
        key: "x".into(),
        request_id: RequestId::from(request),
        version: Version::single(version),
    };
    let history = History::default();
    let once = [record("a", 1), record("a", 1), record("b", 2)];
    assert_eq!(check_duplicates(&history, &once).verdict, Verdict::Pass);
    let twice = [record("a", 1), record("b", 2), record("a", 3)];
    let report = check_duplicates(&history, &twice);
    assert!(matches!(
        &report.violations[..],
        [Duplicate::AppliedTwice { versions, .. }] if versions.len() == 2
    ));
}

#[test]
fn epochs_rising_with_real_time_pass() {
    let mut h = Hist::default();
    acked(h.write(1, 1, 0, End::Ok(None), 10), 1, 1, 1);
    acked(h.write(2, 2, 5, End::Ok(None), 30), 2, 2, 2);
    // Overlaps the epoch-2 write: either may have come first.
    acked(h.write(3, 3, 20, End::Ok(None), 40), 1, 1, 3);
    acked(h.write(1, 4, 50, End::Ok(None), 60), 2, 2, 4);
    let report = check_fencing(&h.history());
    assert_eq!(
        (report.verdict, report.acknowledged_writes),
        (Verdict::Pass, 4)
    );
}

#[test]
fn an_old_epoch_acknowledging_after_a_newer_one_fails() {
    let mut h = Hist::default();
    acked(h.write(1, 1, 0, End::Ok(None), 10), 2, 2, 1);
    acked(h.write(2, 2, 20, End::Ok(None), 30), 1, 1, 2);
    let report = check_fencing(&h.history());
    assert!(matches!(
        &report.violations[..],
        [FencingViolation::SupersededEpochAcknowledged { newer, stale, .. }]
            if newer.input_int() == Some(1) && stale.input_int() == Some(2)
    ));
}

#[test]
fn two_nodes_acknowledging_in_one_epoch_fail() {
    let mut h = Hist::default();
    acked(h.write(1, 1, 0, End::Ok(None), 10), 3, 1, 1);
    acked(h.write(2, 2, 0, End::Ok(None), 10), 3, 2, 2);
    let report = check_fencing(&h.history());
    assert!(matches!(
        &report.violations[..],
        [FencingViolation::TwoOwnersInOneEpoch { .. }]
    ));
}

#[test]
fn fencing_without_any_epoch_is_undecided() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    assert_eq!(check_fencing(&h.history()).verdict, Verdict::Unknown);
    let mut reads = Hist::default();
    reads.read(1, None, 0, 10);
    assert_eq!(check_fencing(&reads.history()).verdict, Verdict::Pass);
}

#[test]
fn cas_counts_as_a_write_for_lost_writes() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.op(
        1,
        OpName::Cas,
        "x",
        Some(Value::Pair(Some(1), Some(2))),
        20,
        End::Ok(None),
        30,
    );
    h.read(2, Some(1), 40, 50);
    assert_eq!(check_lost_writes(&h.history()).verdict, Verdict::Fail);
    let _ = int(0);
}

#[test]
fn simulated_correct_histories_pass_every_safety_checker() {
    for seed in 0..200 {
        for object in [SimObject::Register, SimObject::Counter] {
            let config = SimConfig {
                object,
                processes: 4,
                ops: 30,
                final_read: true,
                ..SimConfig::default()
            };
            let history =
                History::from_events(simulate_seeded(&config, seed)).expect("well formed");
            let context = format!("seed {seed} {object:?}");
            assert_eq!(
                check_lost_writes(&history).verdict,
                Verdict::Pass,
                "{context}"
            );
            assert_eq!(
                check_duplicates(&history, &[]).verdict,
                Verdict::Pass,
                "{context}"
            );
            assert_ne!(check_fencing(&history).verdict, Verdict::Fail, "{context}");
        }
    }
}

#[test]
fn a_retry_acknowledged_by_a_newer_owner_supersedes_the_old_epoch() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Info, 10);
    with_request(&mut h, "r1");
    acked(h.write(1, 1, 11, End::Ok(None), 20), 2, 2, 1);
    with_request(&mut h, "r1");
    acked(h.write(2, 2, 30, End::Ok(None), 40), 1, 1, 2);
    let report = check_fencing(&h.history());
    assert!(matches!(
        &report.violations[..],
        [FencingViolation::SupersededEpochAcknowledged { .. }]
    ));
}

#[test]
fn fencing_compares_acknowledging_owners_not_the_nodes_clients_called() {
    let mut h = Hist::default();
    acked(h.write(1, 1, 0, End::Ok(None), 10), 3, 1, 1);
    acked(h.write(2, 2, 0, End::Ok(None), 10), 3, 1, 2);
    // Sent to nodes 2 and 3, which forwarded to the owner, node 1.
    h.events[0].node = Some(larder_checker::NodeId(2));
    h.events[2].node = Some(larder_checker::NodeId(3));
    // Acknowledged without naming the owner: not compared.
    acked(h.write(3, 3, 0, End::Ok(None), 10), 3, 9, 3);
    h.events.last_mut().expect("just added").node = None;
    assert_eq!(check_fencing(&h.history()).verdict, Verdict::Pass);
}
