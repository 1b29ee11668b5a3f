use serde::{Deserialize, Serialize};

use crate::ObjectError;

/// Request limits of object storage (`[objects.limits]` in deploy/larder.example.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectLimits {
    pub key_bytes_max: usize,
    pub value_bytes_max: usize,
    /// Keys (or operations) per batch or transaction.
    pub batch_keys_max: usize,
    pub list_page_max: usize,
    /// Alarms one object may hold.
    pub alarms_max: usize,
    pub alarm_name_bytes_max: usize,
    /// A published message or an alarm's payload.
    pub message_bytes_max: usize,
}

impl Default for ObjectLimits {
    fn default() -> Self {
        ObjectLimits {
            key_bytes_max: 2048,
            value_bytes_max: 1024 * 1024,
            batch_keys_max: 128,
            list_page_max: 1000,
            alarms_max: 1024,
            alarm_name_bytes_max: 256,
            message_bytes_max: 64 * 1024,
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

    pub fn alarm_name(&self, name: &str) -> Result<(), ObjectError> {
        if name.is_empty() || name.len() > self.alarm_name_bytes_max {
            return Err(ObjectError::InvalidArgument(format!(
                "alarm name must be 1 to {} bytes, got {} (objects.alarm_name_bytes_max)",
                self.alarm_name_bytes_max,
                name.len()
            )));
        }
        Ok(())
    }

    pub fn message(&self, what: &str, payload: &[u8]) -> Result<(), ObjectError> {
        if payload.len() > self.message_bytes_max {
            return Err(ObjectError::InvalidArgument(format!(
                "{what} is {} bytes; the limit is {} bytes (objects.message_bytes_max)",
                payload.len(),
                self.message_bytes_max
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
