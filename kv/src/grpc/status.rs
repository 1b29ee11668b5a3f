use larder_proto::metadata::RETRY_ENDPOINT;
use tonic::Status;

use crate::KvError;

pub fn kv_status(err: KvError) -> Status {
    let message = err.to_string();
    match err {
        KvError::InvalidArgument(_) => Status::invalid_argument(message),
        KvError::NamespaceNotFound(_) => Status::not_found(message),
        // Never served here: the client goes to the named node instead.
        KvError::NotAllowedHere { retry_at, .. } => {
            naming(Status::failed_precondition(message), retry_at)
        }
        KvError::NotCaughtUp { retry_at, .. } => naming(Status::unavailable(message), retry_at),
        KvError::Overloaded(_) | KvError::DiskFull(_) => Status::resource_exhausted(message),
        KvError::Unreachable { .. } | KvError::ShuttingDown => Status::unavailable(message),
        KvError::Storage(_) | KvError::Internal(_) => Status::internal(message),
    }
}

/// `status` naming `retry_at`, when there is one, as the node to call instead.
fn naming(mut status: Status, retry_at: Option<String>) -> Status {
    if let Some(addr) = retry_at
        && let Ok(value) = addr.parse()
    {
        status.metadata_mut().insert(RETRY_ENDPOINT, value);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    #[test]
    fn statuses() {
        assert_eq!(
            kv_status(KvError::InvalidArgument("x".into())).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            kv_status(KvError::NamespaceNotFound("x".into())).code(),
            tonic::Code::NotFound
        );
        let status = kv_status(KvError::NotCaughtUp {
            namespace: "n".into(),
            origin: NodeId(2),
            seq: 3,
            retry_at: Some("127.0.0.1:7080".into()),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status
                .metadata()
                .get(RETRY_ENDPOINT)
                .and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:7080")
        );
        assert_eq!(
            kv_status(KvError::Overloaded(1)).code(),
            tonic::Code::ResourceExhausted
        );
    }
}
