//! `larder bench etcd-put`: etcd v3 `KV/Put` latency and throughput, measured the same
//! way as `bench object`, as the reference for a replicated, durable write.
//!
//! Speaks etcd's gRPC API directly (`larder_proto::bench::etcd`, a wire-compatible
//! slice of etcd's `rpc.proto`): no etcd client library, so both systems are driven by
//! the same runtime, HTTP/2 stack and measurement loop.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use larder_proto::bench::etcd::kv_client::KvClient;
use larder_proto::bench::etcd::{PutRequest, ResponseHeader};
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

use super::load::{self, Worker};
use super::{check_channels, check_concurrency};

/// Deadline of one put; a put that runs out counts as an error.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest value a run may write (etcd's default request limit is 1.5 MiB).
const VALUE_SIZE_MAX: usize = 1024 * 1024;

#[derive(Args, Debug)]
pub struct EtcdPutArgs {
    /// etcd client addresses (`host:port`), comma-separated; channels are spread over
    /// them round-robin (etcd forwards a put received by a follower to its leader).
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// Puts in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// HTTP/2 connections shared by the workers.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// How long to run (after one warm-up put per channel).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Upper bound on puts, whatever the duration.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests_max: u64,
    /// Bytes per value written (at most 1 MiB).
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub value_size: usize,
    /// Distinct keys written (under `--prefix`).
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Prefix of the keys written.
    #[arg(long, default_value = "larder-bench/")]
    pub prefix: String,
}

fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    Ok(Endpoint::from_shared(uri)
        .with_context(|| format!("etcd endpoint {endpoint:?}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(PUT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}

pub(super) async fn run(json_out: bool, args: EtcdPutArgs) -> anyhow::Result<()> {
    check_concurrency(args.concurrency)?;
    check_channels(args.channels)?;
    if args.keys == 0 || args.value_size > VALUE_SIZE_MAX {
        bail!("--keys must be at least 1 and --value-size at most {VALUE_SIZE_MAX}");
    }
    let clients: Vec<KvClient<Channel>> = (0..args.channels)
        .map(|i| channel(&args.endpoints[i % args.endpoints.len()]).map(KvClient::new))
        .collect::<Result<_, _>>()?;
    let headers = warm_up(&clients, &args).await?;
    let workers = (0..args.concurrency)
        .map(|w| EtcdWorker {
            client: clients[w % clients.len()].clone(),
            worker: w,
            i: w,
            keys: args.keys,
            value_size: args.value_size,
            prefix: args.prefix.clone(),
        })
        .collect();
    let measured = load::run(workers, args.duration, args.requests_max).await?;
    let params = json!({
        "endpoints": args.endpoints, "concurrency": args.concurrency, "channels": args.channels,
        "value_size": args.value_size, "keys": args.keys,
        "etcd_cluster_id": format!("{:x}", headers[0].cluster_id),
        "etcd_member_ids": headers.iter().map(|h| format!("{:x}", h.member_id)).collect::<Vec<_>>(),
        "etcd_raft_term": headers[0].raft_term,
    });
    measured.report(json_out, "etcd put", params);
    Ok(())
}

/// One put per channel before measuring: connects, and shows the peer is etcd (the
/// answering member and the cluster are reported with the figures).
async fn warm_up(
    clients: &[KvClient<Channel>],
    args: &EtcdPutArgs,
) -> anyhow::Result<Vec<ResponseHeader>> {
    let mut headers = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let put = PutRequest {
            key: format!("{}warmup", args.prefix).into_bytes(),
            value: b"w".to_vec(),
            ..Default::default()
        };
        let answer = client.clone().put(put).await.with_context(|| {
            format!(
                "warm-up put at {}",
                args.endpoints[i % args.endpoints.len()]
            )
        })?;
        headers.push(
            answer
                .into_inner()
                .header
                .context("etcd answered a put without a response header")?,
        );
    }
    Ok(headers)
}

struct EtcdWorker {
    client: KvClient<Channel>,
    worker: usize,
    /// Steps through the keys by a prime stride, as `bench kv` does.
    i: usize,
    keys: usize,
    value_size: usize,
    prefix: String,
}

impl Worker for EtcdWorker {
    fn request(&mut self) -> impl Future<Output = bool> + Send {
        // Unique values, as in `bench kv`.
        let mut value = format!("{}:{}:", self.worker, self.i).into_bytes();
        value.resize(self.value_size.max(value.len()), b'v');
        let put = PutRequest {
            key: format!("{}{:08}", self.prefix, self.i % self.keys).into_bytes(),
            value,
            ..Default::default()
        };
        self.i += 7919;
        async move { self.client.put(put).await.is_ok() }
    }
}
