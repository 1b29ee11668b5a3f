//! Traffic cuts between test hosts: blocks of loopback addresses, one per cluster, and
//! nftables rules between them.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::TestCluster;

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
    pub(super) fn reserve() -> anyhow::Result<HostBlock> {
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
