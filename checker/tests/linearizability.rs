//! Hand-written histories the linearizability checker must pass or fail.

mod support;

use std::time::Duration;

use larder_checker::{
    LinearizabilityLimits, OpName, UnknownReason, Value, Verdict, check_linearizability,
};
use support::{End, Hist, int};

fn verdict(hist: &Hist) -> Verdict {
    check_linearizability(&hist.history(), &LinearizabilityLimits::default())
        .expect("single-model keys")
        .verdict
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.write(1, 2, 20, End::Ok(None), 40);
    h.read(2, Some(1), 25, 30);
    h.read(3, Some(2), 26, 35);
    assert_eq!(verdict(&h), Verdict::Pass);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_fails_and_is_explained() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.write(1, 2, 20, End::Ok(None), 30);
    h.read(2, Some(1), 40, 50);
    let report =
        check_linearizability(&h.history(), &LinearizabilityLimits::default()).expect("register");
    assert_eq!(report.verdict, Verdict::Fail);
    let found = &report.violations[0];
    assert_eq!((found.object.0.as_str(), found.key.as_str()), ("o1", "x"));
    assert_eq!(found.stuck.op, OpName::Read);
    assert_eq!(found.stuck.output_int(), Some(1));
    assert_eq!(found.prefix_len, 2);
    assert_eq!(found.state, "Some(2)");
}

#[test]
fn operations_touching_at_one_instant_count_as_concurrent() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.read(2, None, 10, 12);
    assert_eq!(verdict(&h), Verdict::Pass);
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.read(2, None, 11, 12);
    assert_eq!(verdict(&h), Verdict::Fail);
}

#[test]
fn an_unknown_write_may_take_effect_after_its_timeout_was_recorded() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Info, 10);
    h.read(2, None, 20, 30);
    h.read(2, Some(1), 40, 50);
    assert_eq!(verdict(&h), Verdict::Pass);
    let mut never = Hist::default();
    never.write(1, 1, 0, End::Open, 0);
    never.read(2, None, 20, 30);
    assert_eq!(verdict(&never), Verdict::Pass);
}

#[test]
fn a_failed_write_must_not_be_seen() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Fail, 10);
    h.read(2, Some(1), 20, 30);
    assert_eq!(verdict(&h), Verdict::Fail);
}

#[test]
fn an_unknown_write_cannot_take_effect_before_it_was_invoked() {
    let mut h = Hist::default();
    h.read(2, Some(1), 0, 5);
    h.write(1, 1, 10, End::Info, 20);
    assert_eq!(verdict(&h), Verdict::Fail);
}

#[test]
fn an_acknowledged_cas_needs_its_expected_value() {
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
    h.read(2, Some(2), 40, 50);
    assert_eq!(verdict(&h), Verdict::Pass);
    let mut bad = Hist::default();
    bad.write(1, 1, 0, End::Ok(None), 10);
    bad.op(
        1,
        OpName::Cas,
        "x",
        Some(Value::Pair(Some(3), Some(2))),
        20,
        End::Ok(None),
        30,
    );
    assert_eq!(verdict(&bad), Verdict::Fail);
}

#[test]
fn counter_adds_return_values_the_order_can_explain() {
    let mut h = Hist::default();
    h.add(1, 2, 0, End::Ok(int(5)), 10);
    h.add(2, 3, 1, End::Ok(int(3)), 9);
    h.read(3, Some(5), 20, 30);
    assert_eq!(verdict(&h), Verdict::Pass);
}

#[test]
fn a_lost_acknowledged_add_fails() {
    let mut h = Hist::default();
    h.add(1, 2, 0, End::Ok(None), 10);
    h.add(1, 3, 20, End::Ok(None), 30);
    h.read(2, Some(2), 40, 50);
    assert_eq!(verdict(&h), Verdict::Fail);
}

#[test]
fn an_add_applied_twice_fails() {
    let mut h = Hist::default();
    h.add(1, 2, 0, End::Ok(int(2)), 10);
    h.read(2, Some(4), 20, 30);
    assert_eq!(verdict(&h), Verdict::Fail);
}

#[test]
fn each_key_is_judged_alone_and_the_bad_one_is_named() {
    let mut h = Hist::default();
    h.op(1, OpName::Write, "a", int(1), 0, End::Ok(None), 10);
    h.op(2, OpName::Read, "b", None, 20, End::Ok(int(1)), 30);
    h.op(3, OpName::Read, "a", None, 20, End::Ok(int(1)), 30);
    let report =
        check_linearizability(&h.history(), &LinearizabilityLimits::default()).expect("registers");
    assert_eq!(report.keys, 2);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].key, "b");
}

#[test]
fn running_out_of_budget_is_unknown_never_a_pass() {
    let mut h = Hist::default();
    for p in 0..6 {
        h.write(p, p as i64, p, End::Ok(None), 100);
    }
    h.read(9, Some(3), 200, 210);
    let steps = LinearizabilityLimits {
        steps_max: 3,
        ..LinearizabilityLimits::default()
    };
    let report = check_linearizability(&h.history(), &steps).expect("register");
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(
        report.undecided[0].reason,
        UnknownReason::StepBudget { steps: 3 }
    );
    let memory = LinearizabilityLimits {
        cache_bytes_max: 1,
        ..LinearizabilityLimits::default()
    };
    let report = check_linearizability(&h.history(), &memory).expect("register");
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(matches!(
        report.undecided[0].reason,
        UnknownReason::CacheFull { states: 1, .. }
    ));
    let time = LinearizabilityLimits {
        time_max: Duration::ZERO,
        ..LinearizabilityLimits::default()
    };
    let report = check_linearizability(&h.history(), &time).expect("register");
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.undecided[0].reason, UnknownReason::Timeout);
}

#[test]
fn a_key_mixing_counter_and_register_operations_is_an_error() {
    let mut h = Hist::default();
    h.add(1, 2, 0, End::Ok(None), 10);
    h.write(1, 2, 20, End::Ok(None), 30);
    assert!(check_linearizability(&h.history(), &LinearizabilityLimits::default()).is_err());
}
