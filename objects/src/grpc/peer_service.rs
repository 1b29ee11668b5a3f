use std::pin::Pin;

use futures::{Stream, StreamExt};
use larder_proto::peer::Envelope;
use larder_proto::peer::object_peer_server::{ObjectPeer, ObjectPeerServer};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::ObjectHost;
use crate::peer_messages::{
    self, DropRequest, ExecuteRequest, FenceRequest, FetchRequest, InstallRequest,
    NamespaceSubscribeRequest, ReplicateRequest, SubscribeRequest,
};

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<Envelope, Status>> + Send>>;

/// Seals each item of a subscription for the peer stream.
fn sealed_stream<T: serde::Serialize + Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> Response<EnvelopeStream> {
    let stream = ReceiverStream::new(rx)
        .map(|item| peer_messages::seal(&item).map_err(|err| Status::internal(err.to_string())));
    Response::new(Box::pin(stream))
}

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

    type SubscribeStream = EnvelopeStream;

    async fn subscribe(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let subscribe: SubscribeRequest = open(&request)?;
        Ok(sealed_stream(self.host.subscribe_owned(subscribe)))
    }

    type SubscribeNamespaceStream = EnvelopeStream;

    async fn subscribe_namespace(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Self::SubscribeNamespaceStream>, Status> {
        let subscribe: NamespaceSubscribeRequest = open(&request)?;
        Ok(sealed_stream(
            self.host.subscribe_namespace_owned(subscribe),
        ))
    }
}
