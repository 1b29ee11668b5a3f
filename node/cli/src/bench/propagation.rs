//! `larder bench propagation`: writes at one node, watches at the others, and reports
//! how long each write took to be seen at every one of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use hdrhistogram::Histogram;
use larder_base::{Clock, SystemClock};
use larder_client::Client;
use larder_client::kv::KvNamespace;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::ensure_namespace;
use super::report::{histogram, report};

#[derive(Args, Debug)]
pub struct PropagationArgs {
    /// Api addresses: the first takes the writes, the others are watched.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// Writes to make at the first endpoint.
    #[arg(long, default_value_t = 500)]
    pub writes: usize,
    /// Pause between writes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5ms")]
    pub interval: Duration,
    /// Namespace of the keys, created if missing.
    #[arg(long, default_value = "bench")]
    pub namespace: String,
    /// Give up waiting for stragglers after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,
}

/// When each watched node (by its place in `--endpoints`) first saw each key.
type Seen = Arc<Mutex<HashMap<(usize, String), Instant>>>;

pub(super) async fn run(json_out: bool, args: PropagationArgs) -> anyhow::Result<()> {
    if args.endpoints.len() < 2 {
        bail!("--endpoints needs the writer and at least one node to watch");
    }
    let writer = Client::connect_lazy(&args.endpoints[0])?;
    ensure_namespace(&writer, &args.namespace).await?;
    let run_id = SystemClock.now_ms();
    let prefix = format!("prop-{run_id}/");
    // Watch first, at every other node.
    let seen = Seen::default();
    let mut watchers = Vec::new();
    for (n, endpoint) in args.endpoints.iter().enumerate().skip(1) {
        watchers.push(watch(endpoint, n, &args, &prefix, seen.clone()).await?);
    }
    let written = write(&writer.kv(&args.namespace), &args, &prefix, run_id).await?;
    let _ = tokio::time::timeout(args.timeout, futures::future::join_all(watchers)).await;
    let (h, missing) = delays(&*seen.lock().await, &written, args.endpoints.len())?;
    let params = json!({"endpoints": args.endpoints, "writes": args.writes, "interval_ms": args.interval.as_millis() as u64});
    report(
        json_out,
        "propagation (write start to seen at every node)",
        h.len(),
        missing,
        Duration::from_secs(1),
        &h,
        params,
    );
    Ok(())
}

/// Watches the run's keys at node `n` until all `--writes` of them were seen there.
/// The watch is retried for a while: the namespace may not have reached the node yet.
async fn watch(
    endpoint: &str,
    n: usize,
    args: &PropagationArgs,
    prefix: &str,
    seen: Seen,
) -> anyhow::Result<JoinHandle<()>> {
    let client = Client::connect_lazy(endpoint)?;
    let kv = client.kv(&args.namespace);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = loop {
        match kv.watch(prefix.as_bytes().to_vec(), Vec::new()).await {
            Ok(events) => break Box::pin(events),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => return Err(err).context("watch"),
        }
    };
    let expected = args.writes;
    Ok(tokio::spawn(async move {
        let mut count = 0;
        while count < expected {
            let Some(Ok(event)) = events.next().await else {
                break;
            };
            let key = String::from_utf8_lossy(&event.key).to_string();
            if seen.lock().await.insert((n, key), Instant::now()).is_none() {
                count += 1;
            }
        }
    }))
}

/// Writes `--writes` keys, `--interval` apart; returns each key with when its write
/// started.
async fn write(
    kv: &KvNamespace,
    args: &PropagationArgs,
    prefix: &str,
    run_id: u64,
) -> anyhow::Result<Vec<(String, Instant)>> {
    let mut written = Vec::with_capacity(args.writes);
    for i in 0..args.writes {
        let key = format!("{prefix}{i:06}");
        let t = Instant::now();
        kv.put(key.clone(), format!("{run_id}:{i}"))
            .send()
            .await
            .context("write")?;
        written.push((key, t));
        tokio::time::sleep(args.interval).await;
    }
    Ok(written)
}

/// For each write, the delay until the slowest watched node saw it; and how many
/// (write, node) pairs were never seen.
fn delays(
    seen: &HashMap<(usize, String), Instant>,
    written: &[(String, Instant)],
    endpoints: usize,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let mut h = histogram()?;
    let mut missing = 0u64;
    for (key, t) in written {
        let mut slowest = Duration::ZERO;
        for n in 1..endpoints {
            match seen.get(&(n, key.clone())) {
                Some(at) => slowest = slowest.max(at.saturating_duration_since(*t)),
                None => missing += 1,
            }
        }
        let _ = h.record(slowest.as_micros().max(1) as u64);
    }
    Ok((h, missing))
}
