//! The `api_requests` target's checks, one per service: a request decoded as prost
//! decodes it goes through the services' own pure checks (`larder_kv::validate`,
//! `larder_objects::grpc::requests` then the owner's `execute_request`,
//! `larder_node::grpc::requests`). A refusal must be a client's error with a message;
//! an accepted request must be within the limits it was checked against.

use larder_directory::DirectoryRequest;
use larder_kv::grpc::status::kv_status;
use larder_kv::{KvConfig, KvError, Mutation as KvMutation, PutItem, token, validate};
use larder_node::grpc::requests as admin;
use larder_objects::grpc::requests::{self, ObjectCall};
use larder_objects::grpc::status::object_status;
use larder_objects::op::{Op, Precondition, Reply, TxnWrite};
use larder_objects::{ObjectId, ObjectLimits, ObjectState, REQUEST_ID_BYTES_MAX};
use larder_proto::v1 as pb;
use larder_store::codec;
use prost::Message;
use tonic::{Code, Status};

/// Checks a refusal: a client's error (never INTERNAL or UNKNOWN), saying why.
fn refused(status: &Status) {
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::ResourceExhausted
                | Code::NotFound
        ),
        "a request was refused with {:?}: {}",
        status.code(),
        status.message()
    );
    assert!(!status.message().is_empty(), "a refusal without a message");
}

/// Small limits, so inputs reach them; the defaults otherwise.
pub fn kv_config(small: bool) -> KvConfig {
    if small {
        KvConfig {
            key_bytes_max: 8,
            value_bytes_max: 16,
            metadata_bytes_max: 8,
            get_many_keys_max: 4,
            write_many_items_max: 4,
            list_page_max: 5,
            ..KvConfig::default()
        }
    } else {
        KvConfig::default()
    }
}

pub fn object_limits(small: bool) -> ObjectLimits {
    if small {
        super::small_limits()
    } else {
        ObjectLimits::default()
    }
}

fn kv_key_ok(config: &KvConfig, key: &[u8]) -> bool {
    (1..=config.key_bytes_max).contains(&key.len())
}

/// A consistency or resume token as the KV reads it: empty is none.
fn kv_token(bytes: &[u8], namespace: &str) -> Result<(), KvError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let wanted = token::restrict(&token::decode(bytes)?, namespace);
    assert!(
        wanted.0.keys().all(|ns| ns == namespace),
        "a restricted token names another namespace"
    );
    Ok(())
}

fn kv_outcome<T>(result: Result<T, KvError>, accepted: impl FnOnce(T)) {
    match result {
        Ok(value) => accepted(value),
        Err(err) => refused(&kv_status(err)),
    }
}

/// The writes a put or delete was accepted as: one per item, in order, within limits.
fn kv_writes(config: &KvConfig, keys: &[Vec<u8>], mutations: &[KvMutation], now_ms: u64) {
    assert_eq!(mutations.len(), keys.len());
    assert!((1..=config.write_many_items_max).contains(&mutations.len()));
    for (mutation, asked) in mutations.iter().zip(keys) {
        match mutation {
            KvMutation::Put {
                key,
                value,
                metadata,
                expires_at_ms,
            } => {
                assert_eq!(key, asked);
                assert!(kv_key_ok(config, key));
                assert!(value.len() <= config.value_bytes_max);
                assert!(metadata.len() <= config.metadata_bytes_max);
                assert!(
                    expires_at_ms.is_none_or(|at| at > now_ms),
                    "expires in the past"
                );
            }
            KvMutation::Delete { key } => {
                assert_eq!(key, asked);
                assert!(kv_key_ok(config, key));
            }
        }
    }
}

fn kv_puts(config: &KvConfig, items: Vec<PutItem>) {
    let now = larder_kv::now_ms();
    let keys: Vec<Vec<u8>> = items.iter().map(|item| item.key.clone()).collect();
    let expiring: Vec<bool> = items
        .iter()
        .map(|item| item.expires_at_ms != 0 || item.ttl_ms != 0)
        .collect();
    kv_outcome(validate::puts(config, items, now), |mutations| {
        kv_writes(config, &keys, &mutations, now);
        for (mutation, expiring) in mutations.iter().zip(expiring) {
            if let KvMutation::Put { expires_at_ms, .. } = mutation {
                assert_eq!(expires_at_ms.is_some(), expiring);
            }
        }
    });
}

/// `larder.v1.Kv` requests (`which` picks one of 8).
pub fn kv(which: u8, bytes: &[u8], small: bool) {
    let config = kv_config(small);
    match which % 8 {
        0 => {
            let Ok(req) = pb::GetRequest::decode(bytes) else {
                return;
            };
            let result = validate::key(&config, &req.key)
                .and_then(|()| kv_token(&req.consistency_token, &req.namespace));
            kv_outcome(result, |()| assert!(kv_key_ok(&config, &req.key)));
        }
        1 => {
            let Ok(req) = pb::GetManyRequest::decode(bytes) else {
                return;
            };
            let result = validate::get_many(&config, &req.keys)
                .and_then(|()| kv_token(&req.consistency_token, &req.namespace));
            kv_outcome(result, |()| {
                assert!((1..=config.get_many_keys_max).contains(&req.keys.len()));
                assert!(req.keys.iter().all(|key| kv_key_ok(&config, key)));
            });
        }
        2 => {
            let Ok(req) = pb::PutRequest::decode(bytes) else {
                return;
            };
            let (_, item) = larder_kv::grpc::convert::put_request(req);
            kv_puts(&config, vec![item]);
        }
        3 => {
            let Ok(req) = pb::PutManyRequest::decode(bytes) else {
                return;
            };
            let (_, items) = larder_kv::grpc::convert::put_many_request(req);
            kv_puts(&config, items);
        }
        4 | 5 => {
            let keys = if which % 8 == 4 {
                let Ok(req) = pb::DeleteRequest::decode(bytes) else {
                    return;
                };
                vec![req.key]
            } else {
                let Ok(req) = pb::DeleteManyRequest::decode(bytes) else {
                    return;
                };
                req.keys
            };
            let asked = keys.clone();
            kv_outcome(validate::deletes(&config, keys), |mutations| {
                kv_writes(&config, &asked, &mutations, larder_kv::now_ms());
            });
        }
        6 => {
            let Ok(req) = pb::ListRequest::decode(bytes) else {
                return;
            };
            let result = validate::list(&config, &req.prefix, &req.cursor, req.limit)
                .and_then(|limit| kv_token(&req.consistency_token, &req.namespace).map(|()| limit));
            kv_outcome(result, |limit| {
                assert!((1..=config.list_page_max).contains(&limit));
                assert!(req.limit == 0 || limit == req.limit as usize);
                assert!(req.prefix.len() <= config.key_bytes_max);
                assert!(req.cursor.len() <= config.key_bytes_max);
            });
        }
        _ => {
            let Ok(req) = pb::WatchRequest::decode(bytes) else {
                return;
            };
            let result = validate::watch_prefix(&config, &req.prefix)
                .and_then(|()| kv_token(&req.resume_token, &req.namespace));
            kv_outcome(result, |()| {
                assert!(req.prefix.len() <= config.key_bytes_max);
            });
        }
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
    let now = larder_objects::alarms::now_ms();
    macro_rules! decode {
        ($t:ty) => {
            match <$t>::decode(bytes) {
                Ok(req) => req,
                Err(_) => return,
            }
        };
    }
    match which % 17 {
        0 => {
            let req = decode!(pb::ObjectGetRequest);
            let keys = req.keys.len();
            if let Some(Reply::Values(values)) = object_call(requests::get(req), &limits) {
                assert_eq!(values.len(), keys);
            }
        }
        1 => drop(object_call(
            requests::put(decode!(pb::ObjectPutRequest)),
            &limits,
        )),
        2 => drop(object_call(
            requests::delete(decode!(pb::ObjectDeleteRequest)),
            &limits,
        )),
        3 => {
            let req = decode!(pb::ObjectListRequest);
            if let Some(Reply::List { entries, more }) = object_call(requests::list(req), &limits) {
                assert!(entries.is_empty() && !more, "an empty object listed keys");
            }
        }
        4 => drop(object_call(
            requests::delete_all(decode!(pb::ObjectDeleteAllRequest)),
            &limits,
        )),
        5 => {
            let req = decode!(pb::ObjectAddRequest);
            let delta = req.delta;
            if let Some(Reply::Added { value, .. }) = object_call(requests::add(req), &limits) {
                assert_eq!(value, delta, "an add on an absent key starts from 0");
            }
        }
        6 => {
            let req = decode!(pb::ObjectTransactionRequest);
            let writes = req.writes.len();
            if let Some(Reply::Transaction { results, .. }) =
                object_call(requests::transaction(req), &limits)
            {
                assert_eq!(results.len(), writes);
            }
        }
        7 => {
            let req = decode!(pb::ListObjectsRequest);
            match requests::list_objects_limit(&req, &limits) {
                Ok(limit) => {
                    assert!((1..=limits.list_page_max).contains(&limit));
                    assert!(req.limit == 0 || limit == req.limit as usize);
                }
                Err(status) => refused(&status),
            }
        }
        8 => drop(object_call(
            requests::inspect(decode!(pb::InspectRequest)),
            &limits,
        )),
        9 => match requests::move_object(decode!(pb::MoveRequest)) {
            Ok((object, id, _)) => object_id(&object, &id),
            Err(status) => refused(&status),
        },
        10 => drop(decode!(pb::DrainRequest)),
        11 => {
            let req = decode!(pb::SetAlarmRequest);
            let when = req.when;
            if let Some(Reply::Written { version }) =
                object_call(requests::set_alarm(req, now), &limits)
            {
                assert_eq!(version, 1);
                assert!(when.is_some());
            }
        }
        12 => drop(object_call(
            requests::delete_alarm(decode!(pb::DeleteAlarmRequest)),
            &limits,
        )),
        13 => match requests::list_alarms(decode!(pb::ListAlarmsRequest)) {
            Ok((call, _)) => drop(object_call(Ok(call), &limits)),
            Err(status) => refused(&status),
        },
        14 => {
            let req = decode!(pb::PublishRequest);
            if let Some(Reply::Published { seq, .. }) =
                object_call(requests::publish(req, now), &limits)
            {
                assert_eq!(seq, 1);
            }
        }
        15 => match requests::subscribe(decode!(pb::SubscribeRequest)) {
            Ok(sub) => {
                object_id(&sub.object, &sub.id);
                assert!(sub.location_hint.as_ref().is_none_or(|h| !h.is_empty()));
                // What the subscription asks the owner for.
                let events = ObjectState::default()
                    .execute(
                        &Op::Events {
                            after: sub.after_seq,
                        },
                        &limits,
                    )
                    .expect("an events query is always answered");
                assert!(matches!(events.0, Reply::Events { .. }));
            }
            Err(status) => refused(&status),
        },
        _ => drop(decode!(pb::SubscribeNamespaceRequest)),
    }
}

/// `larder.v1.Admin` requests that carry input (`which` picks one of 8).
pub fn admin(which: u8, bytes: &[u8]) {
    macro_rules! decode {
        ($t:ty) => {
            match <$t>::decode(bytes) {
                Ok(req) => req,
                Err(_) => return,
            }
        };
    }
    let membership =
        |result: Result<larder_directory::DirectoryRequest, Status>, raw: u64| match result {
            Ok(request) => {
                assert_ne!(raw, 0, "node 0 was accepted");
                assert!(!request.to_string().is_empty());
            }
            Err(status) => refused(&status),
        };
    match which % 8 {
        0 => {
            let req = decode!(pb::CreateNamespaceRequest);
            match admin::namespace_record(req, 1) {
                Ok(record) => {
                    larder_directory::check_namespace_name(&record.name)
                        .expect("an accepted namespace name is valid");
                    assert!(
                        record
                            .policy
                            .regions
                            .iter()
                            .all(|r| { larder_directory::check_label(&r.0).is_ok() })
                    );
                    let command = larder_directory::Command::CreateNamespace(record);
                    let bytes = codec::encode(&command).expect("a namespace encodes");
                    let back: larder_directory::Command =
                        codec::decode(&bytes).expect("an encoded namespace decodes");
                    assert_eq!(back, command);
                }
                Err(status) => refused(&status),
            }
        }
        1 => {
            let req = decode!(pb::AddLearnerRequest);
            let raw = req.node_id;
            let result = admin::add_learner(req);
            if let Ok(DirectoryRequest::AddLearner {
                peer_addr: Some(addr),
                ..
            }) = &result
            {
                // It goes into the Raft membership: it must be one the peers can dial.
                assert!(!addr.is_empty() && addr.len() <= admin::PEER_ADDR_BYTES_MAX);
                let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
                assert!(!host.is_empty() && port.parse::<u16>().is_ok(), "{addr:?}");
                let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .expect("an accepted peer address makes a channel");
                let uri = endpoint.uri();
                assert_eq!(
                    (uri.host(), uri.port_u16()),
                    (Some(host), port.parse().ok()),
                    "a channel to {addr:?} would dial elsewhere"
                );
            }
            membership(result, raw);
        }
        2 => {
            let req = decode!(pb::RemoveNodeRequest);
            membership(admin::remove_node(&req), req.node_id);
        }
        3 => {
            let req = decode!(pb::AddVoterRequest);
            membership(admin::add_voter(&req), req.node_id);
        }
        4 => {
            let req = decode!(pb::RemoveVoterRequest);
            membership(admin::remove_voter(&req), req.node_id);
        }
        5 => {
            let req = decode!(pb::TransferLeaderRequest);
            membership(admin::transfer_leader(&req), req.node_id);
        }
        6 => drop(decode!(pb::DeleteNamespaceRequest)),
        _ => drop(decode!(pb::StatusRequest)),
    }
}
