use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

impl PeerChannels {
    pub fn new(connect_timeout: Duration, source_ip: Option<std::net::IpAddr>) -> PeerChannels {
        PeerChannels {
            channels: Arc::new(Mutex::new(HashMap::new())),
            connect_timeout,
            channels_max: 4096,
            source_ip,
            delays: LinkDelays::from_env(),
        }
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
        let channel = match &self.delays {
            Some(delays) => endpoint.connect_with_connector_lazy(DelayConnector {
                delays: delays.clone(),
                addr: addr.to_string(),
                source_ip: self.source_ip,
            }),
            None => endpoint.connect_lazy(),
        };
        if channels.len() >= self.channels_max {
            channels.clear();
        }
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}
