use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use larder_directory::ObjectKey;
use larder_proto::peer::object_peer_server::{ObjectPeer, ObjectPeerServer};
use larder_proto::peer::{Envelope, ReplicationFrame};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use crate::ObjectHost;
use crate::peer_messages::{
    CopyError, CopyRequest, CopyResponse, DropRequest, DropResponse, ExecuteRequest, FenceRequest,
    FenceResponse, FetchRequest, FetchResponse, InstallRequest, NamespaceSubscribeRequest,
    OBJECTS_WIRE, ReplicateRequest, SubscribeRequest,
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
    let stream = ReceiverStream::new(rx).map(|item| {
        OBJECTS_WIRE
            .seal(&item)
            .map_err(|err| Status::internal(err.to_string()))
    });
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

impl ObjectPeerService {
    /// A replica's side of an owner's unary offer.
    async fn take(&self, offer: CopyRequest) -> CopyResponse {
        take(&self.host, &offer).await
    }
}

/// A replica takes an owner's offer, unless the object's namespace was deleted: an
/// owner that has not applied the deletion yet must not leave a copy behind the sweep.
async fn take(host: &ObjectHost, offer: &CopyRequest) -> CopyResponse {
    let namespace = &offer.key().namespace;
    let deleted = host
        .placements()
        .directory()
        .read_local(|s| s.is_deleted(namespace))
        .await;
    if deleted {
        return Err(CopyError::NamespaceDeleted(namespace.name().to_string()));
    }
    host.copies().take(offer).await.map_err(CopyError::from)
}

fn open<T: serde::de::DeserializeOwned>(request: &Request<Envelope>) -> Result<T, Status> {
    OBJECTS_WIRE
        .open(request.get_ref())
        .map_err(|err| Status::invalid_argument(err.to_string()))
}

fn seal<T: serde::Serialize>(value: &T) -> Result<Response<Envelope>, Status> {
    OBJECTS_WIRE
        .seal(value)
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
        seal(&self.take(CopyRequest::Write(write)).await)
    }

    async fn install(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let state: InstallRequest = open(&request)?;
        seal(&self.take(CopyRequest::State(state)).await)
    }

    async fn fence(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let fence: FenceRequest = open(&request)?;
        let copies = self.host.copies();
        let result: FenceResponse = copies
            .fence(&fence.key, fence.epoch)
            .await
            .map_err(CopyError::from);
        seal(&result)
    }

    async fn fetch(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let fetch: FetchRequest = open(&request)?;
        let result: FetchResponse = self.host.copies().load(&fetch.key).map_err(CopyError::from);
        seal(&result)
    }

    async fn drop(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        let drop: DropRequest = open(&request)?;
        let copies = self.host.copies();
        let result: DropResponse = copies
            .drop_copy(&drop.key, drop.epoch)
            .await
            .map_err(CopyError::from);
        seal(&result)
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
///
/// Requests for one object are applied in the order they came: a task waits for the one
/// before it on the same object. Tasks spawned back to back may otherwise start in any
/// order (tokio runs the newest spawn first), and a round that overtakes the one before
/// reaches the copy as a gap the owner then has to repair with a state transfer.
async fn serve_replication(
    host: ObjectHost,
    mut requests: Streaming<ReplicationFrame>,
    answers: mpsc::Sender<Result<ReplicationFrame, Status>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(REPLICATION_APPLIED_CONCURRENTLY_MAX));
    // The newest task of each object; finished ones are dropped once the map reaches the
    // bound on running tasks, so it stays about that size.
    let mut latest: HashMap<ObjectKey, JoinHandle<()>> = HashMap::new();
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
        let offer = match frame.body.as_ref() {
            Some(body) => OBJECTS_WIRE
                .open::<CopyRequest>(body)
                .map_err(|err| CopyError::Malformed(err.to_string())),
            None => Err(CopyError::Malformed(
                "replication request without a body".into(),
            )),
        };
        if latest.len() >= REPLICATION_APPLIED_CONCURRENTLY_MAX {
            latest.retain(|_, task| !task.is_finished());
        }
        let key = offer.as_ref().ok().map(|offer| offer.key().clone());
        let before = key.as_ref().and_then(|key| latest.remove(key));
        let (host, answers) = (host.clone(), answers.clone());
        let task = tokio::spawn(async move {
            if let Some(before) = before {
                // Its outcome is its own answer's business; a panic there ends only it.
                let _ = before.await;
            }
            let result: CopyResponse = match offer {
                Ok(offer) => take(&host, &offer).await,
                Err(reason) => Err(reason),
            };
            // None if the answer cannot be encoded: the owner reports it as malformed.
            let body = OBJECTS_WIRE.seal(&result).ok();
            // Fails only when the stream is gone: the owner learns from that.
            let _ = answers
                .send(Ok(ReplicationFrame { id: frame.id, body }))
                .await;
            drop(slot);
        });
        if let Some(key) = key {
            latest.insert(key, task);
        }
    }
}
