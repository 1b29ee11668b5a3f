use std::future::Future;

use larder_proto::peer::raft_client::RaftClient;
use openraft::OptionalSend;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use tonic::transport::Channel;

use crate::peer_wire;
use crate::raft_types::{DirectoryRaftConfig as C, Snapshot, Vote};
use crate::{NodeId, PeerChannels, PeerNode};

/// Builds Raft clients over the cached peer channels.
#[derive(Clone)]
pub struct TonicNetworkFactory {
    channels: PeerChannels,
    message_bytes_max: usize,
}

impl TonicNetworkFactory {
    pub fn new(channels: PeerChannels, message_bytes_max: usize) -> Self {
        TonicNetworkFactory {
            channels,
            message_bytes_max,
        }
    }
}

/// Raft RPCs to one peer.
pub struct TonicNetwork {
    target: NodeId,
    addr: String,
    client: Option<RaftClient<Channel>>,
}

impl RaftNetworkFactory<C> for TonicNetworkFactory {
    type Network = TonicNetwork;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> TonicNetwork {
        let client = match self.channels.channel(&node.peer_addr) {
            Ok(channel) => Some(
                RaftClient::new(channel)
                    .max_decoding_message_size(self.message_bytes_max)
                    .max_encoding_message_size(self.message_bytes_max),
            ),
            Err(err) => {
                tracing::warn!(peer = %target, error = %err, "cannot build a Raft client");
                None
            }
        };
        TonicNetwork {
            target,
            addr: node.peer_addr.clone(),
            client,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WireError(String);

fn status_to_rpc_error(status: tonic::Status) -> RPCError<C> {
    let err = WireError(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&err))
        }
        _ => RPCError::Network(NetworkError::new(&err)),
    }
}

impl TonicNetwork {
    fn client(&self) -> Result<RaftClient<Channel>, RPCError<C>> {
        self.client.clone().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&WireError(format!(
                "no channel to node {} at {}",
                self.target, self.addr
            ))))
        })
    }

    fn request<T: serde::Serialize>(
        value: &T,
        option: &RPCOption,
    ) -> Result<tonic::Request<larder_proto::peer::Envelope>, RPCError<C>> {
        let envelope = peer_wire::DIRECTORY_WIRE
            .seal(value)
            .map_err(|err| RPCError::Network(NetworkError::new(&WireError(err.to_string()))))?;
        let mut request = tonic::Request::new(envelope);
        request.set_timeout(option.hard_ttl());
        Ok(request)
    }

    fn response<T: serde::de::DeserializeOwned>(
        response: tonic::Response<larder_proto::peer::Envelope>,
    ) -> Result<T, RPCError<C>> {
        peer_wire::DIRECTORY_WIRE
            .open(response.get_ref())
            .map_err(|err| RPCError::Network(NetworkError::new(&WireError(err.to_string()))))
    }
}

impl RaftNetworkV2<C> for TonicNetwork {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let request = Self::request(&rpc, &option)?;
        let response = self
            .client()?
            .append_entries(request)
            .await
            .map_err(status_to_rpc_error)?;
        Self::response(response)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        let request = Self::request(&rpc, &option)?;
        let response = self
            .client()?
            .vote(request)
            .await
            .map_err(status_to_rpc_error)?;
        Self::response(response)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        // The directory snapshot is small enough for one message (bounded by
        // peer_message_bytes_max); no chunking.
        let payload = (vote, snapshot.meta, snapshot.snapshot);
        let request = Self::request(&payload, &option)?;
        let mut client = self.client()?;
        let call = async move {
            let response = client
                .install_snapshot(request)
                .await
                .map_err(status_to_rpc_error)?;
            Self::response(response)
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = call => result.map_err(StreamingError::from),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        let request = Self::request(&req, &option)?;
        let response = self
            .client()?
            .transfer_leader(request)
            .await
            .map_err(status_to_rpc_error)?;
        Self::response(response)
    }
}
