use crate::{LEADER_ENDPOINT_METADATA, RETRY_ENDPOINT_METADATA};

/// Errors a Larder call can return.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// The node (or the leader it needs) cannot serve now; retrying later may work.
    #[error("unavailable: {message}")]
    Unavailable {
        message: String,
        /// Api address of the node to retry at, when the server named one.
        retry_at: Option<String>,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    #[error("{code}: {message}")]
    Other { code: String, message: String },
}

impl ClientError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. })
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::Unavailable => ClientError::Unavailable {
                retry_at: [LEADER_ENDPOINT_METADATA, RETRY_ENDPOINT_METADATA]
                    .iter()
                    .find_map(|key| status.metadata().get(*key))
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                message,
            },
            tonic::Code::InvalidArgument => ClientError::InvalidArgument(message),
            tonic::Code::NotFound => ClientError::NotFound(message),
            tonic::Code::FailedPrecondition => ClientError::FailedPrecondition(message),
            tonic::Code::ResourceExhausted => ClientError::ResourceExhausted(message),
            tonic::Code::DeadlineExceeded => ClientError::DeadlineExceeded(message),
            // tonic's own request timeout: the node did not answer in time (paused, or
            // waiting on a peer that is): a deadline, not a cancellation.
            tonic::Code::Cancelled if message == "Timeout expired" => {
                ClientError::DeadlineExceeded(
                    "no answer within the client's request timeout (ClientConfig::request_timeout)"
                        .to_string(),
                )
            }
            code => ClientError::Other {
                code: format!("{code:?}"),
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_carries_the_leader_endpoint() {
        let mut status = tonic::Status::unavailable("not the leader");
        status.metadata_mut().insert(
            LEADER_ENDPOINT_METADATA,
            "127.0.0.1:7080".parse().expect("ascii"),
        );
        match ClientError::from(status) {
            ClientError::Unavailable { retry_at, .. } => {
                assert_eq!(retry_at.as_deref(), Some("127.0.0.1:7080"))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            ClientError::from(tonic::Status::not_found("x")),
            ClientError::NotFound(_)
        ));
    }
}
