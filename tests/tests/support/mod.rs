//! Test harness shared by the integration tests: real `larder` processes on free loopback ports, each with its own data
//! directory and log file, killed when the harness is dropped.
//!
//! Layout:
//! - [`TestCluster`]: start voters, add joiners, find the leader, wait for conditions;
//! - [`TestNode`]: one process (start, `kill -9`, SIGTERM, restart on the same data);
//! - [`wait_for`]: poll a condition until it holds or a deadline passes — no fixed sleeps;
//! - [`Partition`]: nft rules between test hosts (cuts, one-way cuts, packet loss);
//! - [`nemesis`]: the nemesis's faults, chosen by name and timed by a seeded RNG;
//! - [`members`]: its membership changes (demote, replace, rejoin) and client routes;
//! - [`kv_calls`]: KV puts, deletes and session reads recorded as a history;
//! - [`sim_net`], [`sim_faults`]: what the simulation tiers share (turmoil network,
//!   seeds, digests; crashes and cut links).

// Each test file uses its own subset of the harness.
#![allow(dead_code)]

pub mod faketime;
pub mod kv_calls;
pub mod kv_dump;
pub mod members;
pub mod nemesis;
pub mod objects_workload;
pub mod sim_faults;
pub mod sim_net;

/// A number from the environment (`None` when unset; a panic naming it when malformed).
pub fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use larder_client::Client;
use larder_client::admin::StatusResponse;

/// Settings for tests (fast elections, liveness and anti-entropy on loopback), as
/// (section, key, value); overrides replace or add entries.
const TEST_SETTINGS: &[(&str, &str, &str)] = &[
    ("directory", "heartbeat_interval_ms", "100"),
    ("directory", "election_timeout_min_ms", "500"),
    ("directory", "election_timeout_max_ms", "1000"),
    ("directory", "node_down_after_ms", "1500"),
    ("directory", "liveness_check_interval_ms", "200"),
    ("directory", "peer_rpc_timeout_ms", "2000"),
    ("kv", "anti_entropy_interval_ms", "300"),
    ("kv", "collect_interval_ms", "500"),
    ("kv", "tombstone_grace_ms", "60000"),
    ("kv", "read_your_writes_wait_ms", "1000"),
    ("limits", "shutdown_grace_ms", "5000"),
    ("objects", "lease_ms", "300"),
];

/// An override: `("kv.tombstone_grace_ms", "2000")`.
pub type Setting = (&'static str, &'static str);

fn test_config(overrides: &[Setting]) -> String {
    let mut sections: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, String>,
    > = Default::default();
    for (section, key, value) in TEST_SETTINGS {
        sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    for (path, value) in overrides {
        let (section, key) = path.split_once('.').expect("override is section.key");
        sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    let mut out = String::new();
    for (section, keys) in sections {
        out.push_str(&format!("[{section}]\n"));
        for (key, value) in keys {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    out
}

/// Ports that were free a moment ago, chosen by the kernel (bind to port 0).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node binary under test.
pub fn larder_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_larder-under-test"))
}

/// One `larder serve` process.
pub struct TestNode {
    pub id: u64,
    pub region: String,
    pub api: String,
    pub peer: String,
    pub metrics: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    /// Extra environment of the process (from the next start on).
    env: Vec<(String, String)>,
    child: Option<Child>,
    starts: u32,
}

impl TestNode {
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: u64,
        host: &str,
        region: &str,
        root: &Path,
        ports: &[u16],
        voters: &[String],
        join: Option<&str>,
        overrides: &[Setting],
    ) -> TestNode {
        let api = format!("{host}:{}", ports[0]);
        let peer = format!("{host}:{}", ports[1]);
        let metrics = format!("{host}:{}", ports[2]);
        let data_dir = root.join(format!("node-{id}"));
        std::fs::create_dir_all(&data_dir).expect("create node dir");
        let config = data_dir.join("larder.toml");
        // Extra `[directory]` settings go right after that section's header.
        let text = test_config(overrides);
        std::fs::write(&config, text).expect("write config");
        let mut args = vec![
            "serve".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--node-id".into(),
            id.to_string(),
            "--region".into(),
            region.to_string(),
            // Jurisdiction from the region's first part, as `larder dev` does.
            "--jurisdiction".into(),
            region.split('-').next().unwrap_or(region).to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--api-listen".into(),
            api.clone(),
            "--peer-listen".into(),
            peer.clone(),
            "--metrics-listen".into(),
            metrics.clone(),
        ];
        for voter in voters {
            args.push("--initial-voter".into());
            args.push(voter.clone());
        }
        if let Some(join) = join {
            args.push("--join".into());
            args.push(join.to_string());
        }
        TestNode {
            id,
            region: region.to_string(),
            api,
            peer,
            metrics,
            data_dir,
            args,
            env: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    /// Joins through `seed` (a peer address) from its next start on, as an operator
    /// restarts a node that was removed from the cluster.
    pub fn set_join(&mut self, seed: &str) {
        if let Some(at) = self.args.iter().position(|a| a == "--join") {
            self.args.drain(at..at + 2);
        }
        self.args.push("--join".into());
        self.args.push(seed.to_string());
    }

    /// Sets an environment variable of the process from its next start on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts the process (again, on the same data and ports after a stop).
    pub fn start(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        self.starts += 1;
        let log_path = self.data_dir.join(format!("node.{}.log", self.starts));
        let log = std::fs::File::create(&log_path).context("create log")?;
        let child = Command::new(larder_bin())
            .args(&self.args)
            // LARDER_TEST_LOG overrides the filter, e.g. to see debug lines of one crate.
            .env(
                "RUST_LOG",
                std::env::var("LARDER_TEST_LOG").unwrap_or_else(|_| "info,openraft=info".into()),
            )
            // Inert until `fail_flushes` creates the file.
            .env("LARDER_FAILPOINT_FLUSH", self.flush_failpoint())
            // Inert until `stall_writes` creates the file.
            .env("LARDER_FAILPOINT_STALL_WRITES", self.stall_failpoint())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn node {}", self.id))?;
        self.child = Some(child);
        Ok(())
    }

    fn flush_failpoint(&self) -> PathBuf {
        self.data_dir.join("fail-flushes")
    }

    /// From now on every flush of this node's store fails as if the disk returned EIO
    /// (until [`TestNode::heal_flushes`]).
    pub fn fail_flushes(&self) {
        std::fs::write(self.flush_failpoint(), b"").expect("arm the flush failpoint");
    }

    pub fn heal_flushes(&self) {
        let _ = std::fs::remove_file(self.flush_failpoint());
    }

    fn stall_failpoint(&self) -> PathBuf {
        self.data_dir.join("stall-writes")
    }

    /// From now on writes to this node's object copies wait before they apply (until
    /// [`TestNode::unstall_writes`]): a copy that falls behind its replicas.
    pub fn stall_writes(&self) {
        std::fs::write(self.stall_failpoint(), b"").expect("arm the stall failpoint");
    }

    pub fn unstall_writes(&self) {
        let _ = std::fs::remove_file(self.stall_failpoint());
    }

    /// The exit code once the process has exited by itself (it is then reaped).
    pub fn exited(&mut self) -> Option<Option<i32>> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status.code())
    }

    /// `kill -9`: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            bail!("node {} is not running", self.id);
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .with_context(|| format!("SIGTERM to node {}", self.id))?;
        let exited = wait_for("the node to exit", timeout, || {
            let exited = child.try_wait().ok().flatten();
            async move { exited }
        })
        .await;
        match exited {
            Ok(status) => Ok(status.success()),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(err)
            }
        }
    }

    /// SIGSTOP: the process stays alive but answers nothing, as if cut off.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// SIGCONT after [`TestNode::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("node is not running")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        nix::sys::signal::kill(pid, signal).with_context(|| format!("{signal} to node {}", self.id))
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn client(&self) -> Client {
        let config = larder_client::ClientConfig {
            request_timeout: Duration::from_secs(3),
            attempts_max: 1,
            ..Default::default()
        };
        Client::new(&self.api, config).expect("valid endpoint")
    }

    pub async fn status(&self) -> Option<StatusResponse> {
        self.client().status(false).await.ok()
    }

    /// A counter or gauge from the node's Prometheus endpoint (`larder_` prefix omitted).
    pub fn metric(&self, name: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.metrics).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        let wanted = format!("larder_{name}");
        body.lines().find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == wanted || metric == format!("{wanted}_total"))
                .then(|| value.trim().parse().ok())
                .flatten()
        })
    }

    /// The last lines of this node's newest log, for failure messages.
    pub fn log_tail(&self) -> String {
        let path = self.data_dir.join(format!("node.{}.log", self.starts));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of [`TestNode`]s in one temporary directory.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    voters: Vec<String>,
    overrides: Vec<Setting>,
    /// Regions assigned round-robin by node id (node 1 gets the first).
    regions: Vec<&'static str>,
    /// The block of loopback addresses the nodes have to themselves, if they do.
    hosts: Option<HostBlock>,
    /// Nodes taken out for good ([`TestCluster::retire`]), kept for their logs.
    retired: Vec<TestNode>,
    root: tempfile::TempDir,
}

/// The default regions: odd node ids in `eu-west`, even ones in `us-east`.
const REGIONS: &[&str] = &["eu-west", "us-east"];

impl TestCluster {
    /// Starts `voters` nodes forming the first directory membership, regions alternating
    /// between `eu-west` and `us-east`, and waits until they agree on a leader.
    pub async fn start(voters: usize) -> anyhow::Result<TestCluster> {
        Self::start_with(voters, &[]).await
    }

    /// Like [`TestCluster::start`], with settings overridden for every node, joiners
    /// included.
    pub async fn start_with(voters: usize, overrides: &[Setting]) -> anyhow::Result<TestCluster> {
        Self::start_in_regions(voters, overrides, REGIONS).await
    }

    /// Like [`TestCluster::start_with`], with regions taken round-robin from `regions`
    /// (one entry: every node in that region); joiners continue the rotation.
    pub async fn start_in_regions(
        voters: usize,
        overrides: &[Setting],
        regions: &[&'static str],
    ) -> anyhow::Result<TestCluster> {
        Self::start_inner(voters, overrides, regions, false).await
    }

    /// Like [`TestCluster::start_in_regions`], each node on a loopback address of its own
    /// (node `i` on 127.0.b.(10+i), `b` a block no other cluster on this machine uses;
    /// its peer connections leave from it), so that [`TestCluster::cut`] can cut the
    /// traffic between chosen nodes without touching another test's cluster.
    pub async fn start_on_own_hosts(
        voters: usize,
        overrides: &[Setting],
        regions: &[&'static str],
    ) -> anyhow::Result<TestCluster> {
        Self::start_inner(voters, overrides, regions, true).await
    }

    async fn start_inner(
        voters: usize,
        overrides: &[Setting],
        regions: &[&'static str],
        own_hosts: bool,
    ) -> anyhow::Result<TestCluster> {
        assert!(!regions.is_empty(), "at least one region");
        let hosts = if own_hosts {
            Partition::remove_orphans();
            Some(HostBlock::reserve()?)
        } else {
            None
        };
        let host = |id: u64| host_of(id, hosts.as_ref());
        let root = tempfile::Builder::new().prefix("larder-test-").tempdir()?;
        let ports = free_ports(voters * 3);
        let voter_list: Vec<String> = (0..voters)
            .map(|i| format!("{}@{}:{}", i + 1, host(i as u64 + 1), ports[i * 3 + 1]))
            .collect();
        let mut nodes: Vec<TestNode> = (0..voters)
            .map(|i| {
                let id = i as u64 + 1;
                let own = &ports[i * 3..i * 3 + 3];
                TestNode::new(
                    id,
                    &host(id),
                    region_of(regions, id),
                    root.path(),
                    own,
                    &voter_list,
                    None,
                    overrides,
                )
            })
            .collect();
        for node in &mut nodes {
            node.start()?;
        }
        let cluster = TestCluster {
            nodes,
            voters: voter_list,
            overrides: overrides.to_vec(),
            regions: regions.to_vec(),
            hosts,
            retired: Vec::new(),
            root,
        };
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// Creates namespace `name` (through node 1) and waits until every running node
    /// knows it, so that none refuses a call for it.
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        self.create_namespace_in(name, &[]).await
    }

    /// Like [`TestCluster::create_namespace`], restricted to `regions` (none: everywhere).
    pub async fn create_namespace_in(&self, name: &str, regions: &[&str]) -> anyhow::Result<()> {
        let regions = regions.iter().map(|r| r.to_string()).collect();
        self.node(1)
            .client()
            .create_namespace(name, regions, None)
            .await
            .context("create namespace")?;
        wait_for(
            "the namespace everywhere",
            Duration::from_secs(30),
            || async {
                for node in self.running() {
                    let names = node.client().list_namespaces().await.ok()?;
                    names.iter().find(|n| n.name == name)?;
                }
                Some(())
            },
        )
        .await
    }

    /// Starts a new node (an id never used in this cluster, an empty data directory)
    /// that joins through node `via`.
    pub fn add_joiner(&mut self, via: u64) -> anyhow::Result<u64> {
        let used = self.nodes.iter().chain(&self.retired).map(|n| n.id);
        let id = used.max().unwrap_or(0) + 1;
        let seed = self.node(via).peer.clone();
        let ports = free_ports(3);
        let mut node = TestNode::new(
            id,
            &host_of(id, self.hosts.as_ref()),
            region_of(&self.regions, id),
            self.root.path(),
            &ports,
            &self.voters,
            Some(&seed),
            &self.overrides,
        );
        node.start()?;
        self.nodes.push(node);
        Ok(id)
    }

    /// Stops node `id` (SIGTERM, `kill -9` if it is not gone within `timeout`) and takes
    /// it out of the cluster, as a node removed for good; its logs are kept for
    /// [`TestCluster::keep_logs`]. Returns whether it exited cleanly.
    pub async fn retire(&mut self, id: u64, timeout: Duration) -> anyhow::Result<bool> {
        let at = self
            .nodes
            .iter()
            .position(|n| n.id == id)
            .with_context(|| format!("node {id} is not in the cluster"))?;
        let mut node = self.nodes.remove(at);
        let clean = if node.is_running() {
            node.terminate(timeout).await.unwrap_or(false)
        } else {
            true
        };
        self.retired.push(node);
        Ok(clean)
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes.iter().find(|n| n.id == id).expect("node exists")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("node exists")
    }

    pub fn running(&self) -> impl Iterator<Item = &TestNode> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// The leader every running node agrees on, if they all agree.
    pub async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        for node in self.running() {
            let status = node.status().await?;
            let id = status.raft?.leader_id;
            if id == 0 || leader.is_some_and(|l| l != id) {
                return None;
            }
            leader = Some(id);
        }
        leader
    }

    /// Waits until every running node agrees on a leader and sees every node up.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<u64> {
        let expected = self.nodes.len();
        wait_for("a healthy cluster", timeout, || async move {
            let leader = self.agreed_leader().await?;
            for node in self.running() {
                let status = node.status().await?;
                if status.nodes.len() != expected || !larder_client::admin::is_healthy(&status) {
                    return None;
                }
            }
            Some(leader)
        })
        .await
        .with_context(|| self.logs())
    }

    /// Log tails of every node, for failure messages.
    /// Copies every node's logs to a fresh directory that outlives the cluster (for a
    /// failed run's post-mortem) and returns it.
    pub fn keep_logs(&self, label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("larder-{label}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        for node in self.nodes.iter().chain(&self.retired) {
            for start in 1..=node.starts {
                let name = format!("node.{start}.log");
                let _ = std::fs::copy(
                    node.data_dir.join(&name),
                    dir.join(format!("node-{}.{start}.log", node.id)),
                );
            }
        }
        dir
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn region_of(regions: &[&'static str], id: u64) -> &'static str {
    regions[(id as usize - 1) % regions.len()]
}

/// Node `id`'s address: 127.0.0.1, or its own in the cluster's block.
fn host_of(id: u64, hosts: Option<&HostBlock>) -> String {
    match hosts {
        Some(block) => block.host(id),
        None => "127.0.0.1".to_string(),
    }
}

/// Blocks of loopback addresses: 127.0.b.0/24 for b in 1..=BLOCKS.
const BLOCKS: u64 = 250;

/// A block of loopback addresses, 127.0.b.(10+id), reserved for one cluster by a file lock
/// held as long as this lives: tests in parallel (in one binary, or several people's on
/// one machine) never cut each other's traffic.
pub struct HostBlock {
    block: u64,
    _lock: std::fs::File,
}

impl HostBlock {
    fn reserve() -> anyhow::Result<HostBlock> {
        let dir = std::env::temp_dir().join("larder-test-hosts");
        std::fs::create_dir_all(&dir).context("create the host lock directory")?;
        // Start at a place of this process's own, so parallel processes rarely collide.
        let start = u64::from(std::process::id());
        for i in 0..BLOCKS {
            let block = 1 + (start + i) % BLOCKS;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("block-{block}.lock")))
                .context("open a host block lock")?;
            if file.try_lock().is_ok() {
                return Ok(HostBlock { block, _lock: file });
            }
        }
        bail!("all {BLOCKS} host blocks are in use")
    }

    pub fn host(&self, id: u64) -> String {
        assert!(id < 240, "node ids up to 239 fit a block");
        format!("127.0.{}.{}", self.block, 10 + id)
    }
}

impl TestCluster {
    fn own_hosts(&self) -> anyhow::Result<&HostBlock> {
        self.hosts
            .as_ref()
            .context("cutting traffic needs a cluster started on own hosts")
    }

    /// Drops traffic from each node in `from` to each node in `to` (and back, unless
    /// `one_way`) until the returned guard is dropped.
    pub fn cut(&self, from: &[u64], to: &[u64], one_way: bool) -> anyhow::Result<Partition> {
        let mut pairs = Vec::new();
        for a in from {
            for b in to {
                pairs.push((*a, *b));
                if !one_way {
                    pairs.push((*b, *a));
                }
            }
        }
        Partition::drop_pairs(self.own_hosts()?, &pairs, None)
    }

    /// Drops traffic between each pair of `pairs`, both ways.
    pub fn cut_pairs(&self, pairs: &[(u64, u64)]) -> anyhow::Result<Partition> {
        let both: Vec<(u64, u64)> = pairs.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
        Partition::drop_pairs(self.own_hosts()?, &both, None)
    }

    /// Drops `percent` % of the packets, at random, between any two of `nodes`.
    pub fn lossy(&self, nodes: &[u64], percent: u8) -> anyhow::Result<Partition> {
        anyhow::ensure!(percent <= 100, "a loss of {percent} %");
        let pairs: Vec<(u64, u64)> = nodes
            .iter()
            .flat_map(|a| nodes.iter().filter(move |b| *b != a).map(move |b| (*a, *b)))
            .collect();
        Partition::drop_pairs(self.own_hosts()?, &pairs, Some(percent))
    }
}

/// Traffic cut between test hosts with nftables (root; made by [`TestCluster::cut`],
/// [`TestCluster::cut_pairs`] and [`TestCluster::lossy`]): the rules live in a table of
/// their own, removed when this is dropped (also when a test fails). Clients at
/// 127.0.0.1 still reach every node.
pub struct Partition {
    table: String,
}

/// Distinguishes the tables of one test process.
static PARTITION_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Partition {
    /// Deletes the tables of test processes that died without dropping them (a killed
    /// test run would otherwise leave its cuts in place for every later run).
    pub fn remove_orphans() {
        let Ok(out) = Command::new("nft").args(["list", "tables"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(table) = line.strip_prefix("table inet ") else {
                continue;
            };
            let Some(pid) = table
                .strip_prefix("larder_test_")
                .and_then(|rest| rest.split('_').next())
            else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = Command::new("nft")
                    .args(["delete", "table", "inet", table])
                    .status();
            }
        }
    }

    /// One rule per (source, destination) pair: drop everything, or `loss` % at random.
    fn drop_pairs(
        hosts: &HostBlock,
        pairs: &[(u64, u64)],
        loss: Option<u8>,
    ) -> anyhow::Result<Partition> {
        let seq = PARTITION_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = format!("larder_test_{}_{seq}", std::process::id());
        let mut rules = format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n"
        );
        let verdict = match loss {
            Some(percent) => format!("numgen random mod 100 < {percent} drop"),
            None => "drop".to_string(),
        };
        for (a, b) in pairs {
            let (ha, hb) = (hosts.host(*a), hosts.host(*b));
            rules.push_str(&format!("    ip saddr {ha} ip daddr {hb} {verdict}\n"));
        }
        rules.push_str("  }\n}\n");
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .context("run nft (the partition tests need nftables and root)")?;
        std::io::Write::write_all(child.stdin.as_mut().context("nft stdin")?, rules.as_bytes())?;
        let status = child.wait()?;
        if !status.success() {
            bail!("nft refused the partition rules:\n{rules}");
        }
        Ok(Partition { table })
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}
