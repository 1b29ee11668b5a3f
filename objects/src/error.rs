/// Errors of object operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}
