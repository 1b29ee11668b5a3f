//! `larder bench`: the project's load generator. Every run is bounded in time and in
//! requests, and talks only to the endpoints it is given.
//!
//! - [`kv`]: `bench kv`, get or put throughput and latency at a concurrency, over a
//!   number of HTTP/2 channels, against any node;
//! - [`propagation`]: `bench propagation`, writes at one node, watches at the others, and
//!   reports how long each write took to be seen everywhere;
//! - [`objects`]: `bench object`, object writes (replicated to a majority) or reads at
//!   the owner;
//! - [`etcd`]: `bench etcd-put`, the same loop against etcd's `KV/Put`, as a reference;
//! - `load`: the closed loop the throughput benches share;
//! - `report`: latency histograms and the printed figures.

mod creation;
pub mod etcd;
pub mod kv;
mod load;
pub mod objects;
pub mod propagation;
mod report;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use larder_client::{Client, ClientConfig, ClientError};

use crate::options::{EndpointArg, OutputArg};

// No doc comment: clap would take it for the help of `larder bench`, which the
// variant's own comment gives. `--endpoint` is on the benches that talk to one node.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub output: OutputArg,
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// KV get or put load against one node.
    Kv(kv::KvBenchArgs),
    /// Delay from a write at one node until every other node has it.
    Propagation(propagation::PropagationArgs),
    /// Object calls (writes replicated to a majority, or reads at the owner).
    Object(objects::ObjectBenchArgs),
    /// etcd v3 puts (`etcdserverpb.KV/Put`), the reference for a replicated write.
    EtcdPut(etcd::EtcdPutArgs),
}

/// Most concurrent workers and channels a run may use.
const CONCURRENCY_MAX: usize = 4096;
const CHANNELS_MAX: usize = 256;

impl BenchCommand {
    /// The `--endpoint` of the benches that talk to one node (and, through `--also`,
    /// others); `None` for those given `--endpoints`.
    pub fn endpoint_mut(&mut self) -> Option<&mut EndpointArg> {
        match self {
            BenchCommand::Kv(args) => Some(&mut args.connect),
            BenchCommand::Object(args) => Some(&mut args.connect),
            BenchCommand::Propagation(_) | BenchCommand::EtcdPut(_) => None,
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let json_out = args.output.json;
    match args.command {
        BenchCommand::Kv(args) => kv::run(json_out, args).await,
        BenchCommand::Propagation(args) => propagation::run(json_out, args).await,
        BenchCommand::Object(args) => objects::run(json_out, args).await,
        BenchCommand::EtcdPut(args) => etcd::run(json_out, args).await,
    }
}

fn check_concurrency(concurrency: usize) -> anyhow::Result<()> {
    if concurrency == 0 || concurrency > CONCURRENCY_MAX {
        bail!("--concurrency must be 1..={CONCURRENCY_MAX}");
    }
    Ok(())
}

fn check_channels(channels: usize) -> anyhow::Result<()> {
    if channels == 0 || channels > CHANNELS_MAX {
        bail!("--channels must be 1..={CHANNELS_MAX}");
    }
    Ok(())
}

/// One client per HTTP/2 channel. A client that retried would hide a failed request's
/// latency inside a later success, so each request is tried once and a failure counts
/// as an error.
fn clients(endpoint: &str, channels: usize) -> anyhow::Result<Vec<Client>> {
    clients_over(&[endpoint], channels)
}

/// `channels` clients, taking the `endpoints` in turn.
fn clients_over(endpoints: &[&str], channels: usize) -> anyhow::Result<Vec<Client>> {
    let config = ClientConfig {
        attempts_max: 1,
        ..ClientConfig::default()
    };
    let clients = (0..channels)
        .map(|i| Client::new(endpoints[i % endpoints.len()], config.clone()))
        .collect::<Result<_, _>>()?;
    Ok(clients)
}

async fn ensure_namespace(client: &Client, namespace: &str) -> anyhow::Result<()> {
    match client.create_namespace(namespace, vec![], None).await {
        Ok(_) => Ok(()),
        Err(ClientError::Other { code, .. }) if code == "AlreadyExists" => Ok(()),
        Err(err) => Err(err).context("creating the bench namespace"),
    }
}
