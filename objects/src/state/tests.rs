//! The engine: every operation, its limits, and replicas ending equal.

use super::*;
use crate::op::{EventKind, ListQuery, Precondition, TxnWrite};

fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn run(state: &mut ObjectState, op: Op) -> Result<Reply, ObjectError> {
    let (reply, mutations) = state.execute(&op, &ObjectLimits::default())?;
    if op.is_write() {
        state.apply(&mutations);
    }
    Ok(reply)
}

#[test]
fn put_get_delete_and_versions() {
    let mut st = ObjectState::default();
    assert_eq!(
        run(
            &mut st,
            Op::Put {
                entries: vec![(k("a"), k("1")), (k("b"), k("2"))]
            }
        ),
        Ok(Reply::Written { version: 1 })
    );
    run(
        &mut st,
        Op::Put {
            entries: vec![(k("a"), k("3"))],
        },
    )
    .expect("put");
    let Ok(Reply::Values(values)) = run(
        &mut st,
        Op::Get {
            keys: vec![k("a"), k("b"), k("c")],
        },
    ) else {
        panic!()
    };
    assert_eq!(
        values
            .iter()
            .map(|v| (v.value.clone(), v.version))
            .collect::<Vec<_>>(),
        vec![(Some(k("3")), 2), (Some(k("2")), 1), (None, 0)]
    );
    run(&mut st, Op::Delete { keys: vec![k("a")] }).expect("delete");
    assert_eq!(st.len(), 1);
    run(&mut st, Op::DeleteAll).expect("delete all");
    assert!(st.is_empty());
    assert_eq!(st.version(), 4);
}

#[test]
fn add_counts_and_refuses_non_integers() {
    let mut st = ObjectState::default();
    for _ in 0..5 {
        run(
            &mut st,
            Op::Add {
                key: k("n"),
                delta: 2,
            },
        )
        .expect("add");
    }
    assert_eq!(
        run(
            &mut st,
            Op::Add {
                key: k("n"),
                delta: -1
            }
        ),
        Ok(Reply::Added {
            value: 9,
            version: 6
        })
    );
    run(
        &mut st,
        Op::Put {
            entries: vec![(k("s"), k("text"))],
        },
    )
    .expect("put");
    assert!(matches!(
        run(
            &mut st,
            Op::Add {
                key: k("s"),
                delta: 1
            }
        ),
        Err(ObjectError::NotAnInteger { .. })
    ));
    run(
        &mut st,
        Op::Put {
            entries: vec![(k("m"), i64::MAX.to_string().into_bytes())],
        },
    )
    .expect("put");
    assert!(matches!(
        run(
            &mut st,
            Op::Add {
                key: k("m"),
                delta: 1
            }
        ),
        Err(ObjectError::Overflow { .. })
    ));
}

#[test]
fn transactions_apply_all_or_nothing() {
    let mut st = ObjectState::default();
    run(
        &mut st,
        Op::Put {
            entries: vec![(k("stock"), k("1"))],
        },
    )
    .expect("put");
    let buy = Op::Transaction {
        preconditions: vec![
            Precondition::VersionEquals {
                key: k("stock"),
                version: 1,
            },
            Precondition::Absent { key: k("order") },
        ],
        writes: vec![
            TxnWrite::Add {
                key: k("stock"),
                delta: -1,
            },
            TxnWrite::Put {
                key: k("order"),
                value: k("o1"),
            },
            TxnWrite::Add {
                key: k("stock"),
                delta: 0,
            },
        ],
    };
    let Ok(Reply::Transaction { version, results }) = run(&mut st, buy.clone()) else {
        panic!()
    };
    assert_eq!(version, 2);
    assert_eq!(results, vec![Some(k("0")), Some(k("o1")), Some(k("0"))]);
    // The same transaction again: the version moved on, so nothing applies.
    let before = st.clone();
    assert!(matches!(
        run(&mut st, buy),
        Err(ObjectError::PreconditionFailed { index: 0, .. })
    ));
    assert_eq!(st, before);
    let value_check = Op::Transaction {
        preconditions: vec![Precondition::ValueEquals {
            key: k("order"),
            value: k("o1"),
        }],
        writes: vec![TxnWrite::Delete { key: k("order") }],
    };
    run(&mut st, value_check).expect("value precondition holds");
    assert_eq!(st.len(), 1);
}

#[test]
fn list_ranges_prefixes_reverse_and_pages() {
    let mut st = ObjectState::default();
    let entries = ["a1", "a2", "a3", "b1", "b2"]
        .iter()
        .map(|s| (k(s), k("v")))
        .collect();
    run(&mut st, Op::Put { entries }).expect("put");
    let keys = |reply: Reply| match reply {
        Reply::List { entries, more } => (
            entries
                .into_iter()
                .map(|e| String::from_utf8(e.key).expect("utf8"))
                .collect::<Vec<_>>(),
            more,
        ),
        other => panic!("{other:?}"),
    };
    let list = |q: ListQuery| {
        keys(
            st.execute(&Op::List(q), &ObjectLimits::default())
                .expect("list")
                .0,
        )
    };
    assert_eq!(
        list(ListQuery {
            prefix: k("a"),
            ..Default::default()
        }),
        (vec!["a1".into(), "a2".into(), "a3".into()], false)
    );
    assert_eq!(
        list(ListQuery {
            prefix: k("a"),
            reverse: true,
            limit: 2,
            ..Default::default()
        }),
        (vec!["a3".into(), "a2".into()], true)
    );
    assert_eq!(
        list(ListQuery {
            start: k("a2"),
            end: k("b2"),
            ..Default::default()
        }),
        (vec!["a2".into(), "a3".into(), "b1".into()], false)
    );
    assert_eq!(
        list(ListQuery {
            start: k("b"),
            end: k("a"),
            ..Default::default()
        })
        .0
        .len(),
        0
    );
}

#[test]
fn limits_are_named() {
    let st = ObjectState::default();
    let limits = ObjectLimits::default();
    let err = st
        .execute(
            &Op::Put {
                entries: vec![(vec![b'k'; 2049], k("v"))],
            },
            &limits,
        )
        .expect_err("key");
    assert!(err.to_string().contains("objects.key_bytes_max"), "{err}");
    let err = st
        .execute(
            &Op::Put {
                entries: vec![(k("k"), vec![0; 1024 * 1024 + 1])],
            },
            &limits,
        )
        .expect_err("value");
    assert!(err.to_string().contains("objects.value_bytes_max"), "{err}");
    let keys = (0..129).map(|i| format!("k{i}").into_bytes()).collect();
    let err = st.execute(&Op::Get { keys }, &limits).expect_err("batch");
    assert!(err.to_string().contains("objects.batch_keys_max"), "{err}");
    let err = st
        .execute(
            &Op::List(ListQuery {
                limit: 1001,
                ..Default::default()
            }),
            &limits,
        )
        .expect_err("page");
    assert!(err.to_string().contains("objects.list_page_max"), "{err}");
}

#[test]
fn a_retried_request_id_applies_once() {
    let limits = ObjectLimits::default();
    let mut st = ObjectState::default();
    let add = Op::Add {
        key: k("n"),
        delta: 1,
    };
    for _ in 0..3 {
        let (reply, mutations) = st
            .execute_request(&add, Some("req-1"), &limits)
            .expect("add");
        assert_eq!(
            reply,
            Reply::Added {
                value: 1,
                version: 1
            }
        );
        if !mutations.is_empty() {
            st.apply(&mutations);
        }
    }
    assert_eq!(st.version(), 1);
    let (reply, mutations) = st
        .execute_request(&add, Some("req-2"), &limits)
        .expect("add");
    st.apply(&mutations);
    assert_eq!(
        reply,
        Reply::Added {
            value: 2,
            version: 2
        }
    );
    // Reads ignore ids; ids are bounded.
    let get = Op::Get { keys: vec![k("n")] };
    assert!(
        st.execute_request(&get, Some("req-1"), &limits)
            .expect("get")
            .1
            .is_empty()
    );
    assert!(
        st.execute_request(&add, Some(&"x".repeat(129)), &limits)
            .is_err()
    );
    for i in 0..(REQUEST_IDS_KEPT + 10) {
        let (_, m) = st
            .execute_request(&add, Some(&format!("bulk-{i}")), &limits)
            .expect("add");
        st.apply(&m);
    }
    assert_eq!(st.recent().len(), REQUEST_IDS_KEPT);
}

#[test]
fn replicas_applying_the_owners_mutations_end_equal() {
    let limits = ObjectLimits::default();
    let mut owner = ObjectState::default();
    let mut replica = ObjectState::default();
    let ops = [
        Op::Put {
            entries: vec![(k("x"), k("1"))],
        },
        Op::Add {
            key: k("n"),
            delta: 5,
        },
        Op::Delete { keys: vec![k("x")] },
        Op::Transaction {
            preconditions: vec![],
            writes: vec![TxnWrite::Add {
                key: k("n"),
                delta: 1,
            }],
        },
    ];
    for op in ops {
        let (_, mutations) = owner.execute(&op, &limits).expect("execute");
        assert_eq!(owner.apply(&mutations), replica.apply(&mutations));
    }
    assert_eq!(owner, replica);
}

fn alarm(name: &str, at_ms: u64) -> Op {
    Op::SetAlarm {
        name: name.into(),
        at_ms,
        payload: name.as_bytes().to_vec(),
    }
}

fn events_after(st: &ObjectState, after: u64) -> (Vec<Event>, u64, u64) {
    match st.execute(&Op::Events { after: Some(after) }, &ObjectLimits::default()) {
        Ok((
            Reply::Events {
                events,
                last_seq,
                oldest_seq,
            },
            _,
        )) => (events, last_seq, oldest_seq),
        other => panic!("{other:?}"),
    }
}

#[test]
fn due_alarms_fire_once_into_the_event_log() {
    let mut st = ObjectState::default();
    run(&mut st, alarm("late", 300)).expect("set");
    run(&mut st, alarm("early", 100)).expect("set");
    run(&mut st, alarm("early", 200)).expect("replace");
    assert_eq!(st.next_alarm_ms(), Some(200));
    assert_eq!(
        run(&mut st, Op::FireAlarms { now_ms: 150 }),
        Ok(Reply::Fired { count: 0 })
    );
    assert_eq!(
        run(&mut st, Op::FireAlarms { now_ms: 250 }),
        Ok(Reply::Fired { count: 1 })
    );
    // Fired alarms are gone: firing again at a later time fires only the other.
    assert_eq!(
        run(&mut st, Op::FireAlarms { now_ms: 1000 }),
        Ok(Reply::Fired { count: 1 })
    );
    assert!(st.alarms().is_empty());
    let (events, last, oldest) = events_after(&st, 0);
    assert_eq!((last, oldest), (2, 1));
    let fired: Vec<(u64, String, u64)> = events
        .into_iter()
        .map(|e| match e.kind {
            EventKind::AlarmFired {
                name, scheduled_ms, ..
            } => (e.seq, name, scheduled_ms),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        fired,
        vec![(1, "early".to_string(), 200), (2, "late".to_string(), 300)]
    );
}

#[test]
fn alarm_limits_and_delete_all() {
    let limits = ObjectLimits {
        alarms_max: 2,
        ..ObjectLimits::default()
    };
    let mut st = ObjectState::default();
    for name in ["a", "b"] {
        let (_, m) = st.execute(&alarm(name, 5), &limits).expect("set");
        st.apply(&m);
    }
    assert_eq!(
        st.execute(&alarm("c", 5), &limits).map(|_| ()),
        Err(ObjectError::TooManyAlarms(2))
    );
    // Replacing an existing alarm is not a new one.
    assert!(st.execute(&alarm("a", 9), &limits).is_ok());
    let long = "x".repeat(257);
    assert!(matches!(
        st.execute(&alarm(&long, 5), &limits),
        Err(ObjectError::InvalidArgument(m)) if m.contains("alarm_name_bytes_max")
    ));
    let big = Op::Publish {
        payload: vec![0; 64 * 1024 + 1],
        at_ms: 1,
    };
    assert!(matches!(
        st.execute(&big, &limits),
        Err(ObjectError::InvalidArgument(m)) if m.contains("message_bytes_max")
    ));
    run(
        &mut st,
        Op::DeleteAlarms {
            names: vec!["a".into()],
        },
    )
    .expect("delete");
    assert_eq!(st.alarms().len(), 1);
    run(&mut st, Op::DeleteAll).expect("delete all");
    assert!(st.alarms().is_empty());
}

#[test]
fn the_event_log_keeps_its_last_events_within_bounds() {
    let limits = ObjectLimits::default();
    let mut owner = ObjectState::default();
    let mut replica = ObjectState::default();
    for i in 0..(EVENTS_KEPT as u64 + 10) {
        let op = Op::Publish {
            payload: i.to_string().into_bytes(),
            at_ms: i,
        };
        let (reply, mutations) = owner.execute(&op, &limits).expect("publish");
        assert!(matches!(reply, Reply::Published { seq, .. } if seq == i + 1));
        owner.apply(&mutations);
        replica.apply(&mutations);
    }
    assert_eq!(owner, replica);
    let (events, last, oldest) = events_after(&owner, 0);
    assert_eq!(events.len(), EVENTS_KEPT);
    assert_eq!((last, oldest), (EVENTS_KEPT as u64 + 10, 11));
    // Big messages: the byte bound applies, the newest always stays.
    for _ in 0..20 {
        let op = Op::Publish {
            payload: vec![7; 64 * 1024],
            at_ms: 0,
        };
        let (_, mutations) = owner.execute(&op, &limits).expect("publish");
        owner.apply(&mutations);
    }
    let kept: usize = owner.events().iter().map(Event::size).sum();
    assert!(kept <= EVENT_BYTES_KEPT, "{kept}");
    assert_eq!(owner.last_event_seq(), EVENTS_KEPT as u64 + 30);
    let (after_last, _, _) = events_after(&owner, owner.last_event_seq());
    assert!(after_last.is_empty());
}
