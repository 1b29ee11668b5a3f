//! Fault layer for tests: delay on the links from this node to chosen peers.
//!
//! The kernel here has no `netem`, so latency is added in Larder's own peer transport.
//! With `LARDER_FAULT_PEER_DELAYS=<path>` set at start, every peer connection this node
//! opens goes through a pump that holds each chunk it sends for the delay the file names
//! for that peer at the moment the chunk is written (lines `<peer address> <ms>`; the
//! file is read again at most every [`RELOAD`], so delays change while the node runs).
//! Only the direction away from this node is delayed; give the peer its own line for the
//! way back. Without the variable, peer connections are plain TCP and nothing here runs.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

const DELAYS_ENV: &str = "LARDER_FAULT_PEER_DELAYS";
/// How long a reading of the delay file is used.
const RELOAD: Duration = Duration::from_millis(50);
/// Bytes buffered between the HTTP/2 connection and the pump, per direction.
const PIPE_BYTES: usize = 256 * 1024;
/// Chunks held back at once on one link; the connection waits past it.
const HELD_CHUNKS_MAX: usize = 1024;
/// Largest chunk read at once.
const CHUNK_BYTES: usize = 64 * 1024;

/// The delays named by the fault file, read again at most every [`RELOAD`].
#[derive(Clone)]
pub struct LinkDelays {
    path: PathBuf,
    cache: Arc<Mutex<Reading>>,
}

/// When the file was last read, and the delays it named.
type Reading = (Option<Instant>, HashMap<String, Duration>);

impl LinkDelays {
    /// The fault layer, when `LARDER_FAULT_PEER_DELAYS` is set.
    pub fn from_env() -> Option<LinkDelays> {
        let path = std::env::var_os(DELAYS_ENV)?;
        Some(LinkDelays {
            path: PathBuf::from(path),
            cache: Arc::default(),
        })
    }

    /// The delay for chunks sent to `peer` now.
    pub fn to(&self, peer: &str) -> Duration {
        let mut cache = self.cache.lock().expect("delay cache: no panics under it");
        if cache.0.is_none_or(|read| read.elapsed() >= RELOAD) {
            // A missing or unreadable file means no delay.
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            cache.1 = text
                .lines()
                .filter_map(|line| {
                    let (addr, ms) = line.trim().split_once(char::is_whitespace)?;
                    Some((
                        addr.to_string(),
                        Duration::from_millis(ms.trim().parse().ok()?),
                    ))
                })
                .collect();
            cache.0 = Some(Instant::now());
        }
        cache.1.get(peer).copied().unwrap_or_default()
    }
}

/// A connector for tonic's `Endpoint::connect_with_connector_lazy`: TCP to `addr` (from
/// `source_ip` when set), with the delays applied to what this side sends.
#[derive(Clone)]
pub struct DelayConnector {
    pub delays: LinkDelays,
    pub addr: String,
    pub source_ip: Option<IpAddr>,
}

impl tower_service::Service<http::Uri> for DelayConnector {
    type Response = TokioIo<DuplexStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let target: SocketAddr = tokio::net::lookup_host(&this.addr)
                .await?
                .next()
                .ok_or_else(|| {
                    std::io::Error::other(format!("{} resolves to nothing", this.addr))
                })?;
            let socket = if target.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(ip) = this.source_ip {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            let stream = socket.connect(target).await?;
            stream.set_nodelay(true)?;
            let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
            tokio::spawn(pump(theirs, stream, this.delays, this.addr));
            Ok(TokioIo::new(ours))
        })
    }
}

/// Moves bytes between the connection's end of the pipe and the socket, holding back
/// what goes out by the link's delay. Ends when either side closes.
async fn pump(pipe: DuplexStream, stream: TcpStream, delays: LinkDelays, peer: String) {
    let (mut pipe_read, mut pipe_write) = tokio::io::split(pipe);
    let (mut tcp_read, mut tcp_write) = stream.into_split();
    let (held_tx, mut held_rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(HELD_CHUNKS_MAX);
    let outgoing = async move {
        let mut buf = vec![0; CHUNK_BYTES];
        loop {
            let n = match pipe_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let due = tokio::time::Instant::now() + delays.to(&peer);
            if held_tx.send((due, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let release = async move {
        while let Some((due, chunk)) = held_rx.recv().await {
            tokio::time::sleep_until(due).await;
            if tcp_write.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    let incoming = async move {
        let _ = tokio::io::copy(&mut tcp_read, &mut pipe_write).await;
    };
    tokio::select! {
        _ = async { tokio::join!(outgoing, release) } => {}
        _ = incoming => {}
    }
}
