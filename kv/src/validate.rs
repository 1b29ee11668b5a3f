//! Request limits, checked before anything touches storage. Messages name the limit.

use crate::{KvConfig, KvError};

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
