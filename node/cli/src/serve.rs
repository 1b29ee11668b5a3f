//! `larder serve`: one node, configured by a file and flags, until SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Args;
use larder_node::config::NodeConfig;
use larder_node::server::RunningNode;

use crate::options::LogArgs;

// No doc comment: clap would take it for the help of `larder serve`, which the
// variant's own comment gives.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file; the flags below override its settings (without it: the
    /// built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id: non-zero, unique in the cluster, kept across restarts; overrides
    /// node.id (required).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<u64>,
    /// Region this node serves, a label of a-z, 0-9 and '-' (eu-west); overrides
    /// node.region (required).
    #[arg(long)]
    pub region: Option<String>,
    /// Jurisdiction tag (eu) for namespaces kept in one jurisdiction; repeat for several;
    /// overrides node.jurisdictions (default: none).
    #[arg(long = "jurisdiction", value_name = "TAG")]
    pub jurisdictions: Vec<String>,
    /// Directory of the node's store, created if missing; overrides node.data_dir
    /// (default: larder-data).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the client api listens on; overrides listen.api (default: 127.0.0.1:7070).
    #[arg(long, value_name = "IP:PORT")]
    pub api_listen: Option<String>,
    /// Address the listener for other nodes binds; overrides listen.peer (default:
    /// 127.0.0.1:7071).
    #[arg(long, value_name = "IP:PORT")]
    pub peer_listen: Option<String>,
    /// Address of the Prometheus /metrics endpoint; overrides listen.metrics (default:
    /// 127.0.0.1:9090).
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_listen: Option<String>,
    /// Api address clients and other nodes are told to use; overrides advertise.api
    /// (default: --api-listen, which must then not be a wildcard).
    #[arg(long, value_name = "HOST:PORT")]
    pub api_advertise: Option<String>,
    /// Peer address other nodes are told to use; overrides advertise.peer (default:
    /// --peer-listen, which must then not be a wildcard).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_advertise: Option<String>,
    /// A first voter of the directory with its peer address; repeat for each, the same set
    /// on every first voter; overrides cluster.initial_voters.
    #[arg(long = "initial-voter", value_name = "ID@HOST:PORT")]
    pub initial_voters: Vec<String>,
    /// Peer address of any node of a running cluster, for a node that is not a first
    /// voter; overrides cluster.join.
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
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

/// Runs the node until the process is told to stop, then shuts it down in order.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let node = RunningNode::start(config).await?;
    termination_signal().await;
    node.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
