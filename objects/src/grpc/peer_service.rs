use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use larder_proto::peer::object_peer_server::{ObjectPeer, ObjectPeerServer};
use larder_proto::peer::{Envelope, ReplicationFrame};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use crate::ObjectHost;
use crate::peer_messages::{
    self, CopyRequest, CopyResponse, DropRequest, ExecuteRequest, FenceRequest, FetchRequest,
    InstallRequest, NamespaceSubscribeRequest, ReplicateRequest, SubscribeRequest,
};

/// Requests of one replication stream applied at once, each in its own task: a round
/// waiting on one object's copy does not hold up the others, and one owner's stream
/// cannot take more of this node than this. Past it the stream is not read (HTTP/2
/// flow control holds the owner back).
const REPLICATION_APPLIED_CONCURRENTLY_MAX: usize = 64;

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<Envelope, Status>> + Send>>;
type FrameStream = Pin<Box<dyn Stream<Item = Result<ReplicationFrame, Status>> + Send>>;

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
    /// The node's stop signal: replication streams end on it, or they would hold the
    /// peer listener's graceful shutdown open for the whole grace period.
    shutdown: watch::Receiver<bool>,
}

impl ObjectPeerService {
    pub fn server(
        host: ObjectHost,
        message_bytes_max: usize,
        shutdown: watch::Receiver<bool>,
    ) -> ObjectPeerServer<ObjectPeerService> {
        ObjectPeerServer::new(ObjectPeerService { host, shutdown })
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

    type ReplicateStreamStream = FrameStream;

    async fn replicate_stream(
        &self,
        request: Request<Streaming<ReplicationFrame>>,
    ) -> Result<Response<Self::ReplicateStreamStream>, Status> {
        // Answers go out in the order they finish; the owner pairs them up by id.
        let (answers, outgoing) = mpsc::channel(REPLICATION_APPLIED_CONCURRENTLY_MAX);
        tokio::spawn(serve_replication(
            self.host.clone(),
            request.into_inner(),
            answers,
            self.shutdown.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(outgoing))))
    }
}

/// Reads an owner's replication stream until it ends or the node stops, applying each
/// request in a task of its own. The answer stream ends once the last one is answered.
async fn serve_replication(
    host: ObjectHost,
    mut requests: Streaming<ReplicationFrame>,
    answers: mpsc::Sender<Result<ReplicationFrame, Status>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(REPLICATION_APPLIED_CONCURRENTLY_MAX));
    let stop = async move {
        // A dropped sender means the node is gone: stop too.
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        let frame = tokio::select! {
            frame = requests.message() => frame,
            _ = &mut stop => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(status) => {
                debug!(error = %status.message(), "replication stream from an owner broke");
                break;
            }
        };
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = &mut stop => break,
        };
        let Ok(slot) = slot else {
            break; // Never closed: unreachable, but no reason to panic.
        };
        let (host, answers) = (host.clone(), answers.clone());
        tokio::spawn(async move {
            let body = apply_frame(&host, frame.body).await;
            // Fails only when the stream is gone: the owner learns from that.
            let _ = answers
                .send(Ok(ReplicationFrame { id: frame.id, body }))
                .await;
            drop(slot);
        });
    }
}

/// One request of a replication stream, applied to this node's copy; the sealed answer
/// (none if it cannot be encoded: the owner reports a malformed answer).
async fn apply_frame(host: &ObjectHost, body: Option<Envelope>) -> Option<Envelope> {
    let result: CopyResponse = match body.as_ref().map(peer_messages::open::<CopyRequest>) {
        Some(Ok(offer)) => host.take_offer(offer).await,
        Some(Err(reason)) => Err(reason),
        None => Err("replication request without a body".to_string()),
    };
    peer_messages::seal(&result).ok()
}
