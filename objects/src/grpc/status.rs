use larder_proto::metadata::RETRY_ENDPOINT;
use tonic::Status;

use crate::ObjectError;

pub fn object_status(err: ObjectError) -> Status {
    let message = err.to_string();
    match err {
        ObjectError::InvalidArgument(_) => Status::invalid_argument(message),
        ObjectError::PreconditionFailed { .. }
        | ObjectError::NotAnInteger { .. }
        | ObjectError::Overflow { .. }
        | ObjectError::TooManyAlarms(_) => Status::failed_precondition(message),
        ObjectError::NamespaceNotFound(_) | ObjectError::NotFound(_) => Status::not_found(message),
        ObjectError::Placement(_) => Status::failed_precondition(message),
        ObjectError::Unavailable { retry_at, .. } => {
            let mut status = Status::unavailable(message);
            if let Some(addr) = retry_at
                && let Ok(value) = addr.parse()
            {
                status.metadata_mut().insert(RETRY_ENDPOINT, value);
            }
            status
        }
        ObjectError::Superseded { .. } => Status::unavailable(message),
        ObjectError::Overloaded(_) | ObjectError::DiskFull(_) => {
            Status::resource_exhausted(message)
        }
        ObjectError::Storage(_) => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let status = object_status(ObjectError::Unavailable {
            reason: "x".into(),
            retry_at: Some("127.0.0.1:1".into()),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.metadata().get(RETRY_ENDPOINT).is_some());
        assert_eq!(
            object_status(ObjectError::InvalidArgument("k".into())).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            object_status(ObjectError::NamespaceNotFound("n".into())).code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            object_status(ObjectError::NotFound("rooms/typo".into())).code(),
            tonic::Code::NotFound
        );
        let failed = ObjectError::PreconditionFailed {
            index: 0,
            reason: "r".into(),
        };
        assert_eq!(
            object_status(failed).code(),
            tonic::Code::FailedPrecondition
        );
    }
}
