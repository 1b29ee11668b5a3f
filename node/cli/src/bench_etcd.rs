//! `larder bench etcd-put`: etcd v3 `KV/Put` latency and throughput, measured the same
//! way as `bench object`, as the reference for a replicated, durable write.
//!
//! Speaks etcd's gRPC API directly (`larder_proto::bench::etcd`, a wire-compatible
//! slice of etcd's `rpc.proto`): no etcd client library, so both systems are driven by
//! the same runtime, HTTP/2 stack and measurement loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use larder_proto::bench::etcd::PutRequest;
use larder_proto::bench::etcd::kv_client::KvClient;
use serde_json::json;
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::bench::{CHANNELS_MAX, CONCURRENCY_MAX, histogram, report};

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
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys written (under `--prefix`).
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
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

pub async fn run(json_out: bool, args: EtcdPutArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        bail!("--concurrency must be 1..={CONCURRENCY_MAX}");
    }
    if args.channels == 0 || args.channels > CHANNELS_MAX {
        bail!("--channels must be 1..={CHANNELS_MAX}");
    }
    if args.keys == 0 || args.value_size > VALUE_SIZE_MAX {
        bail!("--keys must be at least 1 and --value-size at most {VALUE_SIZE_MAX}");
    }
    let clients: Vec<KvClient<Channel>> = (0..args.channels)
        .map(|i| channel(&args.endpoints[i % args.endpoints.len()]).map(KvClient::new))
        .collect::<Result<_, _>>()?;
    // One put per channel before measuring: connects, and shows the peer is etcd (the
    // answering member and the cluster are reported with the figures).
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
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let merged = Arc::new(Mutex::new(histogram()?));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let mut client = clients[w % clients.len()].clone();
        let (done, errors, merged) = (done.clone(), errors.clone(), merged.clone());
        let (keys, value_size, requests_max) = (args.keys, args.value_size, args.requests_max);
        let prefix = args.prefix.clone();
        workers.push(tokio::spawn(async move {
            let mut h = histogram().expect("valid bounds");
            let mut i = w;
            while Instant::now() < deadline && done.fetch_add(1, Ordering::Relaxed) < requests_max {
                // Unique values, as in `bench kv`.
                let mut value = format!("{w}:{i}:").into_bytes();
                value.resize(value_size.max(value.len()), b'v');
                let put = PutRequest {
                    key: format!("{prefix}{:08}", i % keys).into_bytes(),
                    value,
                    ..Default::default()
                };
                let t = Instant::now();
                match client.put(put).await {
                    Ok(_) => {
                        let _ = h.record(t.elapsed().as_micros() as u64);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 7919;
            }
            let _ = merged.lock().await.add(&h);
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    let h = merged.lock().await;
    let params = json!({
        "endpoints": args.endpoints, "concurrency": args.concurrency, "channels": args.channels,
        "value_size": args.value_size, "keys": args.keys,
        "etcd_cluster_id": format!("{:x}", headers[0].cluster_id),
        "etcd_member_ids": headers.iter().map(|h| format!("{:x}", h.member_id)).collect::<Vec<_>>(),
        "etcd_raft_term": headers[0].raft_term,
    });
    report(
        json_out,
        "etcd put",
        h.len(),
        errors.load(Ordering::Relaxed),
        elapsed,
        &h,
        params,
    );
    Ok(())
}
