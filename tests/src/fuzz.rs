//! Fuzz target bodies, shared by `fuzz/` (cargo fuzz, on nightly) and by the corpus
//! replay in `tests/tests/fuzz_corpus.rs` (stable, in every CI run).
//!
//! Every body must return normally on any input. Where an input decodes, it also checks
//! what must hold of the decoded value: stored records survive a round trip, and the
//! object engine is deterministic (a replica applying the owner's mutations ends equal),
//! numbers versions and events without gaps, and applies a retried request id once.
//! Requests from clients go through the services' own checks: a refusal is a client's
//! error with a message, and what is accepted is within the limits
//! ([`api_requests`], its checks in `fuzz/api_requests/`).

mod api_requests;

use std::fmt::Debug;

use larder_directory::placement::ObjectPlacement;
use larder_directory::{Command, DirectoryRequest, DirectoryResponse, DirectoryState};
use larder_objects::events::{Delivery, ObjectEventOut};
use larder_objects::op::{Alarm, Event, ListQuery, Op, Precondition, Reply, TxnWrite};
use larder_objects::peer_messages::{
    CopyRequest, CopyResponse, DropRequest, ExecuteRequest, ExecuteResponse, FenceRequest,
    FenceResponse, FetchRequest, FetchResponse, InstallRequest, NamespaceSubscribeRequest,
    ReplicateRequest, SubscribeRequest,
};
use larder_objects::{ObjectLimits, ObjectState, ReplicaMeta, Stored};
use larder_store::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// The targets by name: the name is the directory of their corpus under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("stored_records", stored_records),
    ("peer_messages", peer_messages),
    ("object_engine", object_engine),
    ("api_requests", api_requests),
];

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(value) = codec::decode::<T>(bytes) {
        let again = codec::encode(&value).expect("a decoded record encodes");
        let back: T = codec::decode(&again).expect("an encoded record decodes");
        assert_eq!(back, value, "a record changed in a round trip");
    }
}

/// Records as the stores keep them on disk (first byte: which kind).
pub fn stored_records(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 12 {
        0 => roundtrip::<larder_kv::Entry>(bytes),
        1 => roundtrip::<larder_kv::Version>(bytes),
        2 => roundtrip::<larder_kv::VersionVector>(bytes),
        3 => roundtrip::<Stored>(bytes),
        4 => roundtrip::<Alarm>(bytes),
        5 => roundtrip::<Event>(bytes),
        6 => roundtrip::<ReplicaMeta>(bytes),
        7 => roundtrip::<(String, Reply)>(bytes),
        8 => roundtrip::<ObjectPlacement>(bytes),
        9 => roundtrip::<DirectoryState>(bytes),
        10 => roundtrip::<Command>(bytes),
        _ => roundtrip::<ObjectState>(bytes),
    }
}

fn decodes<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    codec::decode(bytes).ok()
}

/// Payloads nodes send each other (first byte: which message). A decoded call that
/// carries an operation is also run on an empty object.
pub fn peer_messages(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 21 {
        0 => {
            if let Some(call) = decodes::<ExecuteRequest>(bytes) {
                let limits = ObjectLimits::default();
                let _ = ObjectState::default().execute_request(
                    &call.op,
                    call.request_id.as_deref(),
                    &limits,
                );
            }
        }
        1 => drop(decodes::<ReplicateRequest>(bytes)),
        2 => drop(decodes::<InstallRequest>(bytes)),
        3 => drop(decodes::<FenceRequest>(bytes)),
        4 => drop(decodes::<FetchRequest>(bytes)),
        5 => drop(decodes::<DropRequest>(bytes)),
        6 => drop(decodes::<SubscribeRequest>(bytes)),
        7 => drop(decodes::<NamespaceSubscribeRequest>(bytes)),
        8 => drop(decodes::<ExecuteResponse>(bytes)),
        9 => drop(decodes::<CopyResponse>(bytes)),
        10 => drop(decodes::<FenceResponse>(bytes)),
        11 => drop(decodes::<FetchResponse>(bytes)),
        12 => drop(decodes::<Result<Delivery, larder_objects::ObjectError>>(
            bytes,
        )),
        13 => drop(decodes::<ObjectEventOut>(bytes)),
        14 => drop(decodes::<larder_kv::peer_messages::PushRequest>(bytes)),
        15 => drop(decodes::<larder_kv::peer_messages::SyncRequest>(bytes)),
        16 => drop(decodes::<larder_kv::peer_messages::SyncResponse>(bytes)),
        17 => drop(decodes::<DirectoryRequest>(bytes)),
        18 => drop(decodes::<DirectoryResponse>(bytes)),
        19 => drop(decodes::<CopyRequest>(bytes)),
        _ => {
            // Read-your-writes tokens come from clients: any bytes.
            if let Ok(vector) = larder_kv::token::decode(bytes) {
                let again = larder_kv::token::decode(&larder_kv::token::encode(&vector))
                    .expect("an encoded token decodes");
                assert_eq!(again, vector);
            }
        }
    }
}

/// Small limits, so inputs reach them.
pub(crate) fn small_limits() -> ObjectLimits {
    ObjectLimits {
        key_bytes_max: 8,
        value_bytes_max: 16,
        batch_keys_max: 4,
        list_page_max: 5,
        alarms_max: 3,
        alarm_name_bytes_max: 8,
        message_bytes_max: 16,
    }
}

/// One operation from four input bytes: what, which key, which value, which request id.
fn op_from(chunk: [u8; 4], clock: &mut u64) -> (Op, Option<String>) {
    let [what, key, value, id] = chunk;
    *clock += u64::from(value % 16);
    let op = match what % 14 {
        0 => Op::Get {
            keys: vec![key_of(key), key_of(value)],
        },
        1 => Op::Put {
            entries: vec![(key_of(key), value_of(value))],
        },
        2 => Op::Delete {
            keys: (0..(value % 6))
                .map(|i| key_of(key.wrapping_add(i)))
                .collect(),
        },
        3 => list_from(key, value),
        4 => Op::DeleteAll,
        5 => Op::Add {
            key: key_of(key),
            delta: i64::from(value as i8).saturating_mul(if value % 5 == 0 {
                i64::MAX / 64
            } else {
                1
            }),
        },
        6 => transaction_from(key, value),
        7 => Op::Stats,
        8 => Op::SetAlarm {
            name: alarm_name(key),
            at_ms: *clock + u64::from(value % 32),
            payload: value_of(value),
        },
        9 => Op::DeleteAlarms {
            names: vec![alarm_name(key)],
        },
        10 => Op::ListAlarms,
        11 => Op::Publish {
            payload: value_of(value),
            at_ms: *clock,
        },
        12 => Op::FireAlarms { now_ms: *clock },
        _ => Op::Events {
            after: (value % 2 == 0).then_some(u64::from(key % 8)),
        },
    };
    let request_id = (id % 2 == 1).then(|| format!("r{}", (id >> 1) % 6));
    (op, request_id)
}

/// A key from one byte: one of seven short keys, the empty key, or one byte over
/// [`small_limits`].
fn key_of(b: u8) -> Vec<u8> {
    match b % 9 {
        7 => Vec::new(),
        8 => vec![b'x'; 9],
        n => format!("k{n}").into_bytes(),
    }
}

/// A value from one byte: integers (one at the edge of `i64`), text, or one byte over
/// [`small_limits`].
fn value_of(b: u8) -> Vec<u8> {
    match b % 8 {
        0 => b"7".to_vec(),
        1 => b"-3".to_vec(),
        2 => b"not a number".to_vec(),
        3 => vec![b'v'; 17],
        4 => i64::MAX.to_string().into_bytes(),
        n => format!("{n}").into_bytes(),
    }
}

/// An alarm name from one byte: four short ones, or one too long.
fn alarm_name(b: u8) -> String {
    match b % 5 {
        4 => "a-too-long-name".to_string(),
        n => format!("a{n}"),
    }
}

/// A listing by prefix, to an end or not, either way round, with a small limit.
fn list_from(key: u8, value: u8) -> Op {
    Op::List(ListQuery {
        prefix: key_of(key)[..1.min(key_of(key).len())].to_vec(),
        start: Vec::new(),
        end: if value.is_multiple_of(2) {
            Vec::new()
        } else {
            key_of(value)
        },
        reverse: value.is_multiple_of(3),
        limit: u32::from(value % 7),
    })
}

/// A transaction under one kind of precondition (or none), with one write of each kind.
fn transaction_from(key: u8, value: u8) -> Op {
    Op::Transaction {
        preconditions: match value % 4 {
            0 => vec![Precondition::Absent { key: key_of(key) }],
            1 => vec![Precondition::VersionEquals {
                key: key_of(key),
                version: u64::from(value % 5),
            }],
            2 => vec![Precondition::ValueEquals {
                key: key_of(key),
                value: value_of(value),
            }],
            _ => Vec::new(),
        },
        writes: vec![
            TxnWrite::Add {
                key: key_of(key),
                delta: 1,
            },
            TxnWrite::Put {
                key: key_of(value),
                value: value_of(key),
            },
            TxnWrite::Delete {
                key: key_of(key.wrapping_add(1)),
            },
        ],
    }
}

/// Runs a sequence of operations on an owner and applies its mutations on a replica.
pub fn object_engine(data: &[u8]) {
    let limits = small_limits();
    let mut owner = ObjectState::default();
    let mut replica = ObjectState::default();
    let mut clock = 0;
    for chunk in data.chunks_exact(4) {
        let (op, request_id) = op_from([chunk[0], chunk[1], chunk[2], chunk[3]], &mut clock);
        let before = owner.version();
        match owner.execute_request(&op, request_id.as_deref(), &limits) {
            Ok((reply, mutations)) => {
                if mutations.is_empty() {
                    assert_eq!(owner.version(), before);
                } else {
                    assert_eq!(owner.apply(&mutations), before + 1);
                    assert_eq!(replica.apply(&mutations), before + 1);
                    if request_id.is_some() {
                        // The same write again, as a retry: answered alike, not applied.
                        let (again, none) = owner
                            .execute_request(&op, request_id.as_deref(), &limits)
                            .expect("a remembered write is answered");
                        assert_eq!(again, reply);
                        assert!(none.is_empty(), "a retried request id applied twice");
                    }
                }
            }
            Err(_) => assert_eq!(owner.version(), before, "a refused call changed state"),
        }
        assert_eq!(owner, replica, "replica diverged after {op:?}");
        assert!(owner.alarms().len() <= limits.alarms_max);
        let seqs: Vec<u64> = owner.events().iter().map(|e| e.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "event log has a gap: {seqs:?}"
        );
        assert!(seqs.len() <= larder_objects::EVENTS_KEPT);
    }
}

/// Requests clients send to the api services (first byte: which one, of 33; its top bit:
/// small limits, so inputs reach them). Each is decoded as prost decodes it off the wire
/// and checked by the code the service runs; an object call the checks accept is also
/// run on an empty owner, as the owner runs it.
pub fn api_requests(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let small = kind & 0x80 != 0;
    match (kind & 0x7f) % 33 {
        which @ 0..8 => api_requests::kv(which, bytes, small),
        which @ 8..25 => api_requests::objects(which - 8, bytes, small),
        which => api_requests::admin(which - 25, bytes),
    }
}
