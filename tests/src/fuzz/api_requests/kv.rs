//! `larder.v1.Kv` requests, checked by `larder_kv::validate`.

use larder_base::Clock as _;
use larder_kv::grpc::status::kv_status;
use larder_kv::{KvConfig, KvError, Mutation as KvMutation, PutItem, token, validate};
use larder_proto::v1 as pb;
use prost::Message;

use super::refused;

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

fn kv_key_ok(config: &KvConfig, key: &[u8]) -> bool {
    (1..=config.key_bytes_max).contains(&key.len())
}

/// A consistency or resume token as the KV reads it: empty is none.
fn kv_token(bytes: &[u8], namespace: &str) -> Result<(), KvError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let asked = validate::namespace(namespace.to_string());
    let wanted = token::restrict(&token::decode(bytes)?, &asked);
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
    let now = larder_base::SystemClock.now_ms();
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
                kv_writes(
                    &config,
                    &asked,
                    &mutations,
                    larder_base::SystemClock.now_ms(),
                );
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
