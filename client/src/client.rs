use std::future::Future;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::{ClientError, RETRY_ENDPOINT_METADATA};

/// Timeouts and retry limits of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Deadline of one attempt.
    pub request_timeout: Duration,
    /// Attempts per call, the first included, while the answer is `UNAVAILABLE`.
    pub attempts_max: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Largest message the client sends or accepts.
    pub message_bytes_max: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            attempts_max: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            message_bytes_max: 32 * 1024 * 1024,
        }
    }
}

/// A connection to one Larder node (its api listener).
///
/// Cheap to clone: clones share the HTTP/2 channel, which multiplexes concurrent calls.
#[derive(Clone)]
pub struct Client {
    endpoint: String,
    channel: Channel,
    config: ClientConfig,
}

pub(crate) fn normalize(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

impl Client {
    /// A client for `endpoint` (`host:port` or `http://host:port`). Connects lazily: the
    /// first call reports an unreachable node.
    pub fn new(endpoint: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let endpoint = normalize(endpoint);
        let channel = Self::channel(&endpoint, &config)?;
        Ok(Client {
            endpoint,
            channel,
            config,
        })
    }

    /// A client for `endpoint` with default settings.
    pub fn connect_lazy(endpoint: &str) -> Result<Client, ClientError> {
        Self::new(endpoint, ClientConfig::default())
    }

    fn channel(endpoint: &str, config: &ClientConfig) -> Result<Channel, ClientError> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|err| ClientError::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                reason: err.to_string(),
            })?
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(channel)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Runs `call` with retries: on `UNAVAILABLE` it waits (exponential backoff) and tries
    /// again, at the node named in the error when the server named one (leader redirect).
    /// A node that never serves the call (`FAILED_PRECONDITION`, a namespace it may not
    /// hold) and names one that does is left for that one at once, once.
    pub(crate) async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut channel = self.channel.clone();
        let mut backoff = self.config.backoff_initial;
        let mut attempt = 1;
        let mut sent_elsewhere = false;
        loop {
            let err = match call(channel.clone()).await {
                Ok(value) => return Ok(value),
                Err(status) => {
                    let elsewhere = (status.code() == tonic::Code::FailedPrecondition)
                        .then(|| status.metadata().get(RETRY_ENDPOINT_METADATA))
                        .flatten()
                        .and_then(|v| v.to_str().ok());
                    if let Some(addr) = elsewhere
                        && !sent_elsewhere
                    {
                        tracing::debug!(endpoint = %addr, "calling a node that serves it");
                        channel = Self::channel(&normalize(addr), &self.config)?;
                        sent_elsewhere = true;
                        continue;
                    }
                    ClientError::from(status)
                }
            };
            if !err.is_retryable() || attempt >= self.config.attempts_max {
                return Err(err);
            }
            if let ClientError::Unavailable {
                retry_at: Some(addr),
                ..
            } = &err
            {
                tracing::debug!(endpoint = %addr, "following redirect");
                channel = Self::channel(&normalize(addr), &self.config)?;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.backoff_max);
            attempt += 1;
        }
    }
}
