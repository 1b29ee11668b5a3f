use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint};

use crate::DirectoryError;
use crate::link_delay::{DelayConnector, LinkDelays};

/// One cached HTTP/2 channel per peer address, shared by Raft and forwarded requests.
///
/// Channels connect lazily and reconnect by themselves, so a peer that is down costs a
/// failed call, not a rebuilt client.
#[derive(Clone)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
    /// Bound on cached channels: addresses of removed peers are evicted past it.
    channels_max: usize,
    source_ip: Option<std::net::IpAddr>,
    /// Test-only fault layer (`LARDER_FAULT_PEER_DELAYS`): latency on chosen links.
    delays: Option<LinkDelays>,
    /// Simulation tests: connections come from here instead of the OS.
    connector: Option<PeerConnector>,
}

/// A byte stream to a peer.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerIo for T {}

/// Opens a byte stream to a peer address. Simulation tests pass one that dials through
/// their simulated network; a node in production uses TCP.
pub type PeerConnector = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Box<dyn PeerIo>>> + Send>>
        + Send
        + Sync,
>;

/// A [`PeerConnector`] in the shape tonic's `connect_with_connector` takes.
#[derive(Clone)]
struct InjectedConnector {
    connect: PeerConnector,
    addr: String,
}

impl tower_service::Service<http::Uri> for InjectedConnector {
    type Response = TokioIo<Box<dyn PeerIo>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let connecting = (self.connect)(self.addr.clone());
        Box::pin(async move { Ok(TokioIo::new(connecting.await?)) })
    }
}

impl PeerChannels {
    pub fn new(connect_timeout: Duration, source_ip: Option<std::net::IpAddr>) -> PeerChannels {
        PeerChannels {
            channels: Arc::new(Mutex::new(HashMap::new())),
            connect_timeout,
            channels_max: 4096,
            source_ip,
            delays: LinkDelays::from_env(),
            connector: None,
        }
    }

    /// Channels that connect through `connector` (simulation tests).
    pub fn with_connector(mut self, connector: Option<PeerConnector>) -> PeerChannels {
        self.connector = connector;
        self
    }

    /// These channels as the factory kv and objects dial their peers with.
    pub fn factory(&self) -> larder_base::ChannelFactory {
        let channels = self.clone();
        std::sync::Arc::new(move |addr: &str| {
            channels
                .channel(addr)
                .map_err(|err| larder_base::DialError {
                    addr: addr.to_string(),
                    reason: err.to_string(),
                })
        })
    }

    pub fn channel(&self, addr: &str) -> Result<Channel, DirectoryError> {
        let mut channels = self
            .channels
            .lock()
            .expect("peer channel map is never left poisoned: no code panics under it");
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|err| {
                DirectoryError::InvalidRequest(format!("bad peer address {addr:?}: {err}"))
            })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .local_address(self.source_ip);
        let channel = match (&self.connector, &self.delays) {
            (Some(connect), _) => endpoint.connect_with_connector_lazy(InjectedConnector {
                connect: connect.clone(),
                addr: addr.to_string(),
            }),
            (None, Some(delays)) => endpoint.connect_with_connector_lazy(DelayConnector {
                delays: delays.clone(),
                addr: addr.to_string(),
                source_ip: self.source_ip,
            }),
            (None, None) => endpoint.connect_lazy(),
        };
        if channels.len() >= self.channels_max {
            channels.clear();
        }
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}
