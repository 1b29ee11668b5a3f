//! [`TestCluster`]: nodes started together in one temporary directory.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::partition::{HostBlock, Partition};
use super::{Setting, TestNode, free_ports, wait_for};

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
                    // KV answers from its own view of the directory, which trails it by
                    // a moment: a put right after could still find no namespace. (A
                    // node outside the namespace's regions refuses otherwise: fine.)
                    let kv = node.client().kv(name).get("-").await;
                    if matches!(kv, Err(larder_client::ClientError::NotFound(_))) {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await
    }

    /// What namespace `name`'s data is stored under on disk (its current incarnation,
    /// `name@generation`), for tests that read a stopped node's store.
    pub async fn stored_as(&self, name: &str) -> anyhow::Result<larder_directory::Namespace> {
        let namespaces = self.node(1).client().list_namespaces().await?;
        let record = namespaces
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no namespace {name:?}"))?;
        Ok(larder_directory::Namespace::from(name).incarnation(record.generation))
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

    /// The cluster's block of loopback addresses, for cutting traffic.
    pub(super) fn own_hosts(&self) -> anyhow::Result<&HostBlock> {
        self.hosts
            .as_ref()
            .context("cutting traffic needs a cluster started on own hosts")
    }

    /// Every node's process state and last error first (a long tail can be cut short in
    /// a CI report), then each node's log tail, for failure messages.
    pub fn logs(&self) -> String {
        let summary = self.nodes.iter().map(|n| {
            let error = n.last_error().unwrap_or_else(|| "no error logged".into());
            format!("node {}: {}; {error}", n.id, n.process_state())
        });
        let tails = self
            .nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, n.log_tail()));
        summary.chain(tails).collect::<Vec<_>>().join("\n")
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
