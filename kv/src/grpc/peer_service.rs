use larder_proto::peer::Envelope;
use larder_proto::peer::kv_replication_server::{KvReplication, KvReplicationServer};
use tonic::{Request, Response, Status};

use super::status::kv_status;
use crate::peer_messages::{PushRequest, PushResponse, SyncRequest};
use crate::{Kv, wire};

/// `larder.peer.v1.KvReplication` on the peer listener.
pub struct KvPeerService {
    kv: Kv,
}

impl KvPeerService {
    /// The service, with message limits that fit a sync page or a push batch holding the
    /// largest allowed value.
    pub fn server(kv: Kv) -> KvReplicationServer<KvPeerService> {
        let config = kv.config();
        let bytes_max = config.sync_page_bytes_max.max(config.value_bytes_max) * 2
            + config.push_batch_bytes_max;
        KvReplicationServer::new(KvPeerService { kv })
            .max_decoding_message_size(bytes_max)
            .max_encoding_message_size(bytes_max)
    }
}

#[tonic::async_trait]
impl KvReplication for KvPeerService {
    async fn push(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let push: PushRequest = wire::KV_WIRE
            .open(request.get_ref())
            .map_err(|err| kv_status(err.into()))?;
        self.kv.apply_push(push).await.map_err(kv_status)?;
        Ok(Response::new(
            wire::KV_WIRE
                .seal(&PushResponse::default())
                .map_err(|err| kv_status(err.into()))?,
        ))
    }

    async fn sync(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let sync: SyncRequest = wire::KV_WIRE
            .open(request.get_ref())
            .map_err(|err| kv_status(err.into()))?;
        let response = self.kv.serve_sync(&sync).map_err(kv_status)?;
        Ok(Response::new(
            wire::KV_WIRE
                .seal(&response)
                .map_err(|err| kv_status(err.into()))?,
        ))
    }
}
