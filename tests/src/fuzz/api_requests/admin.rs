//! `larder.v1.Admin` requests that carry input, checked by `larder_node::grpc::requests`.

use larder_directory::DirectoryRequest;
use larder_node::grpc::requests as admin;
use larder_proto::v1 as pb;
use larder_store::codec;
use tonic::Status;

use super::{decode_or_return, refused};

/// `larder.v1.Admin` requests that carry input (`which` picks one of 8).
pub fn admin(which: u8, bytes: &[u8]) {
    match which % 8 {
        0 => match admin::namespace_spec(decode_or_return!(pb::CreateNamespaceRequest, bytes), 1) {
            Ok(record) => namespace_accepted(record),
            Err(status) => refused(&status),
        },
        1 => {
            let req = decode_or_return!(pb::AddLearnerRequest, bytes);
            let raw = req.node_id;
            let result = admin::add_learner(req);
            if let Ok(DirectoryRequest::AddLearner {
                peer_addr: Some(addr),
                ..
            }) = &result
            {
                peer_addr_dials_as_given(addr);
            }
            membership(result, raw);
        }
        2 => {
            let req = decode_or_return!(pb::RemoveNodeRequest, bytes);
            membership(admin::remove_node(&req), req.node_id);
        }
        3 => {
            let req = decode_or_return!(pb::AddVoterRequest, bytes);
            membership(admin::add_voter(&req), req.node_id);
        }
        4 => {
            let req = decode_or_return!(pb::RemoveVoterRequest, bytes);
            membership(admin::remove_voter(&req), req.node_id);
        }
        5 => {
            let req = decode_or_return!(pb::TransferLeaderRequest, bytes);
            membership(admin::transfer_leader(&req), req.node_id);
        }
        6 => drop(decode_or_return!(pb::DeleteNamespaceRequest, bytes)),
        _ => drop(decode_or_return!(pb::StatusRequest, bytes)),
    }
}

/// An accepted membership change names a node (not 0) and describes itself.
fn membership(result: Result<DirectoryRequest, Status>, raw: u64) {
    match result {
        Ok(request) => {
            assert_ne!(raw, 0, "node 0 was accepted");
            assert!(!request.to_string().is_empty());
        }
        Err(status) => refused(&status),
    }
}

/// An accepted namespace has a valid name and regions, and survives the directory's log.
fn namespace_accepted(record: larder_directory::NamespaceSpec) {
    larder_directory::check_namespace_name(record.name.as_str())
        .expect("an accepted namespace name is valid");
    assert!(
        record
            .policy
            .regions
            .iter()
            .all(|r| { larder_directory::check_label(&r.0).is_ok() })
    );
    let command = larder_directory::Command::CreateNamespace(record);
    let bytes = codec::encode(&command).expect("a namespace encodes");
    let back: larder_directory::Command =
        codec::decode(&bytes).expect("an encoded namespace decodes");
    assert_eq!(back, command);
}

/// A learner's peer address goes into the Raft membership: it must be one the peers can
/// dial, as given.
fn peer_addr_dials_as_given(addr: &str) {
    assert!(!addr.is_empty() && addr.len() <= admin::PEER_ADDR_BYTES_MAX);
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    assert!(!host.is_empty() && port.parse::<u16>().is_ok(), "{addr:?}");
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an accepted peer address makes a channel");
    let uri = endpoint.uri();
    assert_eq!(
        (uri.host(), uri.port_u16()),
        (Some(host), port.parse().ok()),
        "a channel to {addr:?} would dial elsewhere"
    );
}
