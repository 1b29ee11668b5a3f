//! `larder dev`: a complete cluster in one process, for newcomers and local work.
//!
//! Node `i` (1-based) listens on `base_port + 10·(i−1)` (api), `+1` (peer) and `+2`
//! (metrics), all on 127.0.0.1. Nodes take regions round-robin; the first three are the
//! directory's voters, the rest join as learners.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use larder_node::config::NodeConfig;
use larder_node::server::RunningNode;

use crate::options::LogArgs;
use crate::serve::termination_signal;

/// Largest dev cluster: each node is a full node with its own store and listeners.
pub const DEV_NODES_MAX: usize = 32;
const PORT_STRIDE: u16 = 10;

// No doc comment: clap would take it for the help of `larder dev`, which the variant's
// own comment gives.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// Nodes to run (1 to 32); the first three are the directory's voters.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Comma-separated regions, assigned to nodes round-robin.
    #[arg(long, value_delimiter = ',', default_value = "eu-west,us-east")]
    pub regions: Vec<String>,
    /// Keep data in this directory instead of a temporary one (removed at exit).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Api port of node 1; node i listens on BASE_PORT + 10·(i−1) (api), +1 (peer) and +2
    /// (metrics), on 127.0.0.1.
    #[arg(long, default_value_t = 7070)]
    pub base_port: u16,
    /// Override a setting on every node, as in the config file: `--set
    /// objects.idle_after_ms=500` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub settings: Vec<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Sets `path` (dotted, as in the config file) to `value` (a TOML value; a bare word
/// is a string) in `config`, which must still be a valid configuration afterwards.
fn apply_setting(config: &NodeConfig, setting: &str) -> anyhow::Result<NodeConfig> {
    let (path, raw) = setting
        .split_once('=')
        .with_context(|| format!("--set {setting:?}: expected SECTION.KEY=VALUE"))?;
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut table) => table.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut root = toml::Value::try_from(config).context("configuration to TOML")?;
    let mut at = &mut root;
    let parts: Vec<&str> = path.trim().split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = at
            .as_table_mut()
            .with_context(|| format!("--set {path}: {part:?} is not inside a section"))?;
        if i + 1 == parts.len() {
            table.insert(part.to_string(), value.clone());
            break;
        }
        at = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    root.try_into()
        .with_context(|| format!("--set {setting:?} is not a valid setting"))
}

/// Jurisdiction implied by a region name: its first dash-separated part (`eu-west` → `eu`).
fn jurisdiction_of(region: &str) -> Option<String> {
    let first = region.split('-').next()?;
    (first != region && larder_base::check_label(first).is_ok()).then(|| first.to_string())
}

/// The configuration of every node of a dev cluster.
pub fn dev_configs(options: &DevArgs, data_root: &Path) -> anyhow::Result<Vec<NodeConfig>> {
    if options.nodes == 0 || options.nodes > DEV_NODES_MAX {
        bail!(
            "--nodes must be between 1 and {DEV_NODES_MAX}, got {}",
            options.nodes
        );
    }
    if options.regions.is_empty() {
        bail!("--regions must name at least one region");
    }
    let last_port = u32::from(options.base_port) + u32::from(PORT_STRIDE) * options.nodes as u32;
    if options.base_port < 1024 || last_port > u32::from(u16::MAX) {
        bail!(
            "--base-port {} does not leave room for {} nodes (ports {}..{} needed, 1024..65535 allowed)",
            options.base_port,
            options.nodes,
            options.base_port,
            last_port
        );
    }
    let port = |i: usize, offset: u16| options.base_port + PORT_STRIDE * i as u16 + offset;
    let voters: Vec<String> = (0..options.nodes.min(3))
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, port(i, 1)))
        .collect();
    let mut configs = Vec::new();
    for i in 0..options.nodes {
        let region = options.regions[i % options.regions.len()].clone();
        let mut config = NodeConfig::default();
        config.node.id = i as u64 + 1;
        config.node.jurisdictions = jurisdiction_of(&region).into_iter().collect();
        config.node.region = region;
        config.node.data_dir = data_root.join(format!("node-{}", i + 1));
        config.listen.api = format!("127.0.0.1:{}", port(i, 0));
        config.listen.peer = format!("127.0.0.1:{}", port(i, 1));
        config.listen.metrics = format!("127.0.0.1:{}", port(i, 2));
        config.cluster.initial_voters = voters.clone();
        if i >= 3 {
            config.cluster.join = Some(format!("127.0.0.1:{}", port(0, 1)));
        }
        // Fast Raft timings: a local cluster elects and notices a stopped node quickly.
        config.directory.heartbeat_interval_ms = 100;
        config.directory.election_timeout_min_ms = 600;
        config.directory.election_timeout_max_ms = 1200;
        config.directory.node_down_after_ms = 2000;
        for setting in &options.settings {
            config = apply_setting(&config, setting)?;
        }
        config
            .validate()
            .with_context(|| format!("dev node {}", i + 1))?;
        configs.push(config);
    }
    Ok(configs)
}

pub async fn run(options: DevArgs) -> anyhow::Result<()> {
    // A temp dir lives until this function returns; a given dir is kept.
    let temp;
    let data_root = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("larder-dev-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            temp.path().to_path_buf()
        }
    };
    let configs = dev_configs(&options, &data_root)?;
    let mut nodes = Vec::new();
    println!(
        "Larder dev cluster: {} nodes in {}; data in {}",
        configs.len(),
        options.regions.join(", "),
        data_root.display()
    );
    for (i, config) in configs.iter().enumerate() {
        let role = if i < 3 { "voter" } else { "learner" };
        println!(
            "  node {:<2} {:<10} {:<8} api {}  peer {}  metrics http://{}/metrics",
            config.node.id,
            config.node.region,
            role,
            config.listen.api,
            config.listen.peer,
            config.listen.metrics
        );
        let node = RunningNode::start(config.clone())
            .await
            .with_context(|| format!("starting dev node {}", config.node.id))?;
        nodes.push(node);
    }
    let first_api = configs[0].listen.api.clone();
    tokio::select! {
        ready = wait_ready(&first_api, configs.len()) => match ready {
            Ok(leader) => println!("Cluster ready: directory leader is node {leader}. Try: larder status --endpoint {first_api}"),
            Err(err) => println!("Cluster not ready yet ({err}); it keeps trying. Check: larder status --endpoint {first_api}"),
        },
        _ = termination_signal() => {}
    }
    println!("Press Ctrl-C to stop.");
    termination_signal().await;
    println!("Stopping…");
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

async fn wait_ready(endpoint: &str, nodes: usize) -> anyhow::Result<u64> {
    let client = larder_client::Client::connect_lazy(endpoint)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(status) = client.status(false).await
            && status.nodes.len() == nodes
            && larder_client::admin::is_healthy(&status)
            && let Some(raft) = status.raft
        {
            return Ok(raft.leader_id);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no healthy directory after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(nodes: usize) -> DevArgs {
        DevArgs {
            nodes,
            regions: vec!["eu-west".into(), "us-east".into()],
            data_dir: None,
            base_port: 7070,
            settings: Vec::new(),
            log: LogArgs::default(),
        }
    }

    #[test]
    fn settings_override_every_node_and_typos_are_refused() {
        let mut opts = options(2);
        opts.settings = vec![
            "objects.idle_after_ms=500".into(),
            "directory.node_down_after_ms = 900".into(),
            "objects.lease_ms=400".into(),
        ];
        let configs = dev_configs(&opts, Path::new("/tmp/x")).expect("configs");
        assert!(configs.iter().all(|c| c.objects.idle_after_ms == 500
            && c.directory.node_down_after_ms == 900
            && c.objects.lease_ms == 400));
        opts.settings = vec!["objects.idle_after=500".into()];
        let err = format!(
            "{:#}",
            dev_configs(&opts, Path::new("/tmp/x")).expect_err("typo")
        );
        assert!(err.contains("idle_after"), "{err}");
        // Valid alone, but the lease must stay below the down delay.
        opts.settings = vec!["objects.lease_ms=5000".into()];
        assert!(dev_configs(&opts, Path::new("/tmp/x")).is_err());
    }

    #[test]
    fn ports_regions_and_voters_are_derived() {
        let configs = dev_configs(&options(4), Path::new("/tmp/x")).expect("configs");
        assert_eq!(configs.len(), 4);
        assert_eq!(configs[1].listen.api, "127.0.0.1:7080");
        assert_eq!(configs[1].listen.peer, "127.0.0.1:7081");
        assert_eq!(configs[1].node.region, "us-east");
        assert_eq!(configs[1].node.jurisdictions, vec!["us".to_string()]);
        assert_eq!(configs[0].cluster.initial_voters.len(), 3);
        assert!(configs[2].cluster.join.is_none());
        assert_eq!(configs[3].cluster.join.as_deref(), Some("127.0.0.1:7071"));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(dev_configs(&options(0), Path::new("/tmp/x")).is_err());
        let mut high = options(4);
        high.base_port = 65530;
        let err = dev_configs(&high, Path::new("/tmp/x"))
            .expect_err("no room")
            .to_string();
        assert!(err.contains("--base-port"), "{err}");
    }
}
