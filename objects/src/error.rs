use larder_base::{Epoch, Namespace};

/// Errors of object operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ObjectError {
    #[error("{0}")]
    InvalidArgument(String),
    /// A transaction's precondition did not hold; nothing was applied.
    #[error("precondition {index} failed: {reason}")]
    PreconditionFailed { index: usize, reason: String },
    #[error("value of key {key:?} is not an integer; add needs an integer value")]
    NotAnInteger { key: String },
    #[error("adding {delta} to {current} at key {key:?} overflows a 64-bit integer")]
    Overflow {
        key: String,
        current: i64,
        delta: i64,
    },
    /// The object holds as many alarms as it may; delete one first.
    #[error("the object already holds {0} alarms, the most it may (objects.alarms_max)")]
    TooManyAlarms(usize),
    #[error("namespace {0:?} does not exist")]
    NamespaceNotFound(Namespace),
    #[error("cannot place the object: {0}")]
    Placement(String),
    /// The object cannot serve now (owner unreachable, no majority of replicas, owner
    /// changing); `retry_at` names the node to retry at when known. A write that gets
    /// this may or may not have been applied.
    #[error("object unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_at: Option<String>,
    },
    /// A copy refused this owner: it has seen owner epoch `epoch`. The call's write, if
    /// any, may or may not have been applied.
    #[error("object {key} has a newer owner epoch ({epoch}); retry")]
    Superseded { key: String, epoch: Epoch },
    #[error("too many calls waiting for this object ({0}); retry shortly")]
    Overloaded(usize),
    #[error("storage failed: {0}")]
    Storage(String),
    /// The owner's disk is nearly full: writes are refused, reads go on.
    #[error("{0}")]
    DiskFull(String),
    /// Nothing was ever written to the object, so it has no placement: only a write
    /// places an object. (Last, so the peer encoding of the variants above stays.)
    #[error("object {0} does not exist: nothing was ever written to it")]
    NotFound(String),
}

impl ObjectError {
    /// The object cannot serve now, for `reason`, with no node to retry at.
    pub fn unavailable(reason: impl Into<String>) -> ObjectError {
        ObjectError::Unavailable {
            reason: reason.into(),
            retry_at: None,
        }
    }
}

impl From<larder_store::StoreError> for ObjectError {
    fn from(err: larder_store::StoreError) -> Self {
        match err {
            larder_store::StoreError::DiskFull { .. } => ObjectError::DiskFull(err.to_string()),
            other => ObjectError::Storage(other.to_string()),
        }
    }
}

impl From<larder_directory::DirectoryError> for ObjectError {
    fn from(err: larder_directory::DirectoryError) -> Self {
        if let larder_directory::DirectoryError::NamespaceNotFound(namespace) = err {
            ObjectError::NamespaceNotFound(namespace)
        } else if err.is_retryable() {
            ObjectError::Unavailable {
                reason: err.to_string(),
                retry_at: None,
            }
        } else {
            ObjectError::Placement(err.to_string())
        }
    }
}
