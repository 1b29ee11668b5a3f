//! The `larder` command line: the argument parser, the entry point and the dispatch of
//! each command to the module that runs it.

use anyhow::Context;
use clap::{Parser, Subcommand};
use larder_client::Client;

use crate::admin::{self, NodeCommand, RaftCommand};
use crate::bench::{self, BenchCommand};
use crate::dev::{self, DevArgs};
use crate::kv::{self, KvCommand};
use crate::objects::{self, ObjectCommand};
use crate::serve::{self, ServeArgs};

#[derive(Parser, Debug)]
#[command(
    name = "larder",
    version,
    about = "Larder: a self-hosted stateful edge store"
)]
pub struct Cli {
    /// Api address of the node to talk to.
    #[arg(
        long,
        global = true,
        env = "LARDER_ENDPOINT",
        default_value = "127.0.0.1:7070"
    )]
    pub endpoint: String,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format of `serve` and `dev`.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node.
    Serve(Box<ServeArgs>),
    /// Run a complete local cluster in this process.
    Dev(DevArgs),
    /// Show the cluster: nodes, regions, liveness and the directory's Raft state.
    Status {
        /// Include every directory change committed before the call.
        #[arg(long)]
        linearizable: bool,
    },
    /// Nodes of the cluster.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Membership of the directory's Raft group.
    #[command(subcommand)]
    Raft(RaftCommand),
    /// The replicated key-value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Actor objects: storage calls, listing and inspection.
    #[command(subcommand)]
    Object(ObjectCommand),
    /// Load generator: throughput, latency and propagation figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Entry point of the binary. Returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = (*args).into_config()?;
            init_tracing(&cli.log_format, "info,openraft=warn");
            serve::run(config).await
        }
        Command::Dev(args) => {
            // Quiet by default so the endpoint table stays readable; RUST_LOG overrides.
            init_tracing(&cli.log_format, "warn,openraft=error");
            dev::run(args).await
        }
        Command::Status { linearizable } => {
            admin::status(&client(&cli.endpoint)?, cli.json, linearizable).await
        }
        Command::Node(command) => admin::node(&client(&cli.endpoint)?, cli.json, command).await,
        Command::Raft(command) => admin::raft(&client(&cli.endpoint)?, cli.json, command).await,
        Command::Kv(command) => kv::run(&client(&cli.endpoint)?, cli.json, command).await,
        Command::Object(command) => objects::run(&client(&cli.endpoint)?, cli.json, command).await,
        Command::Bench(command) => bench::run(&cli.endpoint, cli.json, command).await,
    }
}

fn client(endpoint: &str) -> anyhow::Result<Client> {
    Client::connect_lazy(endpoint).with_context(|| format!("endpoint {endpoint}"))
}

fn init_tracing(format: &str, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for a person at a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
