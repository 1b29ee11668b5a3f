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
    /// How long a call keeps retrying, in all: longer than a failover on the default
    /// settings (docs/operations.md), so that calls ride one out.
    pub retry_deadline: Duration,
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
            attempts_max: 30,
            retry_deadline: Duration::from_secs(12),
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

    /// Runs `call` with retries: on `UNAVAILABLE` it waits (exponential backoff with
    /// jitter) and tries again — at the node named in the error when the server named
    /// one (a leader or owner redirect), else at this client's node — for at most
    /// `attempts_max` attempts and `retry_deadline` overall. A redirect that cannot be
    /// reached sends the next attempt back to this client's node, which knows where the
    /// object went. A node that never serves the call (`FAILED_PRECONDITION`, a
    /// namespace it may not hold) and names one that does is left for that one at once,
    /// once. When the last failure is the client's own (a connection refused), the
    /// error still carries what the server said before it.
    pub(crate) async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let started = tokio::time::Instant::now();
        let mut channel = self.channel.clone();
        let mut backoff = self.config.backoff_initial;
        let mut attempt = 1;
        let mut sent_elsewhere = false;
        let mut server_said: Option<String> = None;
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
                    let local = is_transport_failure(&status);
                    let err = ClientError::from(status);
                    if local {
                        // Back to this client's node: a redirect target may be the
                        // dead node a failover is replacing.
                        channel = self.channel.clone();
                        with_earlier(err, server_said.as_deref())
                    } else {
                        server_said = Some(err.to_string());
                        err
                    }
                }
            };
            let sleep = jittered(backoff);
            let out_of_time = started.elapsed() + sleep > self.config.retry_deadline;
            if !err.is_retryable() || attempt >= self.config.attempts_max || out_of_time {
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
            tokio::time::sleep(sleep).await;
            backoff = (backoff * 2).min(self.config.backoff_max);
            attempt += 1;
        }
    }
}

/// Whether `status` is the client's own failure to reach the node (no answer from a
/// server): tonic gives those a transport error as their source.
fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// `err`, a failure to reach a node, with what a server said before it, if anything.
fn with_earlier(err: ClientError, server_said: Option<&str>) -> ClientError {
    match (err, server_said) {
        (ClientError::Unavailable { message, retry_at }, Some(said)) => ClientError::Unavailable {
            message: format!("{message} (before that, the cluster said: {said})"),
            retry_at,
        },
        (err, _) => err,
    }
}

/// Between half of `backoff` and all of it: clients that failed together do not all
/// come back at once.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    half + half.mul_f64(rand::random::<f64>())
}
