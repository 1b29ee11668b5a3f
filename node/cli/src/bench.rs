//! `larder bench`: the project's load generator. Every run is bounded in time and in
//! requests, and talks only to the endpoints it is given.
//!
//! - `bench kv`: get or put throughput and latency at a concurrency, over a number of
//!   HTTP/2 channels, against any node;
//! - `bench propagation`: writes at one node, watches at the others, and reports how long
//!   each write took to be seen everywhere;
//! - `bench object`: object writes (replicated to a majority) or reads at the owner;
//! - `bench etcd-put`: the same loop against etcd's `KV/Put`, as a reference
//!   ([`crate::bench_etcd`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use larder_base::{Clock, SystemClock};
use larder_client::kv::PutItem;
use larder_client::{Client, ClientConfig, ClientError};
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// KV get or put load against one node.
    Kv(KvBenchArgs),
    /// Delay from a write at one node until every other node has it.
    Propagation(PropagationArgs),
    /// Object calls (writes replicated to a majority, or reads at the owner).
    Object(ObjectBenchArgs),
    /// etcd v3 puts (`etcdserverpb.KV/Put`), the reference for a replicated write.
    EtcdPut(crate::bench_etcd::EtcdPutArgs),
}

#[derive(Args, Debug)]
pub struct ObjectBenchArgs {
    /// `add` (a replicated write) or `get` (a read at the owner).
    #[arg(long, value_enum, default_value = "write")]
    pub op: ObjectOp,
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Objects the workers spread over (1: all calls on one object).
    #[arg(long, default_value_t = 1)]
    pub objects: usize,
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    #[arg(long, default_value_t = 1_000_000)]
    pub requests_max: u64,
    #[arg(long, default_value = "bench-objects")]
    pub namespace: String,
    /// `--op cold`: how long to leave the objects alone before reading them.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub idle: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ObjectOp {
    Write,
    Read,
    /// One read per object after it left memory (start the nodes with a short
    /// `objects.idle_after_ms` and pass a longer `--idle`).
    Cold,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchOp {
    Get,
    Put,
}

#[derive(Args, Debug)]
pub struct KvBenchArgs {
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
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys read or written.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    #[arg(long, default_value = "bench")]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct PropagationArgs {
    /// Api addresses: the first takes the writes, the others are watched.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    #[arg(long, default_value_t = 500)]
    pub writes: usize,
    /// Pause between writes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5ms")]
    pub interval: Duration,
    #[arg(long, default_value = "bench")]
    pub namespace: String,
    /// Give up waiting for stragglers after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,
}

/// Most concurrent workers and channels a run may use.
pub(crate) const CONCURRENCY_MAX: usize = 4096;
pub(crate) const CHANNELS_MAX: usize = 256;

pub async fn run(endpoint: &str, json_out: bool, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Kv(args) => kv(endpoint, json_out, args).await,
        BenchCommand::Propagation(args) => propagation(json_out, args).await,
        BenchCommand::Object(args) => objects(endpoint, json_out, args).await,
        BenchCommand::EtcdPut(args) => crate::bench_etcd::run(json_out, args).await,
    }
}

async fn ensure_namespace(client: &Client, namespace: &str) -> anyhow::Result<()> {
    match client.create_namespace(namespace, vec![], None).await {
        Ok(_) => Ok(()),
        Err(ClientError::Other { code, .. }) if code == "AlreadyExists" => Ok(()),
        Err(err) => Err(err).context("creating the bench namespace"),
    }
}

fn micros(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(crate) fn report(
    json_out: bool,
    title: &str,
    ops: u64,
    errors: u64,
    elapsed: Duration,
    h: &Histogram<u64>,
    extra: serde_json::Value,
) {
    let rate = ops as f64 / elapsed.as_secs_f64();
    if json_out {
        println!(
            "{}",
            json!({
                "bench": title, "ops": ops, "errors": errors, "seconds": elapsed.as_secs_f64(),
                "ops_per_sec": rate, "p50_ms": micros(h, 0.5), "p99_ms": micros(h, 0.99),
                "p999_ms": micros(h, 0.999), "max_ms": h.max() as f64 / 1000.0, "params": extra,
            })
        );
    } else if title.starts_with("propagation") {
        println!(
            "{title}: {ops} writes, {errors} not seen in time; delay ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            micros(h, 0.5),
            micros(h, 0.99),
            micros(h, 0.999),
            h.max() as f64 / 1000.0
        );
    } else {
        println!(
            "{title}: {ops} ops in {:.1} s = {rate:.0} ops/s, errors {errors}; latency ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            elapsed.as_secs_f64(),
            micros(h, 0.5),
            micros(h, 0.99),
            micros(h, 0.999),
            h.max() as f64 / 1000.0
        );
    }
}

pub(crate) fn histogram() -> anyhow::Result<Histogram<u64>> {
    // Microseconds up to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

async fn kv(endpoint: &str, json_out: bool, args: KvBenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        bail!("--concurrency must be 1..={CONCURRENCY_MAX}");
    }
    if args.channels == 0 || args.channels > CHANNELS_MAX {
        bail!("--channels must be 1..={CHANNELS_MAX}");
    }
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let config = ClientConfig {
        attempts_max: 1,
        ..ClientConfig::default()
    };
    let clients: Vec<Client> = (0..args.channels)
        .map(|_| Client::new(endpoint, config.clone()))
        .collect::<Result<_, _>>()?;
    ensure_namespace(&clients[0], &args.namespace).await?;
    // Let the namespace reach the node's KV before loading it.
    let probe = clients[0].kv(&args.namespace);
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe.get("probe").await.is_err() {
        if Instant::now() > deadline {
            bail!("namespace {} not usable at {endpoint}", args.namespace);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = |i: usize| format!("bench-{i:08}");
    if args.op == BenchOp::Get {
        for chunk in (0..args.keys).collect::<Vec<_>>().chunks(1000) {
            let items = chunk
                .iter()
                .map(|i| PutItem {
                    key: key(*i).into_bytes(),
                    value: vec![b'v'; args.value_size],
                    ..Default::default()
                })
                .collect();
            clients[0]
                .kv(&args.namespace)
                .put_many(items)
                .await
                .context("loading keys")?;
        }
    }
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let merged = Arc::new(Mutex::new(histogram()?));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let kv = clients[w % clients.len()].kv(&args.namespace);
        let (done, errors, merged) = (done.clone(), errors.clone(), merged.clone());
        let (op, keys, value_size, requests_max) =
            (args.op, args.keys, args.value_size, args.requests_max);
        workers.push(tokio::spawn(async move {
            let mut h = histogram().expect("valid bounds");
            let mut i = w;
            while Instant::now() < deadline && done.fetch_add(1, Ordering::Relaxed) < requests_max {
                let k = format!("bench-{:08}", i % keys);
                let t = Instant::now();
                let ok = match op {
                    BenchOp::Get => kv.get(&k).await.is_ok(),
                    BenchOp::Put => {
                        // Unique values: a store may skip rewriting an identical value.
                        let mut value = format!("{w}:{i}:").into_bytes();
                        value.resize(value_size.max(value.len()), b'v');
                        kv.put(k, value).send().await.is_ok()
                    }
                };
                if ok {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
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
    let errors = errors.load(Ordering::Relaxed);
    let title = match args.op {
        BenchOp::Get => "kv get",
        BenchOp::Put => "kv put",
    };
    let params = json!({"endpoint": endpoint, "concurrency": args.concurrency, "channels": args.channels, "value_size": args.value_size, "keys": args.keys});
    report(json_out, title, h.len(), errors, elapsed, &h, params);
    Ok(())
}

async fn propagation(json_out: bool, args: PropagationArgs) -> anyhow::Result<()> {
    if args.endpoints.len() < 2 {
        bail!("--endpoints needs the writer and at least one node to watch");
    }
    let writer = Client::connect_lazy(&args.endpoints[0])?;
    ensure_namespace(&writer, &args.namespace).await?;
    let run_id = SystemClock.now_ms();
    let prefix = format!("prop-{run_id}/");
    // Watch first, at every other node.
    let seen: Arc<Mutex<HashMap<(usize, String), Instant>>> = Arc::default();
    let mut watchers = Vec::new();
    for (n, endpoint) in args.endpoints.iter().enumerate().skip(1) {
        let client = Client::connect_lazy(endpoint)?;
        let kv = client.kv(&args.namespace);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = loop {
            match kv.watch(prefix.clone().into_bytes(), Vec::new()).await {
                Ok(events) => break Box::pin(events),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(err) => return Err(err).context("watch"),
            }
        };
        let seen = seen.clone();
        let expected = args.writes;
        watchers.push(tokio::spawn(async move {
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
        }));
    }
    let kv = writer.kv(&args.namespace);
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
    let _ = tokio::time::timeout(args.timeout, futures::future::join_all(watchers)).await;
    let seen = seen.lock().await;
    let mut h = histogram()?;
    let mut missing = 0u64;
    for (key, t) in &written {
        let mut slowest = Duration::ZERO;
        for n in 1..args.endpoints.len() {
            match seen.get(&(n, key.clone())) {
                Some(at) => slowest = slowest.max(at.saturating_duration_since(*t)),
                None => missing += 1,
            }
        }
        let _ = h.record(slowest.as_micros().max(1) as u64);
    }
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

async fn objects(endpoint: &str, json_out: bool, args: ObjectBenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        bail!("--concurrency must be 1..={CONCURRENCY_MAX}");
    }
    if args.channels == 0 || args.channels > CHANNELS_MAX || args.objects == 0 {
        bail!("--channels must be 1..={CHANNELS_MAX} and --objects at least 1");
    }
    let config = ClientConfig {
        attempts_max: 1,
        ..ClientConfig::default()
    };
    let clients: Vec<Client> = (0..args.channels)
        .map(|_| Client::new(endpoint, config.clone()))
        .collect::<Result<_, _>>()?;
    ensure_namespace(&clients[0], &args.namespace).await?;
    let run = SystemClock.now_ms();
    let name = |i: usize| format!("bench-{run}-{i}");
    // Place and activate every object before measuring.
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..args.objects {
        let object = clients[0].objects(&args.namespace).by_name(&name(i));
        while object.add("n", 0).await.is_err() {
            if Instant::now() > deadline {
                bail!("objects not usable at {endpoint}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if args.op == ObjectOp::Cold {
        return cold_reads(&clients[0], json_out, &args, name).await;
    }
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let merged = Arc::new(Mutex::new(histogram()?));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let object = clients[w % clients.len()]
            .objects(&args.namespace)
            .by_name(&name(w % args.objects));
        let (done, errors, merged, op, requests_max) = (
            done.clone(),
            errors.clone(),
            merged.clone(),
            args.op,
            args.requests_max,
        );
        workers.push(tokio::spawn(async move {
            let mut h = histogram().expect("valid bounds");
            while Instant::now() < deadline && done.fetch_add(1, Ordering::Relaxed) < requests_max {
                let t = Instant::now();
                let ok = match op {
                    ObjectOp::Write => object.add("n", 1).await.is_ok(),
                    ObjectOp::Read | ObjectOp::Cold => object.get("n").await.is_ok(),
                };
                if ok {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = merged.lock().await.add(&h);
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    let h = merged.lock().await;
    let title = match args.op {
        ObjectOp::Write => "object write (add, majority)",
        ObjectOp::Read | ObjectOp::Cold => "object read (owner)",
    };
    let params = json!({"endpoint": endpoint, "concurrency": args.concurrency, "objects": args.objects, "channels": args.channels});
    report(
        json_out,
        title,
        h.len(),
        errors.load(Ordering::Relaxed),
        elapsed,
        &h,
        params,
    );
    Ok(())
}

/// Reads each object once after it has been idle for `--idle`: the first call after it
/// left memory loads it from storage and confirms its lease with a majority.
async fn cold_reads(
    client: &Client,
    json_out: bool,
    args: &ObjectBenchArgs,
    name: impl Fn(usize) -> String,
) -> anyhow::Result<()> {
    tokio::time::sleep(args.idle).await;
    let mut h = histogram()?;
    let mut errors = 0;
    let started = Instant::now();
    for i in 0..args.objects.min(args.requests_max as usize) {
        let object = client.objects(&args.namespace).by_name(&name(i));
        let t = Instant::now();
        match object.get("n").await {
            Ok(_) => {
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            Err(_) => errors += 1,
        }
    }
    let params = json!({"objects": args.objects, "idle_ms": args.idle.as_millis() as u64});
    report(
        json_out,
        "object cold start (first read after eviction)",
        h.len(),
        errors,
        started.elapsed(),
        &h,
        params,
    );
    Ok(())
}
