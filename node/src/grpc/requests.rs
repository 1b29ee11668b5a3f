//! Admin requests as `larder.v1.Admin` takes them: pure conversions from the protobuf
//! messages to directory requests, with the checks that need no cluster (node ids, names
//! of namespaces, regions and jurisdictions). The service and the `api_requests` fuzz
//! target both go through here.

use larder_directory::{
    DirectoryRequest, Jurisdiction, NamespacePolicy, NamespaceRecord, NodeId, RegionId,
    check_namespace_name, ids::check_label,
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
pub fn namespace_record(
    req: pb::CreateNamespaceRequest,
    now_ms: u64,
) -> Result<NamespaceRecord, Status> {
    check_namespace_name(&req.name).map_err(|reason| {
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
    Ok(NamespaceRecord {
        name: req.name,
        policy,
        created_at_ms: now_ms,
    })
}

pub fn add_learner(req: pb::AddLearnerRequest) -> Result<DirectoryRequest, Status> {
    let id = node_id(req.node_id)?;
    let peer_addr = Some(req.peer_addr).filter(|addr| !addr.is_empty());
    Ok(DirectoryRequest::AddLearner { id, peer_addr })
}

pub fn remove_node(req: &pb::RemoveNodeRequest) -> Result<DirectoryRequest, Status> {
    Ok(DirectoryRequest::RemoveNode(node_id(req.node_id)?))
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
