//! `larder serve`: one node, configured by a file and flags, until SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Args;
use larder_node::config::NodeConfig;
use larder_node::server::RunningNode;

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
