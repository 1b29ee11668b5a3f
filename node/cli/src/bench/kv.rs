//! `larder bench kv`: KV get or put load against one node.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use larder_client::kv::{KvNamespace, PutItem};
use serde_json::json;

use super::load::{self, Worker};
use super::{check_channels, check_concurrency, clients, ensure_namespace};
use crate::options::EndpointArg;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchOp {
    Get,
    Put,
}

#[derive(Args, Debug)]
pub struct KvBenchArgs {
    #[command(flatten)]
    pub connect: EndpointArg,
    /// Operation to measure: get (of keys written before the run) or put (of unique
    /// values).
    #[arg(long, value_enum, default_value = "get")]
    pub op: BenchOp,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// HTTP/2 connections shared by the workers.
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// How long to run (after warm-up).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Upper bound on requests, whatever the duration.
    #[arg(long, default_value_t = 5_000_000)]
    pub requests_max: u64,
    /// Bytes per value written (by `--op put`, and before a `--op get` run).
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub value_size: usize,
    /// Distinct keys read or written.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Namespace of the keys, created if missing.
    #[arg(long, default_value = "bench")]
    pub namespace: String,
}

/// Keys are loaded in batches of this many.
const LOAD_BATCH: usize = 1000;

pub(super) async fn run(json_out: bool, args: KvBenchArgs) -> anyhow::Result<()> {
    let endpoint = args.connect.endpoint.as_str();
    check_concurrency(args.concurrency)?;
    check_channels(args.channels)?;
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let clients = clients(endpoint, args.channels)?;
    ensure_namespace(&clients[0], &args.namespace).await?;
    wait_usable(&clients[0].kv(&args.namespace), endpoint, &args.namespace).await?;
    if args.op == BenchOp::Get {
        load_keys(&clients[0].kv(&args.namespace), &args).await?;
    }
    let workers = (0..args.concurrency)
        .map(|w| KvWorker {
            kv: clients[w % clients.len()].kv(&args.namespace),
            op: args.op,
            worker: w,
            i: w,
            keys: args.keys,
            value_size: args.value_size,
        })
        .collect();
    let measured = load::run(workers, args.duration, args.requests_max).await?;
    let title = match args.op {
        BenchOp::Get => "kv get",
        BenchOp::Put => "kv put",
    };
    let params = json!({"endpoint": endpoint, "concurrency": args.concurrency, "channels": args.channels, "value_size": args.value_size, "keys": args.keys});
    measured.report(json_out, title, params);
    Ok(())
}

fn key(i: usize) -> String {
    format!("bench-{i:08}")
}

/// Lets the namespace reach the node's KV before loading it.
async fn wait_usable(kv: &KvNamespace, endpoint: &str, namespace: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while kv.get("probe").await.is_err() {
        if Instant::now() > deadline {
            bail!("namespace {namespace} not usable at {endpoint}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Writes every key `bench kv --op get` reads.
async fn load_keys(kv: &KvNamespace, args: &KvBenchArgs) -> anyhow::Result<()> {
    for chunk in (0..args.keys).collect::<Vec<_>>().chunks(LOAD_BATCH) {
        let items = chunk
            .iter()
            .map(|i| PutItem {
                key: key(*i).into_bytes(),
                value: vec![b'v'; args.value_size],
                ..Default::default()
            })
            .collect();
        kv.put_many(items).await.context("loading keys")?;
    }
    Ok(())
}

struct KvWorker {
    kv: KvNamespace,
    op: BenchOp,
    worker: usize,
    /// Steps through the keys by a prime stride, so successive requests hit scattered keys.
    i: usize,
    keys: usize,
    value_size: usize,
}

impl Worker for KvWorker {
    fn request(&mut self) -> impl Future<Output = bool> + Send {
        let (w, i) = (self.worker, self.i);
        let k = key(i % self.keys);
        self.i += 7919;
        async move {
            match self.op {
                BenchOp::Get => self.kv.get(&k).await.is_ok(),
                BenchOp::Put => {
                    // Unique values: a store may skip rewriting an identical value.
                    let mut value = format!("{w}:{i}:").into_bytes();
                    value.resize(self.value_size.max(value.len()), b'v');
                    self.kv.put(k, value).send().await.is_ok()
                }
            }
        }
    }
}
