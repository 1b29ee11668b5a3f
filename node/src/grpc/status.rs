//! The one place where errors become gRPC statuses.

use larder_directory::DirectoryError;
use larder_proto::metadata::{
    LEADER_ENDPOINT as LEADER_ENDPOINT_METADATA, LEADER_ID as LEADER_ID_METADATA,
};
use tonic::Status;

pub fn directory_status(err: DirectoryError) -> Status {
    let message = err.to_string();
    match err {
        DirectoryError::NotLeader {
            leader,
            leader_api_addr,
        } => {
            let mut status = Status::unavailable(message);
            if let Some(id) = leader
                && let Ok(value) = id.to_string().parse()
            {
                status.metadata_mut().insert(LEADER_ID_METADATA, value);
            }
            if let Some(addr) = leader_api_addr
                && let Ok(value) = addr.parse()
            {
                status
                    .metadata_mut()
                    .insert(LEADER_ENDPOINT_METADATA, value);
            }
            status
        }
        DirectoryError::NoLeader
        | DirectoryError::Unreachable { .. }
        | DirectoryError::ShuttingDown => Status::unavailable(message),
        DirectoryError::Timeout { .. } => Status::unavailable(message),
        DirectoryError::NodeNotFound(_) | DirectoryError::NamespaceNotFound(_) => {
            Status::not_found(message)
        }
        DirectoryError::NotALearner(_)
        | DirectoryError::NotAVoter(_)
        | DirectoryError::LastVoter(_)
        | DirectoryError::Rejected(_)
        | DirectoryError::NodeRemoved(_)
        | DirectoryError::NeedsForce(_) => Status::failed_precondition(message),
        DirectoryError::InvalidRequest(_) => Status::invalid_argument(message),
        DirectoryError::Storage(_) | DirectoryError::Protocol(_) => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_directory::NodeId;

    #[test]
    fn redirect_carries_leader() {
        let status = directory_status(DirectoryError::NotLeader {
            leader: Some(NodeId(3)),
            leader_api_addr: Some("127.0.0.1:7090".into()),
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status
                .metadata()
                .get(LEADER_ENDPOINT_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:7090")
        );
        assert_eq!(
            directory_status(DirectoryError::NodeNotFound(NodeId(9))).code(),
            tonic::Code::NotFound
        );
    }
}
