use larder_proto::peer::Envelope;
use larder_proto::peer::directory_server::{Directory as DirectoryRpc, DirectoryServer};
use larder_proto::peer::raft_server::{Raft as RaftRpc, RaftServer};
use tonic::{Request, Response, Status};

use crate::raft_types::{DirectoryRaftConfig as C, SnapshotMeta, Vote};
use crate::{Directory, DirectoryRaft, DirectoryRequest, peer_wire};

/// Server side of the peer `Raft` service: hands messages to the local Raft node.
pub struct RaftPeerService {
    raft: DirectoryRaft,
}

/// Server side of the peer `Directory` service: runs forwarded requests.
pub struct DirectoryPeerService {
    directory: Directory,
}

fn open<T: serde::de::DeserializeOwned>(request: &Request<Envelope>) -> Result<T, Status> {
    peer_wire::DIRECTORY_WIRE
        .open(request.get_ref())
        .map_err(|err| Status::invalid_argument(err.to_string()))
}

fn seal<T: serde::Serialize>(value: &T) -> Result<Response<Envelope>, Status> {
    peer_wire::DIRECTORY_WIRE
        .seal(value)
        .map(Response::new)
        .map_err(|err| Status::internal(err.to_string()))
}

fn raft_down(err: impl std::fmt::Display) -> Status {
    // A Raft node that returns an error here has stopped: tell the caller to treat this
    // peer as unreachable.
    Status::unavailable(format!("directory Raft node stopped: {err}"))
}

#[tonic::async_trait]
impl RaftRpc for RaftPeerService {
    async fn append_entries(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Envelope>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<C> = open(&request)?;
        let response = self.raft.append_entries(rpc).await.map_err(raft_down)?;
        seal(&response)
    }

    async fn vote(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let rpc: openraft::raft::VoteRequest<C> = open(&request)?;
        let response = self.raft.vote(rpc).await.map_err(raft_down)?;
        seal(&response)
    }

    async fn install_snapshot(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Envelope>, Status> {
        let (vote, meta, data): (Vote, SnapshotMeta, Vec<u8>) = open(&request)?;
        let snapshot = openraft::alias::SnapshotOf::<C, Vec<u8>> {
            meta,
            snapshot: data,
        };
        let response = self
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(raft_down)?;
        seal(&response)
    }

    async fn transfer_leader(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Envelope>, Status> {
        let rpc: openraft::raft::TransferLeaderRequest<C> = open(&request)?;
        let response = self
            .raft
            .handle_transfer_leader(rpc)
            .await
            .map_err(raft_down)?;
        seal(&response)
    }
}

#[tonic::async_trait]
impl DirectoryRpc for DirectoryPeerService {
    async fn forward(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let (hops, req): (u32, DirectoryRequest) = open(&request)?;
        let result = self.directory.request_with_hops(req, hops).await;
        seal(&result)
    }
}

/// The peer services of a directory node, ready to add to the peer listener.
pub fn peer_services(
    directory: &Directory,
) -> (
    RaftServer<RaftPeerService>,
    DirectoryServer<DirectoryPeerService>,
) {
    let bytes_max = directory.config().peer_message_bytes_max;
    let raft = RaftServer::new(RaftPeerService {
        raft: directory.raft().clone(),
    })
    .max_decoding_message_size(bytes_max)
    .max_encoding_message_size(bytes_max);
    let forward = DirectoryServer::new(DirectoryPeerService {
        directory: directory.clone(),
    })
    .max_decoding_message_size(bytes_max)
    .max_encoding_message_size(bytes_max);
    (raft, forward)
}
