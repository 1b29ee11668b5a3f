use serde::{Deserialize, Serialize};

use crate::ObjectError;

/// Request limits of object storage (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectLimits {
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    /// Keys (or operations) per batch or transaction.
    pub batch_keys_max: usize,
    pub list_page_max: usize,
}

impl Default for ObjectLimits {
    fn default() -> Self {
        ObjectLimits {
            key_bytes_max: 2048,
            value_bytes_max: 1024 * 1024,
            batch_keys_max: 128,
            list_page_max: 1000,
        }
    }
}

impl ObjectLimits {
    pub fn key(&self, key: &[u8]) -> Result<(), ObjectError> {
        if key.is_empty() {
            return Err(ObjectError::InvalidArgument("key must not be empty".into()));
        }
        if key.len() > self.key_bytes_max {
            return Err(ObjectError::InvalidArgument(format!(
                "key is {} bytes; the limit is {} bytes (objects.key_bytes_max)",
                key.len(),
                self.key_bytes_max
            )));
        }
        Ok(())
    }

    pub fn value(&self, value: &[u8]) -> Result<(), ObjectError> {
        if value.len() > self.value_bytes_max {
            return Err(ObjectError::InvalidArgument(format!(
                "value is {} bytes; the limit is {} bytes (objects.value_bytes_max)",
                value.len(),
                self.value_bytes_max
            )));
        }
        Ok(())
    }

    pub fn batch(&self, what: &str, count: usize) -> Result<(), ObjectError> {
        if count == 0 {
            return Err(ObjectError::InvalidArgument(format!(
                "{what}: at least one is required"
            )));
        }
        if count > self.batch_keys_max {
            return Err(ObjectError::InvalidArgument(format!(
                "{what}: {count} given; the limit is {} (objects.batch_keys_max)",
                self.batch_keys_max
            )));
        }
        Ok(())
    }

    pub fn page(&self, limit: u32) -> Result<usize, ObjectError> {
        match limit as usize {
            0 => Ok(self.list_page_max),
            n if n > self.list_page_max => Err(ObjectError::InvalidArgument(format!(
                "limit {n} exceeds the list page limit of {} (objects.list_page_max)",
                self.list_page_max
            ))),
            n => Ok(n),
        }
    }
}
