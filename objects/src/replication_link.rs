//! Replication rounds over one long-lived `ReplicateStream` per replica node.
//!
//! A unary `Replicate` call costs each round a new HTTP/2 stream, its headers and a hop
//! through tonic's client buffer task; about a third of a replication call in the
//! object-write benchmark (docs/benchmarks.md). A link instead keeps one bidirectional
//! stream open to a peer address and pairs each answer with its request by id.
//!
//! Each link is a task that owns the stream and the map of requests awaiting an answer.
//! It is spawned by the first request to a peer and stops when the stream breaks, after
//! failing every request still waiting; the next request spawns a new one (the stream
//! reopens lazily, as the shared channel reconnects lazily). A peer that does not serve
//! the stream (an older node) gets unary calls for [`STREAM_RETRY_AFTER`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use larder_proto::peer::object_peer_client::ObjectPeerClient;
use larder_proto::peer::{Envelope, ReplicationFrame};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;
use tracing::{debug, warn};

/// Requests one link has sent and not had answered. At the bound the link takes no
/// more from its queue until answers come back or their callers give up.
pub(crate) const REPLICATION_IN_FLIGHT_MAX: usize = 256;

/// Requests waiting for their link to send them; past it callers wait (within their
/// timeout) for room.
const REPLICATION_QUEUE_MAX: usize = 256;

/// Links kept, one per peer address; past it all are dropped (their streams close,
/// and the next request to each peer opens a new one).
const LINKS_MAX: usize = 4096;

/// How often a link at [`REPLICATION_IN_FLIGHT_MAX`] looks for requests whose callers
/// gave up: a replica that stalls without breaking the stream must not wedge the link.
const PENDING_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// After a peer answered the stream with `UNIMPLEMENTED`, requests to it go as unary
/// calls for this long before the stream is tried again (a rolling upgrade ends).
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a request on a link got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The peer does not serve `ReplicateStream`: send a unary call instead.
    #[error("peer {peer} does not serve replication streams")]
    Unsupported { peer: String },
    #[error("replication stream to {peer} could not be opened: {reason}")]
    Unreachable { peer: String, reason: String },
    /// The request was sent; whether the copy took it is unknown.
    #[error("replication stream to {peer} broke: {reason}")]
    Broken { peer: String, reason: String },
    /// The link stopped before the request went out, twice.
    #[error("replication stream to {peer} stopped before the request was sent")]
    NotSent { peer: String },
    #[error("replication stream to {peer} has {in_flight_max} requests waiting to be sent")]
    Busy { peer: String, in_flight_max: usize },
    #[error("no answer from {peer} within {after_ms} ms")]
    TimedOut { peer: String, after_ms: u128 },
    #[error("answer from {peer} carries no body")]
    Malformed { peer: String },
}

/// What a link tells a caller.
enum Outcome {
    Answered(Envelope),
    Failed(LinkError),
    /// The link stopped before sending the request: here it is back, to send again.
    Unsent(Envelope),
}

type Reply = oneshot::Sender<Outcome>;

struct LinkRequest {
    body: Envelope,
    reply: Reply,
}

enum Link {
    Stream(mpsc::Sender<LinkRequest>),
    /// The peer refused the stream: unary calls until then.
    Unary {
        until: Instant,
    },
}

/// This node's replication links, by peer address.
pub(crate) struct ReplicationLinks {
    links: Mutex<HashMap<String, Link>>,
    /// Bound on opening a stream (a connect plus one round trip).
    open_timeout: Duration,
}

impl ReplicationLinks {
    pub(crate) fn new(open_timeout: Duration) -> ReplicationLinks {
        ReplicationLinks {
            links: Mutex::new(HashMap::new()),
            open_timeout,
        }
    }

    /// Sends `body` to `peer` on its link and waits up to `timeout` for the answer.
    /// `client` makes the link's client when one has to be opened.
    pub(crate) async fn call(
        &self,
        peer: &str,
        client: impl Fn() -> Result<ObjectPeerClient<Channel>, String>,
        body: Envelope,
        timeout: Duration,
    ) -> Result<Envelope, LinkError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || LinkError::TimedOut {
            peer: peer.to_string(),
            after_ms: timeout.as_millis(),
        };
        // A request the link never sent goes once more on a fresh link: the old one
        // broke between the caller finding it and the request reaching it.
        let mut body = Some(body);
        for _ in 0..2 {
            let Some(sender) = self.link(peer, &client)? else {
                return Err(LinkError::Unsupported {
                    peer: peer.to_string(),
                });
            };
            let (reply, answer) = oneshot::channel();
            let request = LinkRequest {
                body: body
                    .take()
                    .expect("the body is put back before every retry"),
                reply,
            };
            let sent = tokio::time::timeout_at(deadline, sender.send(request))
                .await
                .map_err(|_| timed_out())?;
            if let Err(mpsc::error::SendError(request)) = sent {
                body = Some(request.body);
                continue;
            }
            let outcome = tokio::time::timeout_at(deadline, answer)
                .await
                .map_err(|_| timed_out())?;
            match outcome {
                Ok(Outcome::Answered(answer)) => return Ok(answer),
                Ok(Outcome::Unsent(unsent)) => body = Some(unsent),
                Ok(Outcome::Failed(err)) => {
                    if let LinkError::Unsupported { .. } = &err {
                        self.prefer_unary(peer);
                    }
                    return Err(err);
                }
                // The link drops a reply unanswered only by stopping without failing it.
                Err(_) => {
                    return Err(LinkError::Broken {
                        peer: peer.to_string(),
                        reason: "the link stopped".into(),
                    });
                }
            }
        }
        Err(LinkError::NotSent {
            peer: peer.to_string(),
        })
    }

    /// The running link to `peer`, a new one if none runs, or None while the peer gets
    /// unary calls.
    fn link(
        &self,
        peer: &str,
        client: &impl Fn() -> Result<ObjectPeerClient<Channel>, String>,
    ) -> Result<Option<mpsc::Sender<LinkRequest>>, LinkError> {
        let mut links = self.links();
        match links.get(peer) {
            Some(Link::Stream(sender)) if !sender.is_closed() => return Ok(Some(sender.clone())),
            Some(Link::Unary { until }) if Instant::now() < *until => return Ok(None),
            _ => {}
        }
        let client = client().map_err(|reason| LinkError::Unreachable {
            peer: peer.to_string(),
            reason,
        })?;
        if links.len() >= LINKS_MAX {
            links.clear();
        }
        let (sender, requests) = mpsc::channel(REPLICATION_QUEUE_MAX);
        links.insert(peer.to_string(), Link::Stream(sender.clone()));
        tokio::spawn(run(peer.to_string(), client, requests, self.open_timeout));
        Ok(Some(sender))
    }

    fn prefer_unary(&self, peer: &str) {
        let until = Instant::now() + STREAM_RETRY_AFTER;
        self.links().insert(peer.to_string(), Link::Unary { until });
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.links
            .lock()
            .expect("replication link map is never poisoned: no panics under it")
    }
}

/// One link: opens the stream, then sends requests and routes answers until the stream
/// breaks or the link is dropped; every request left waiting then fails.
async fn run(
    peer: String,
    client: ObjectPeerClient<Channel>,
    mut requests: mpsc::Receiver<LinkRequest>,
    open_timeout: Duration,
) {
    // Holds no more than the pending map does (every frame in it is also pending), so
    // sending into it does not wait: the link never stops reading answers.
    let (frames, outgoing) = mpsc::channel(REPLICATION_IN_FLIGHT_MAX);
    let answers = match open(&peer, client, outgoing, open_timeout).await {
        Ok(answers) => answers,
        Err(error) => {
            fail_queued(&mut requests, |_| Outcome::Failed(error.clone()));
            return;
        }
    };
    debug!(peer = %peer, "replication stream opened");
    let mut pending: HashMap<u64, Reply> = HashMap::new();
    let broke = pump(&peer, &mut requests, &frames, answers, &mut pending).await;
    if pending.is_empty() {
        debug!(peer = %peer, reason = %broke, "replication stream closed");
    } else {
        warn!(peer = %peer, pending = pending.len(), error = %broke, "replication stream broke");
    }
    for (_, reply) in pending.drain() {
        let _ = reply.send(Outcome::Failed(LinkError::Broken {
            peer: peer.clone(),
            reason: broke.clone(),
        }));
    }
    // Never sent: their callers send them again on a new link.
    fail_queued(&mut requests, Outcome::Unsent);
}

/// Opens the replication stream, sending `outgoing`; returns the answer stream.
async fn open(
    peer: &str,
    mut client: ObjectPeerClient<Channel>,
    outgoing: mpsc::Receiver<ReplicationFrame>,
    open_timeout: Duration,
) -> Result<Streaming<ReplicationFrame>, LinkError> {
    let opened = tokio::time::timeout(
        open_timeout,
        client.replicate_stream(ReceiverStream::new(outgoing)),
    )
    .await;
    let unreachable = |reason: String| {
        debug!(peer = %peer, error = %reason, "replication stream could not be opened");
        LinkError::Unreachable {
            peer: peer.to_string(),
            reason,
        }
    };
    match opened {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            debug!(peer = %peer, "peer serves no replication stream: unary calls");
            Err(LinkError::Unsupported {
                peer: peer.to_string(),
            })
        }
        Ok(Err(status)) => Err(unreachable(status.message().to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} ms",
            open_timeout.as_millis()
        ))),
    }
}

/// Sends queued requests as frames and routes answers to their callers until the
/// stream breaks or the link is dropped; returns why it stopped.
async fn pump(
    peer: &str,
    requests: &mut mpsc::Receiver<LinkRequest>,
    frames: &mpsc::Sender<ReplicationFrame>,
    mut answers: Streaming<ReplicationFrame>,
    pending: &mut HashMap<u64, Reply>,
) -> String {
    let mut next_id: u64 = 0;
    loop {
        let full = pending.len() >= REPLICATION_IN_FLIGHT_MAX;
        if full {
            // Callers that timed out dropped their receivers: their slots are free.
            pending.retain(|_, reply| !reply.is_closed());
        }
        tokio::select! {
            _ = tokio::time::sleep(PENDING_SWEEP_INTERVAL), if full => {}
            request = requests.recv(), if pending.len() < REPLICATION_IN_FLIGHT_MAX => {
                let Some(request) = request else {
                    // Dropped from the link map: close the stream.
                    return "the link was dropped".to_string();
                };
                if request.reply.is_closed() {
                    continue; // The caller stopped waiting while it queued.
                }
                next_id += 1;
                if let Err(broke) = send(peer, frames, next_id, request, pending) {
                    return broke;
                }
            }
            answer = answers.message() => match answer {
                Ok(Some(frame)) => {
                    if let Some(reply) = pending.remove(&frame.id) {
                        let _ = reply.send(match frame.body {
                            Some(body) => Outcome::Answered(body),
                            None => Outcome::Failed(LinkError::Malformed { peer: peer.to_string() }),
                        });
                    }
                }
                Ok(None) => return "the replica ended the stream".to_string(),
                Err(status) => return status.message().to_string(),
            }
        }
    }
}

/// Sends one request as frame `id`, keeping its caller's reply in `pending`; Err: the
/// request stream closed (the caller gets its request back, to send again).
fn send(
    peer: &str,
    frames: &mpsc::Sender<ReplicationFrame>,
    id: u64,
    request: LinkRequest,
    pending: &mut HashMap<u64, Reply>,
) -> Result<(), String> {
    let frame = ReplicationFrame {
        id,
        body: Some(request.body),
    };
    match frames.try_send(frame) {
        Ok(()) => {
            pending.insert(id, request.reply);
            Ok(())
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            let _ = request.reply.send(Outcome::Failed(LinkError::Busy {
                peer: peer.to_string(),
                in_flight_max: REPLICATION_IN_FLIGHT_MAX,
            }));
            Ok(())
        }
        Err(mpsc::error::TrySendError::Closed(frame)) => {
            if let Some(body) = frame.body {
                let _ = request.reply.send(Outcome::Unsent(body));
            }
            Err("the request stream closed".to_string())
        }
    }
}

/// Closes the queue and answers what it holds: the callers learn now, not at their
/// timeout.
fn fail_queued(requests: &mut mpsc::Receiver<LinkRequest>, outcome: impl Fn(Envelope) -> Outcome) {
    requests.close();
    while let Ok(request) = requests.try_recv() {
        let _ = request.reply.send(outcome(request.body));
    }
}
