use larder_proto::peer::Envelope;
use larder_proto::peer::object_peer_server::{ObjectPeer, ObjectPeerServer};
use tonic::{Request, Response, Status};

use crate::ObjectHost;
use crate::peer_messages::{
    self, DropRequest, ExecuteRequest, FenceRequest, FetchRequest, InstallRequest, ReplicateRequest,
};

/// `larder.peer.v1.ObjectPeer` on the peer listener.
pub struct ObjectPeerService {
    host: ObjectHost,
}

impl ObjectPeerService {
    pub fn server(
        host: ObjectHost,
        message_bytes_max: usize,
    ) -> ObjectPeerServer<ObjectPeerService> {
        ObjectPeerServer::new(ObjectPeerService { host })
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max)
    }
}

fn open<T: serde::de::DeserializeOwned>(request: &Request<Envelope>) -> Result<T, Status> {
    peer_messages::open(request.get_ref()).map_err(Status::invalid_argument)
}

fn seal<T: serde::Serialize>(value: &T) -> Result<Response<Envelope>, Status> {
    peer_messages::seal(value)
        .map(Response::new)
        .map_err(|err| Status::internal(err.to_string()))
}

#[tonic::async_trait]
impl ObjectPeer for ObjectPeerService {
    async fn execute(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let call: ExecuteRequest = open(&request)?;
        seal(&self.host.execute_forwarded(call).await)
    }

    async fn replicate(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let write: ReplicateRequest = open(&request)?;
        seal(&self.host.replicate(write).await)
    }

    async fn install(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let state: InstallRequest = open(&request)?;
        seal(&self.host.install(state).await)
    }

    async fn fence(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let fence: FenceRequest = open(&request)?;
        seal(&self.host.fence(fence).await)
    }

    async fn fetch(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let fetch: FetchRequest = open(&request)?;
        seal(&self.host.fetch(fetch))
    }

    async fn drop(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let drop: DropRequest = open(&request)?;
        seal(&self.host.drop_copy(drop).await)
    }
}
