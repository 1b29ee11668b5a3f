//! Admin requests as `larder.v1.Admin` takes them: pure conversions from the protobuf
//! messages to directory requests, with the checks that need no cluster (node ids, names
//! of namespaces, regions and jurisdictions, peer addresses). The service and the `api_requests` fuzz
//! target both go through here.

use larder_directory::{
    DirectoryRequest, Jurisdiction, Namespace, NamespacePolicy, NamespaceSpec, NodeId, RegionId,
    check_label,
};
use larder_proto::v1 as pb;
use tonic::Status;

/// A node id from a request: 0 is not one.
pub fn node_id(raw: u64) -> Result<NodeId, Status> {
    if raw == 0 {
        Err(Status::invalid_argument(
            "node_id must be set (node ids start at 1)",
        ))
    } else {
        Ok(NodeId(raw))
    }
}

/// The namespace a `CreateNamespace` asks for, created at `now_ms`.
pub fn namespace_spec(
    req: pb::CreateNamespaceRequest,
    now_ms: u64,
) -> Result<NamespaceSpec, Status> {
    let name = Namespace::parse(&req.name).map_err(|reason| {
        Status::invalid_argument(format!("namespace name {:?} {reason}", req.name))
    })?;
    let mut policy = NamespacePolicy::default();
    for region in req.regions {
        check_label(&region)
            .map_err(|reason| Status::invalid_argument(format!("region {region:?} {reason}")))?;
        policy.regions.insert(RegionId(region));
    }
    if !req.jurisdiction.is_empty() {
        check_label(&req.jurisdiction).map_err(|reason| {
            Status::invalid_argument(format!("jurisdiction {:?} {reason}", req.jurisdiction))
        })?;
        policy.jurisdiction = Some(Jurisdiction(req.jurisdiction));
    }
    Ok(NamespaceSpec {
        name,
        policy,
        created_at_ms: now_ms,
    })
}

/// Longest peer address a request may name: a DNS name (253 bytes), `:` and a port.
pub const PEER_ADDR_BYTES_MAX: usize = 259;

/// A peer address from a request: HOST:PORT, as the node's configuration takes it, that
/// the peer channels can connect to. It goes into the Raft membership, so a bad one
/// must never get that far.
pub fn peer_addr(addr: &str) -> Result<(), Status> {
    let checked = if addr.len() > PEER_ADDR_BYTES_MAX {
        Err(format!(
            "is {} bytes; the limit is {PEER_ADDR_BYTES_MAX}",
            addr.len()
        ))
    } else {
        crate::config::check_host_port(addr).and_then(|()| {
            // What the peer channels would dial: exactly this host and port, nothing
            // else (no user, path or query).
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|err| format!("{addr:?} is not a valid HOST:PORT: {err}"))?;
            let uri = endpoint.uri();
            match (uri.host(), uri.port_u16()) {
                (Some(host), Some(port)) if format!("{host}:{port}") == addr => Ok(()),
                _ => Err(format!("{addr:?} is not a valid HOST:PORT")),
            }
        })
    };
    checked.map_err(|reason| Status::invalid_argument(format!("peer_addr {reason}")))
}

/// An `AddLearner`; an empty peer address means the one the directory has recorded.
pub fn add_learner(req: pb::AddLearnerRequest) -> Result<DirectoryRequest, Status> {
    let id = node_id(req.node_id)?;
    let peer_addr = Some(req.peer_addr).filter(|addr| !addr.is_empty());
    if let Some(addr) = &peer_addr {
        self::peer_addr(addr)?;
    }
    Ok(DirectoryRequest::AddLearner { id, peer_addr })
}

pub fn remove_node(req: &pb::RemoveNodeRequest) -> Result<DirectoryRequest, Status> {
    Ok(DirectoryRequest::RemoveNode {
        id: node_id(req.node_id)?,
        force: req.force,
    })
}

pub fn add_voter(req: &pb::AddVoterRequest) -> Result<DirectoryRequest, Status> {
    Ok(DirectoryRequest::AddVoter(node_id(req.node_id)?))
}

pub fn remove_voter(req: &pb::RemoveVoterRequest) -> Result<DirectoryRequest, Status> {
    Ok(DirectoryRequest::RemoveVoter(node_id(req.node_id)?))
}

pub fn transfer_leader(req: &pb::TransferLeaderRequest) -> Result<DirectoryRequest, Status> {
    Ok(DirectoryRequest::TransferLeader(node_id(req.node_id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learner_peer_addresses_are_checked() {
        let learner = |addr: &str| {
            add_learner(pb::AddLearnerRequest {
                node_id: 4,
                peer_addr: addr.to_string(),
            })
        };
        assert!(learner("10.0.0.4:7081").is_ok());
        assert!(learner("node-4.internal:7081").is_ok());
        assert!(learner("[::1]:7081").is_ok());
        assert!(learner("").is_ok(), "empty: the recorded address");
        for bad in [
            "10.0.0.4",
            "a b:7081",
            ":7081",
            "host:99999",
            "h/x:1",
            "h:1/x",
            "u@h:1",
            "h:1?q",
        ] {
            let status = learner(bad).expect_err(bad);
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
            assert!(status.message().starts_with("peer_addr"), "{status:?}");
        }
        assert!(learner(&format!("{}:1", "h".repeat(PEER_ADDR_BYTES_MAX))).is_err());
    }
}
