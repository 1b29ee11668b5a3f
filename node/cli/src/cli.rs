//! The `larder` command line: `serve`, `dev` and the operator commands.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use larder_client::Client;
use larder_client::admin::{MembershipResponse, Node, NodeStatus, RaftRole, StatusResponse};
use serde_json::{Value, json};

use crate::dev::{self, DevOptions};
use larder_node::config::NodeConfig;
use larder_node::server::{RunningNode, termination_signal};

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
    Kv(crate::kv::KvCommand),
    /// Actor objects: storage calls, listing and inspection.
    #[command(subcommand)]
    Object(crate::objects::ObjectCommand),
    /// Load generator: throughput, latency and propagation figures.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List the nodes recorded in the directory.
    List,
    /// Remove a node from the cluster (Raft membership and directory).
    Remove { id: u64 },
    /// Move every object the node owns to other nodes of its region.
    Drain { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum RaftCommand {
    /// Promote a learner to a voter.
    AddVoter { id: u64 },
    /// Add a node as a learner that follows the directory.
    AddLearner {
        id: u64,
        /// Peer address, for a node the directory does not know yet.
        #[arg(long)]
        peer_addr: Option<String>,
    },
    /// Demote a voter to a learner.
    Remove { id: u64 },
    /// Hand leadership to a voter.
    TransferLeader { id: u64 },
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub node_id: Option<u64>,
    #[arg(long)]
    pub region: Option<String>,
    /// Jurisdiction tag; repeat for several.
    #[arg(long = "jurisdiction")]
    pub jurisdictions: Vec<String>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub api_listen: Option<String>,
    #[arg(long)]
    pub peer_listen: Option<String>,
    #[arg(long)]
    pub metrics_listen: Option<String>,
    #[arg(long)]
    pub api_advertise: Option<String>,
    #[arg(long)]
    pub peer_advertise: Option<String>,
    /// First voter as ID@HOST:PORT (peer address); repeat for each.
    #[arg(long = "initial-voter")]
    pub initial_voters: Vec<String>,
    /// Peer address of a node of a running cluster to join.
    #[arg(long)]
    pub join: Option<String>,
}

#[derive(Args, Debug)]
pub struct DevArgs {
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Comma-separated regions, assigned to nodes round-robin.
    #[arg(long, value_delimiter = ',', default_value = "eu-west,us-east")]
    pub regions: Vec<String>,
    /// Keep data here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 7070)]
    pub base_port: u16,
    /// Override a setting on every node, as in the config file: `--set
    /// objects.idle_after_ms=500` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub settings: Vec<String>,
}

impl ServeArgs {
    pub fn into_config(self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::load(path)?,
            None => NodeConfig::default(),
        };
        if let Some(id) = self.node_id {
            config.node.id = id;
        }
        if let Some(region) = self.region {
            config.node.region = region;
        }
        if !self.jurisdictions.is_empty() {
            config.node.jurisdictions = self.jurisdictions;
        }
        if let Some(dir) = self.data_dir {
            config.node.data_dir = dir;
        }
        if let Some(addr) = self.api_listen {
            config.listen.api = addr;
        }
        if let Some(addr) = self.peer_listen {
            config.listen.peer = addr;
        }
        if let Some(addr) = self.metrics_listen {
            config.listen.metrics = addr;
        }
        if let Some(addr) = self.api_advertise {
            config.advertise.api = Some(addr);
        }
        if let Some(addr) = self.peer_advertise {
            config.advertise.peer = Some(addr);
        }
        if !self.initial_voters.is_empty() {
            config.cluster.initial_voters = self.initial_voters;
        }
        if let Some(join) = self.join {
            config.cluster.join = Some(join);
        }
        config.validate()?;
        Ok(config)
    }
}

fn init_tracing(format: &str, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
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
            let node = RunningNode::start(config).await?;
            termination_signal().await;
            node.shutdown().await;
            Ok(())
        }
        Command::Dev(args) => {
            // Quiet by default so the endpoint table stays readable; RUST_LOG overrides.
            init_tracing(&cli.log_format, "warn,openraft=error");
            dev::run(DevOptions {
                nodes: args.nodes,
                regions: args.regions,
                data_dir: args.data_dir,
                base_port: args.base_port,
                settings: args.settings,
            })
            .await
        }
        Command::Status { linearizable } => {
            let client = client(&cli.endpoint)?;
            let status = client.status(linearizable).await.context("status")?;
            if cli.json {
                println!("{}", status_json(&status));
            } else {
                print!("{}", status_table(&status));
            }
            Ok(())
        }
        Command::Node(NodeCommand::List) => {
            let nodes = client(&cli.endpoint)?
                .list_nodes()
                .await
                .context("node list")?;
            if cli.json {
                println!("{}", Value::Array(nodes.iter().map(node_json).collect()));
            } else {
                print!("{}", nodes_table(&nodes));
            }
            Ok(())
        }
        Command::Node(NodeCommand::Drain { id }) => {
            crate::objects::drain(&client(&cli.endpoint)?, cli.json, id).await
        }
        Command::Node(NodeCommand::Remove { id }) => {
            let resp = client(&cli.endpoint)?
                .remove_node(id)
                .await
                .context("node remove")?;
            print_membership(cli.json, &format!("node {id} removed"), &resp);
            Ok(())
        }
        Command::Object(command) => {
            crate::objects::run(&client(&cli.endpoint)?, cli.json, command).await
        }
        Command::Bench(command) => crate::bench::run(&cli.endpoint, cli.json, command).await,
        Command::Kv(command) => crate::kv::run(&client(&cli.endpoint)?, cli.json, command).await,
        Command::Raft(command) => {
            let client = client(&cli.endpoint)?;
            let (what, resp) = match command {
                RaftCommand::AddVoter { id } => {
                    (format!("node {id} is a voter"), client.add_voter(id).await)
                }
                RaftCommand::AddLearner { id, peer_addr } => (
                    format!("node {id} is a learner"),
                    client.add_learner(id, peer_addr).await,
                ),
                RaftCommand::Remove { id } => (
                    format!("node {id} is no longer a voter"),
                    client.remove_voter(id).await,
                ),
                RaftCommand::TransferLeader { id } => (
                    format!("node {id} leads the directory"),
                    client.transfer_leader(id).await,
                ),
            };
            print_membership(cli.json, &what, &resp.context("raft")?);
            Ok(())
        }
    }
}

fn client(endpoint: &str) -> anyhow::Result<Client> {
    Client::connect_lazy(endpoint).with_context(|| format!("endpoint {endpoint}"))
}

fn status_name(status: i32) -> &'static str {
    match NodeStatus::try_from(status) {
        Ok(NodeStatus::Up) => "up",
        Ok(NodeStatus::Down) => "down",
        _ => "unknown",
    }
}

fn role_name(role: i32) -> &'static str {
    match RaftRole::try_from(role) {
        Ok(RaftRole::Voter) => "voter",
        Ok(RaftRole::Learner) => "learner",
        Ok(RaftRole::None) => "none",
        _ => "unknown",
    }
}

fn node_json(node: &Node) -> Value {
    json!({
        "id": node.id,
        "region": node.region,
        "jurisdictions": node.jurisdictions,
        "api_addr": node.api_addr,
        "peer_addr": node.peer_addr,
        "status": status_name(node.status),
        "role": role_name(node.role),
        "status_changed_at_ms": node.status_changed_at_ms,
    })
}

fn status_json(status: &StatusResponse) -> Value {
    let raft = status.raft.clone().unwrap_or_default();
    json!({
        "node_id": status.node_id,
        "region": status.region,
        "version": status.version,
        "healthy": larder_client::admin::is_healthy(status),
        "raft": {
            "leader_id": raft.leader_id,
            "leader_api_addr": raft.leader_api_addr,
            "term": raft.term,
            "commit_index": raft.commit_index,
            "last_applied": raft.last_applied,
            "last_log_index": raft.last_log_index,
            "state": raft.state,
            "voters": raft.voters,
            "learners": raft.learners,
        },
        "nodes": status.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "kv_replication": status.kv_replication.iter().map(|lag| json!({
            "origin_node_id": lag.origin_node_id,
            "writes_behind": lag.writes_behind,
            "ms_behind": lag.ms_behind,
            "last_received_at_ms": lag.last_received_at_ms,
        })).collect::<Vec<_>>(),
    })
}

fn nodes_table(nodes: &[Node]) -> String {
    let mut out = format!(
        "{:<4} {:<12} {:<14} {:<8} {:<6} {:<22} {}\n",
        "ID", "REGION", "JURISDICTIONS", "ROLE", "STATUS", "API", "PEER"
    );
    for node in nodes {
        let jurisdictions = if node.jurisdictions.is_empty() {
            "-".to_string()
        } else {
            node.jurisdictions.join(",")
        };
        out.push_str(&format!(
            "{:<4} {:<12} {:<14} {:<8} {:<6} {:<22} {}\n",
            node.id,
            node.region,
            jurisdictions,
            role_name(node.role),
            status_name(node.status),
            node.api_addr,
            node.peer_addr
        ));
    }
    out
}

fn status_table(status: &StatusResponse) -> String {
    let raft = status.raft.clone().unwrap_or_default();
    let leader = if raft.leader_id == 0 {
        "none".to_string()
    } else {
        format!("node {} ({})", raft.leader_id, raft.leader_api_addr)
    };
    let health = if larder_client::admin::is_healthy(status) {
        "healthy"
    } else {
        "DEGRADED"
    };
    let mut out = format!(
        "Cluster {health}: answered by node {} ({}), larder {}\nDirectory: leader {leader}, term {}, commit index {}, applied {}, this node is {}\n\n{}",
        status.node_id,
        status.region,
        status.version,
        raft.term,
        raft.commit_index,
        raft.last_applied,
        raft.state,
        nodes_table(&status.nodes)
    );
    if !status.kv_replication.is_empty() {
        out.push_str(&format!(
            "\nKV replication at node {} (behind each origin):\n{:<8} {:>14} {:>12}\n",
            status.node_id, "ORIGIN", "WRITES BEHIND", "MS BEHIND"
        ));
        for lag in &status.kv_replication {
            out.push_str(&format!(
                "{:<8} {:>14} {:>12}\n",
                lag.origin_node_id, lag.writes_behind, lag.ms_behind
            ));
        }
    }
    out
}

fn print_membership(json: bool, what: &str, resp: &MembershipResponse) {
    if json {
        println!(
            "{}",
            json!({"voters": resp.voters, "learners": resp.learners, "log_index": resp.log_index})
        );
    } else {
        println!(
            "{what}. Voters: {:?}; learners: {:?} (log index {})",
            resp.voters, resp.learners, resp.log_index
        );
    }
}
