//! WGL against brute force on small random histories: simulated correct ones (which must
//! be linearizable), mutated ones and chaotic ones (where the two must agree).

use larder_checker::simulate::{SimConfig, SimObject, SplitMix64, simulate};
use larder_checker::{
    CounterModel, Event, EventKind, History, LinearizabilityLimits, Model, Operation,
    RegisterModel, SearchLimits, SearchOutcome, TimedOp, Value, Verdict, check_brute_force,
    check_duplicates, check_linearizability, check_lost_writes, check_wgl, counter_op, register_op,
};
use proptest::prelude::*;

fn timed<O>(history: &History, convert: fn(&Operation) -> Option<O>) -> Vec<TimedOp<O>> {
    history
        .operations
        .iter()
        .filter_map(|op| {
            Some(TimedOp {
                op: convert(op)?,
                invoke_ns: op.invoke_ns,
                complete_ns: op.complete_ns,
            })
        })
        .collect()
}

/// (WGL says linearizable, brute force says linearizable).
fn both<M: Model>(model: &M, ops: &[TimedOp<M::Op>]) -> (bool, bool) {
    let (outcome, _) = check_wgl(model, ops, &SearchLimits::default());
    let wgl = match outcome {
        SearchOutcome::Linearizable => true,
        SearchOutcome::NotLinearizable(found) => {
            assert!(found.stuck < ops.len());
            assert!(found.prefix.len() < ops.len());
            false
        }
        SearchOutcome::Unknown(reason) => panic!("small history undecided: {reason:?}"),
    };
    (wgl, check_brute_force(model, ops))
}

fn verdicts(events: Vec<Event>, object: SimObject) -> (bool, bool) {
    let history = History::from_events(events).expect("generated histories are well formed");
    match object {
        SimObject::Register => both(&RegisterModel, &timed(&history, register_op)),
        SimObject::Counter => both(&CounterModel, &timed(&history, counter_op)),
    }
}

fn generate(config: &SimConfig, choices: &[u32], seed: u64) -> Vec<Event> {
    let mut given = choices.iter();
    let mut rng = SplitMix64(seed);
    simulate(config, &mut |n| match given.next() {
        Some(c) => c % n,
        None => rng.below(n),
    })
}

/// Changes one completion: another result, or another kind.
fn mutate(events: &mut [Event], pick: usize, how: u32) {
    let completions: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].kind != EventKind::Invoke)
        .collect();
    if completions.is_empty() {
        return;
    }
    let event = &mut events[completions[pick % completions.len()]];
    match how % 4 {
        0 => event.value = Some(Value::Int(i64::from(how % 5))),
        1 => event.value = None,
        2 => event.kind = EventKind::Ok,
        _ => event.kind = EventKind::Info,
    }
}

/// Cases per property: `PROPTEST_CASES`, else 1000 (about a second in debug).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn config() -> impl Strategy<Value = SimConfig> {
    (any::<bool>(), 1u64..=5, 0usize..=9, any::<bool>()).prop_map(
        |(counter, processes, ops, unique_values)| SimConfig {
            object: if counter {
                SimObject::Counter
            } else {
                SimObject::Register
            },
            processes,
            ops,
            unique_values,
            final_read: false,
            chaos: false,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn simulated_histories_are_linearizable_to_both(
        config in config(),
        choices in prop::collection::vec(0u32..1000, 0..200),
        seed in any::<u64>(),
    ) {
        let events = generate(&config, &choices, seed);
        prop_assert_eq!(verdicts(events, config.object), (true, true));
    }

    #[test]
    fn wgl_agrees_with_brute_force_on_mutated_histories(
        config in config(),
        choices in prop::collection::vec(0u32..1000, 0..200),
        seed in any::<u64>(),
        mutations in prop::collection::vec((any::<usize>(), any::<u32>()), 1..3),
    ) {
        let mut events = generate(&config, &choices, seed);
        for (pick, how) in mutations {
            mutate(&mut events, pick, how);
        }
        let (wgl, brute) = verdicts(events, config.object);
        prop_assert_eq!(wgl, brute);
    }

    #[test]
    fn wgl_agrees_with_brute_force_on_chaotic_histories(
        config in config(),
        choices in prop::collection::vec(0u32..1000, 0..200),
        seed in any::<u64>(),
    ) {
        let config = SimConfig { chaos: true, unique_values: false, ..config };
        let events = generate(&config, &choices, seed);
        let (wgl, brute) = verdicts(events, config.object);
        prop_assert_eq!(wgl, brute);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// A lost write or a duplicate found from final reads is also a linearizability
    /// violation; the reverse need not hold.
    #[test]
    fn final_read_violations_are_linearizability_violations(
        config in config(),
        choices in prop::collection::vec(0u32..1000, 0..200),
        seed in any::<u64>(),
        chaos in any::<bool>(),
    ) {
        let config = SimConfig { chaos, final_read: true, ..config };
        let history = History::from_events(generate(&config, &choices, seed))
            .expect("generated histories are well formed");
        let lost = check_lost_writes(&history).verdict;
        let duplicate = check_duplicates(&history, &[]).verdict;
        let linearizable = check_linearizability(&history, &LinearizabilityLimits::default())
            .expect("one model per key")
            .verdict;
        if lost == Verdict::Fail || duplicate == Verdict::Fail {
            prop_assert_eq!(linearizable, Verdict::Fail);
        }
        if !chaos {
            prop_assert_eq!((lost, duplicate, linearizable), (Verdict::Pass, Verdict::Pass, Verdict::Pass));
        }
    }
}

/// Larger correct histories (beyond brute force) must pass WGL quickly.
#[test]
fn larger_simulated_histories_are_linearizable() {
    for seed in 0..40 {
        for object in [SimObject::Register, SimObject::Counter] {
            let config = SimConfig {
                object,
                processes: 5,
                ops: 150,
                ..SimConfig::default()
            };
            let events = generate(&config, &[], seed);
            let history = History::from_events(events).expect("well formed");
            let (outcome, _) = match object {
                SimObject::Register => {
                    let (o, s) = check_wgl(
                        &RegisterModel,
                        &timed(&history, register_op),
                        &SearchLimits::default(),
                    );
                    (o.map_state(|_| ()), s)
                }
                SimObject::Counter => {
                    let (o, s) = check_wgl(
                        &CounterModel,
                        &timed(&history, counter_op),
                        &SearchLimits::default(),
                    );
                    (o.map_state(|_| ()), s)
                }
            };
            assert_eq!(
                outcome,
                SearchOutcome::Linearizable,
                "seed {seed} {object:?}"
            );
        }
    }
}

/// A 1,000-operation register history with a corrupted late read is found not
/// linearizable (not left undecided), and the uncorrupted one passes.
#[test]
fn thousand_operation_register_histories_are_decided() {
    for seed in 0..3 {
        let config = SimConfig {
            object: SimObject::Register,
            processes: 5,
            ops: 1000,
            ..SimConfig::default()
        };
        let mut events = generate(&config, &[], seed);
        let limits = LinearizabilityLimits::default();
        let history = History::from_events(events.clone()).expect("well formed");
        let report = check_linearizability(&history, &limits).expect("register");
        assert_eq!(report.verdict, Verdict::Pass, "seed {seed}");
        let read = events
            .iter_mut()
            .rev()
            .find(|e| e.kind == EventKind::Ok && e.value.is_some())
            .expect("some ok read");
        read.value = Some(Value::Int(-1));
        let history = History::from_events(events).expect("well formed");
        let report = check_linearizability(&history, &limits).expect("register");
        assert_eq!(report.verdict, Verdict::Fail, "seed {seed}");
        assert_eq!(report.violations[0].stuck.output_int(), Some(-1));
    }
}
