//! `larder bench object`: object writes (replicated to a majority), reads at the owner,
//! or first reads after the objects left memory.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, ValueEnum};
use larder_base::{Clock, SystemClock};
use larder_client::objects::{ObjectHandle, ObjectNamespace};
use serde_json::json;

use super::load::{self, Worker};
use super::report::{histogram, report};
use super::{CHANNELS_MAX, check_concurrency, clients_over, ensure_namespace};
use crate::options::EndpointArg;

#[derive(Args, Debug)]
pub struct ObjectBenchArgs {
    #[command(flatten)]
    pub connect: EndpointArg,
    /// `write` (an `add`, replicated), `read` (a `get` at the owner), `cold` (first reads
    /// after eviction) or `create` (new objects).
    #[arg(long, value_enum, default_value = "write")]
    pub op: ObjectOp,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Objects the workers spread over (1: all calls on one object).
    #[arg(long, default_value_t = 1)]
    pub objects: usize,
    /// HTTP/2 connections shared by the workers.
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// More api addresses (repeatable): the channels, and with them the workers, take
    /// `--endpoint` and these in turn — to create objects through several nodes.
    #[arg(long = "also", value_name = "ENDPOINT")]
    pub also: Vec<String>,
    /// How long to run (after the objects are activated).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Upper bound on calls, whatever the duration.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests_max: u64,
    /// Namespace of the objects, created if missing.
    #[arg(long, default_value = "bench-objects")]
    pub namespace: String,
    /// `--op cold`: how long to leave the objects alone before reading them.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub idle: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ObjectOp {
    /// An `add` on the object, replicated to a majority.
    Write,
    /// A `get` at the owner.
    Read,
    /// One read per object after it left memory (start the nodes with a short
    /// `objects.idle_after_ms` and pass a longer `--idle`).
    Cold,
    /// Creates `--objects` new objects (a first write each), `--concurrency` at once,
    /// and reports the creation rate per tenth of them.
    Create,
}

pub(super) async fn run(json_out: bool, args: ObjectBenchArgs) -> anyhow::Result<()> {
    let endpoint = args.connect.endpoint.as_str();
    check_concurrency(args.concurrency)?;
    if args.channels == 0 || args.channels > CHANNELS_MAX || args.objects == 0 {
        bail!("--channels must be 1..={CHANNELS_MAX} and --objects at least 1");
    }
    let endpoints: Vec<&str> = std::iter::once(endpoint)
        .chain(args.also.iter().map(String::as_str))
        .collect();
    let clients = clients_over(&endpoints, args.channels)?;
    ensure_namespace(&clients[0], &args.namespace).await?;
    // Fresh objects each run: none left over in memory or with a history from before.
    let run = SystemClock.now_ms();
    if args.op == ObjectOp::Create {
        return super::creation::run(&clients, json_out, &args, run).await;
    }
    activate(&clients[0].objects(&args.namespace), endpoint, &args, run).await?;
    if args.op == ObjectOp::Cold {
        return cold_reads(&clients[0].objects(&args.namespace), json_out, &args, run).await;
    }
    let workers = (0..args.concurrency)
        .map(|w| ObjectWorker {
            object: clients[w % clients.len()]
                .objects(&args.namespace)
                .by_name(&name(run, w % args.objects)),
            op: args.op,
        })
        .collect();
    let measured = load::run(workers, args.duration, args.requests_max).await?;
    let title = match args.op {
        ObjectOp::Write => "object write (add, majority)",
        ObjectOp::Read | ObjectOp::Cold => "object read (owner)",
        // Returned above: creation runs its own loop (creation.rs).
        ObjectOp::Create => "object create",
    };
    let params = json!({"endpoints": endpoints, "concurrency": args.concurrency, "objects": args.objects, "channels": args.channels});
    measured.report(json_out, title, params);
    Ok(())
}

/// The `i`th object of run `run`.
pub(super) fn name(run: u64, i: usize) -> String {
    format!("bench-{run}-{i}")
}

/// Places and activates every object before measuring, so that the figures are of
/// calls on live objects.
async fn activate(
    objects: &ObjectNamespace,
    endpoint: &str,
    args: &ObjectBenchArgs,
    run: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..args.objects {
        let object = objects.by_name(&name(run, i));
        while object.add("n", 0).await.is_err() {
            if Instant::now() > deadline {
                bail!("objects not usable at {endpoint}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

struct ObjectWorker {
    object: ObjectHandle,
    op: ObjectOp,
}

impl Worker for ObjectWorker {
    async fn request(&mut self) -> bool {
        match self.op {
            ObjectOp::Write | ObjectOp::Create => self.object.add("n", 1).await.is_ok(),
            ObjectOp::Read | ObjectOp::Cold => self.object.get("n").await.is_ok(),
        }
    }
}

/// Reads each object once after it has been idle for `--idle`: the first call after it
/// left memory loads it from storage and confirms its lease with a majority.
async fn cold_reads(
    objects: &ObjectNamespace,
    json_out: bool,
    args: &ObjectBenchArgs,
    run: u64,
) -> anyhow::Result<()> {
    tokio::time::sleep(args.idle).await;
    let mut h = histogram()?;
    let mut errors = 0;
    let started = Instant::now();
    for i in 0..args.objects.min(args.requests_max as usize) {
        let object = objects.by_name(&name(run, i));
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
