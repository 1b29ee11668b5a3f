//! Request limits, checked before anything touches storage. Messages name the limit.
//!
//! Pure functions of a request and the config: the [`crate::Kv`] calls them before it
//! looks at the namespace, and the `api_requests` fuzz target calls them on any bytes.

use crate::writer::Mutation;
use crate::{KvConfig, KvError, Namespace, PutItem};

/// The namespace a request names, converted once at the edge. Its name is not held to
/// the name rule here: a name that breaks it was never created, so
/// [`crate::Kv::check_namespace`] answers "does not exist" for it after the request's
/// other checks, as it did when namespaces were plain strings.
pub fn namespace(name: String) -> Namespace {
    Namespace::from(name)
}

pub fn key(config: &KvConfig, key: &[u8]) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::InvalidArgument("key must not be empty".into()));
    }
    if key.len() > config.key_bytes_max {
        return Err(KvError::InvalidArgument(format!(
            "key is {} bytes; the limit is {} bytes (kv.key_bytes_max)",
            key.len(),
            config.key_bytes_max
        )));
    }
    Ok(())
}

pub fn value(config: &KvConfig, value: &[u8], metadata: &[u8]) -> Result<(), KvError> {
    if value.len() > config.value_bytes_max {
        return Err(KvError::InvalidArgument(format!(
            "value is {} bytes; the limit is {} bytes (kv.value_bytes_max)",
            value.len(),
            config.value_bytes_max
        )));
    }
    if metadata.len() > config.metadata_bytes_max {
        return Err(KvError::InvalidArgument(format!(
            "metadata is {} bytes; the limit is {} bytes (kv.metadata_bytes_max)",
            metadata.len(),
            config.metadata_bytes_max
        )));
    }
    Ok(())
}

pub fn count(what: &str, count: usize, max: usize, limit_name: &str) -> Result<(), KvError> {
    if count == 0 {
        return Err(KvError::InvalidArgument(format!(
            "{what}: at least one is required"
        )));
    }
    if count > max {
        return Err(KvError::InvalidArgument(format!(
            "{what}: {count} given; the limit is {max} (kv.{limit_name})"
        )));
    }
    Ok(())
}

/// Expiry from an absolute time or a TTL (not both), as absolute Unix ms.
pub fn expiry(expires_at_ms: u64, ttl_ms: u64, now_ms: u64) -> Result<Option<u64>, KvError> {
    match (expires_at_ms, ttl_ms) {
        (0, 0) => Ok(None),
        (at, 0) => {
            if at <= now_ms {
                Err(KvError::InvalidArgument(format!(
                    "expires_at_ms {at} is not in the future (now {now_ms})"
                )))
            } else {
                Ok(Some(at))
            }
        }
        (0, ttl) => Ok(Some(now_ms.saturating_add(ttl))),
        _ => Err(KvError::InvalidArgument(
            "set expires_at_ms or ttl_ms, not both".into(),
        )),
    }
}

/// The items of a put, checked, as the writes to make (expiry made absolute at `now_ms`).
pub fn puts(config: &KvConfig, items: Vec<PutItem>, now_ms: u64) -> Result<Vec<Mutation>, KvError> {
    count(
        "items",
        items.len(),
        config.write_many_items_max,
        "write_many_items_max",
    )?;
    let mut mutations = Vec::with_capacity(items.len());
    for item in items {
        key(config, &item.key)?;
        value(config, &item.value, &item.metadata)?;
        let expires_at_ms = expiry(item.expires_at_ms, item.ttl_ms, now_ms)?;
        mutations.push(Mutation::Put {
            key: item.key,
            value: item.value,
            metadata: item.metadata,
            expires_at_ms,
        });
    }
    Ok(mutations)
}

/// The keys of a delete, checked, as the writes to make.
pub fn deletes(config: &KvConfig, keys: Vec<Vec<u8>>) -> Result<Vec<Mutation>, KvError> {
    count(
        "keys",
        keys.len(),
        config.write_many_items_max,
        "write_many_items_max",
    )?;
    for k in &keys {
        key(config, k)?;
    }
    Ok(keys
        .into_iter()
        .map(|key| Mutation::Delete { key })
        .collect())
}

/// The keys of a `GetMany`.
pub fn get_many(config: &KvConfig, keys: &[Vec<u8>]) -> Result<(), KvError> {
    count(
        "keys",
        keys.len(),
        config.get_many_keys_max,
        "get_many_keys_max",
    )?;
    keys.iter().try_for_each(|k| key(config, k))
}

/// A list page's prefix, cursor and limit; the page size to read.
pub fn list(config: &KvConfig, prefix: &[u8], cursor: &[u8], limit: u32) -> Result<usize, KvError> {
    let limit = list_limit(config, limit)?;
    if prefix.len() > config.key_bytes_max || cursor.len() > config.key_bytes_max {
        return Err(KvError::InvalidArgument(format!(
            "prefix and cursor are keys: at most {} bytes (kv.key_bytes_max)",
            config.key_bytes_max
        )));
    }
    Ok(limit)
}

/// A watch's prefix.
pub fn watch_prefix(config: &KvConfig, prefix: &[u8]) -> Result<(), KvError> {
    if prefix.len() > config.key_bytes_max {
        return Err(KvError::InvalidArgument(format!(
            "prefix is {} bytes; keys are at most {} bytes (kv.key_bytes_max)",
            prefix.len(),
            config.key_bytes_max
        )));
    }
    Ok(())
}

pub fn list_limit(config: &KvConfig, limit: u32) -> Result<usize, KvError> {
    let limit = limit as usize;
    if limit == 0 {
        return Ok(config.list_page_max);
    }
    if limit > config.list_page_max {
        return Err(KvError::InvalidArgument(format!(
            "limit {limit} exceeds the list page limit of {} (kv.list_page_max)",
            config.list_page_max
        )));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_themselves() {
        let config = KvConfig::default();
        let err = key(&config, &[b'k'; 513])
            .expect_err("too long")
            .to_string();
        assert!(
            err.contains("kv.key_bytes_max") && err.contains("513"),
            "{err}"
        );
        assert!(key(&config, b"").is_err());
        let err = value(&config, b"", &[0; 1025])
            .expect_err("metadata")
            .to_string();
        assert!(err.contains("kv.metadata_bytes_max"), "{err}");
        let err = count("keys", 101, 100, "get_many_keys_max")
            .expect_err("many")
            .to_string();
        assert!(err.contains("kv.get_many_keys_max"), "{err}");
        assert!(list_limit(&config, 1001).is_err());
        assert_eq!(list_limit(&config, 0).expect("default"), 1000);
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(expiry(0, 0, 10).expect("none"), None);
        assert_eq!(expiry(0, 5, 10).expect("ttl"), Some(15));
        assert_eq!(expiry(20, 0, 10).expect("abs"), Some(20));
        assert!(expiry(5, 0, 10).is_err());
        assert!(expiry(20, 5, 10).is_err());
    }
}
