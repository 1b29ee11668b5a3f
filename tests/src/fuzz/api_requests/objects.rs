//! `larder.v1.Objects` requests, checked by `larder_objects::grpc::requests`, then run on
//! an empty owner.

use larder_objects::grpc::requests::{self, ObjectCall};
use larder_objects::grpc::status::object_status;
use larder_objects::op::{Op, Precondition, Reply, TxnWrite};
use larder_objects::{ObjectId, ObjectLimits, ObjectState, REQUEST_ID_BYTES_MAX};
use larder_proto::v1 as pb;
use tonic::Status;

use super::{decode_or_return, refused};

pub fn object_limits(small: bool) -> ObjectLimits {
    if small {
        crate::fuzz::small_limits()
    } else {
        ObjectLimits::default()
    }
}

/// The id a call was accepted for is the one its reference names, and a valid one.
fn object_id(object: &pb::ObjectRef, id: &ObjectId) {
    let named = match &object.key {
        Some(pb::object_ref::Key::Name(text) | pb::object_ref::Key::Id(text)) => text,
        None => panic!("a call without a name or id was accepted"),
    };
    assert_eq!(id.as_str(), named);
    assert!((1..=larder_objects::OBJECT_ID_BYTES_MAX).contains(&named.len()));
    assert!(named.chars().all(|c| c.is_ascii_graphic() && c != '/'));
}

/// What the owner accepted is within the limits it checked.
fn op_within(op: &Op, limits: &ObjectLimits) {
    let key_ok = |key: &Vec<u8>| (1..=limits.key_bytes_max).contains(&key.len());
    let batch_ok = |n: usize| (1..=limits.batch_keys_max).contains(&n);
    let name_ok = |name: &String| (1..=limits.alarm_name_bytes_max).contains(&name.len());
    match op {
        Op::Get { keys } | Op::Delete { keys } => {
            assert!(batch_ok(keys.len()) && keys.iter().all(key_ok));
        }
        Op::Put { entries } => {
            assert!(batch_ok(entries.len()));
            assert!(
                entries
                    .iter()
                    .all(|(k, v)| key_ok(k) && v.len() <= limits.value_bytes_max)
            );
        }
        Op::List(query) => assert!(query.limit as usize <= limits.list_page_max),
        Op::Add { key, .. } => assert!(key_ok(key)),
        Op::Transaction {
            preconditions,
            writes,
        } => {
            assert!(batch_ok(writes.len()));
            assert!(preconditions.len() <= limits.batch_keys_max);
            assert!(preconditions.iter().all(|p| match p {
                Precondition::VersionEquals { key, .. }
                | Precondition::Absent { key }
                | Precondition::ValueEquals { key, .. } => key_ok(key),
            }));
            assert!(writes.iter().all(|w| match w {
                TxnWrite::Put { key, value } =>
                    key_ok(key) && value.len() <= limits.value_bytes_max,
                TxnWrite::Delete { key } | TxnWrite::Add { key, .. } => key_ok(key),
            }));
        }
        Op::SetAlarm { name, payload, .. } => {
            assert!(name_ok(name) && payload.len() <= limits.message_bytes_max);
        }
        Op::DeleteAlarms { names } => assert!(batch_ok(names.len()) && names.iter().all(name_ok)),
        Op::Publish { payload, .. } => assert!(payload.len() <= limits.message_bytes_max),
        Op::DeleteAll | Op::Stats | Op::ListAlarms | Op::FireAlarms { .. } | Op::Events { .. } => {}
    }
}

/// Runs an accepted call on an (empty) owner, as the owner would, and checks the answer.
fn object_call(result: Result<ObjectCall, Status>, limits: &ObjectLimits) -> Option<Reply> {
    let call = match result {
        Ok(call) => call,
        Err(status) => {
            refused(&status);
            return None;
        }
    };
    object_id(&call.object, &call.id);
    assert!(call.request_id.as_ref().is_none_or(|id| !id.is_empty()));
    let owner = ObjectState::default();
    match owner.execute_request(&call.op, call.request_id.as_deref(), limits) {
        Ok((reply, mutations)) => {
            op_within(&call.op, limits);
            // An object never written answers a non-placing call from the empty state,
            // which must then write nothing (the host does not place it).
            assert!(call.op.places() || mutations.is_empty(), "{:?}", call.op);
            if call.op.is_write()
                && let Some(id) = &call.request_id
            {
                assert!(id.len() <= REQUEST_ID_BYTES_MAX);
            }
            let mut replica = ObjectState::default();
            if !mutations.is_empty() {
                assert_eq!(replica.apply(&mutations), 1);
            }
            Some(reply)
        }
        Err(err) => {
            refused(&object_status(err));
            None
        }
    }
}

/// `larder.v1.Objects` requests (`which` picks one of 17).
pub fn objects(which: u8, bytes: &[u8], small: bool) {
    let limits = object_limits(small);
    match which % 17 {
        which @ 0..9 => data_call(which, bytes, &limits),
        which => placement_or_event_call(which, bytes, &limits),
    }
}

/// Storage calls, listings and inspection (`which` from 0 to 8).
fn data_call(which: u8, bytes: &[u8], limits: &ObjectLimits) {
    match which {
        0 => {
            let req = decode_or_return!(pb::ObjectGetRequest, bytes);
            let keys = req.keys.len();
            if let Some(Reply::Values(values)) = object_call(requests::get(req), limits) {
                assert_eq!(values.len(), keys);
            }
        }
        1 => drop(object_call(
            requests::put(decode_or_return!(pb::ObjectPutRequest, bytes)),
            limits,
        )),
        2 => drop(object_call(
            requests::delete(decode_or_return!(pb::ObjectDeleteRequest, bytes)),
            limits,
        )),
        3 => {
            let req = decode_or_return!(pb::ObjectListRequest, bytes);
            if let Some(Reply::List { entries, more }) = object_call(requests::list(req), limits) {
                assert!(entries.is_empty() && !more, "an empty object listed keys");
            }
        }
        4 => drop(object_call(
            requests::delete_all(decode_or_return!(pb::ObjectDeleteAllRequest, bytes)),
            limits,
        )),
        5 => {
            let req = decode_or_return!(pb::ObjectAddRequest, bytes);
            let delta = req.delta;
            if let Some(Reply::Added { value, .. }) = object_call(requests::add(req), limits) {
                assert_eq!(value, delta, "an add on an absent key starts from 0");
            }
        }
        6 => {
            let req = decode_or_return!(pb::ObjectTransactionRequest, bytes);
            let writes = req.writes.len();
            if let Some(Reply::Transaction { results, .. }) =
                object_call(requests::transaction(req), limits)
            {
                assert_eq!(results.len(), writes);
            }
        }
        7 => {
            let req = decode_or_return!(pb::ListObjectsRequest, bytes);
            match requests::list_objects_limit(&req, limits) {
                Ok(limit) => {
                    assert!((1..=limits.list_page_max).contains(&limit));
                    assert!(req.limit == 0 || limit == req.limit as usize);
                }
                Err(status) => refused(&status),
            }
        }
        8 => drop(object_call(
            requests::inspect(decode_or_return!(pb::InspectRequest, bytes)),
            limits,
        )),
        _ => unreachable!("data calls are 0 to 8"),
    }
}

/// Moves, drains, alarms, events and subscriptions (`which` from 9 to 16).
fn placement_or_event_call(which: u8, bytes: &[u8], limits: &ObjectLimits) {
    let now = larder_base::Clock::now_ms(&larder_base::SystemClock);
    match which {
        9 => match requests::move_object(decode_or_return!(pb::MoveRequest, bytes)) {
            Ok((object, id, _)) => object_id(&object, &id),
            Err(status) => refused(&status),
        },
        10 => drop(decode_or_return!(pb::DrainRequest, bytes)),
        11 => {
            let req = decode_or_return!(pb::SetAlarmRequest, bytes);
            let when = req.when;
            if let Some(Reply::Written { version }) =
                object_call(requests::set_alarm(req, now), limits)
            {
                assert_eq!(version, 1);
                assert!(when.is_some());
            }
        }
        12 => drop(object_call(
            requests::delete_alarm(decode_or_return!(pb::DeleteAlarmRequest, bytes)),
            limits,
        )),
        13 => match requests::list_alarms(decode_or_return!(pb::ListAlarmsRequest, bytes)) {
            Ok((call, _)) => drop(object_call(Ok(call), limits)),
            Err(status) => refused(&status),
        },
        14 => {
            let req = decode_or_return!(pb::PublishRequest, bytes);
            if let Some(Reply::Published { seq, .. }) =
                object_call(requests::publish(req, now), limits)
            {
                assert_eq!(seq, 1);
            }
        }
        15 => match requests::subscribe(decode_or_return!(pb::SubscribeRequest, bytes)) {
            Ok(sub) => {
                object_id(&sub.object, &sub.id);
                // What the subscription asks the owner for.
                let events = ObjectState::default()
                    .execute(
                        &Op::Events {
                            after: sub.after_seq,
                        },
                        limits,
                    )
                    .expect("an events query is always answered");
                assert!(matches!(events.0, Reply::Events { .. }));
            }
            Err(status) => refused(&status),
        },
        _ => drop(decode_or_return!(pb::SubscribeNamespaceRequest, bytes)),
    }
}
