//! The nemesis's faults (issue #5), each chosen by name: what it does to a
//! [`TestCluster`], timed by a seeded RNG so that a printed seed replays the same fault
//! schedule. Every fault heals before [`Nemesis::step`] returns, and its guards (nft
//! tables, a SIGSTOPped process) heal it too when a test panics half-way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::members::{self, Routes};
use super::rng::Rng;
use super::{TestCluster, TestNode};

/// How long a cut (isolation, halves, one-way, ring) lasts.
const CUT_MS: (u64, u64) = (1_000, 2_500);
/// How long an owner stays frozen: past its lease (the nemesis runs with 400 ms).
const PAUSE_MS: (u64, u64) = (500, 2_000);
/// How long a killed node stays down before it is restarted.
const DOWN_MS: (u64, u64) = (0, 5_000);
/// How long packets are lost, and how many.
const LOSS_MS: (u64, u64) = (2_000, 4_000);
const LOSS_PERCENT: (u64, u64) = (20, 30);
/// The quiet time between two faults.
const GAP_MS: (u64, u64) = (300, 1_500);
/// Bound on finding an owner or the leader, so a slow answer cannot stall the nemesis.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a fault may run ([`DOWN_MS`] plus a restart): the nemesis starts none later
/// than this before the end of the run.
pub const FAULT_MAX: Duration = Duration::from_secs(7);

/// One kind of fault, named as in `NEMESIS_FAULTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `kill -9` an object's owner; restart it after 0–5 s.
    Kill,
    /// SIGSTOP an owner past its lease, then SIGCONT.
    Pause,
    /// Cut an owner off from every other node.
    Isolate,
    /// Split 2 | 3 with an owner on the minority side.
    Halves,
    /// Cut the directory's Raft leader off from every other node.
    Leader,
    /// A one-way cut: an owner's packets to the others are dropped, or theirs to it.
    OneWay,
    /// Five nodes in a ring, each reaching only its two neighbours (a majority each).
    Ring,
    /// 20–30 % of the packets between any two nodes dropped at random.
    Loss,
    /// `kill -9` any node; restart it after 0–5 s.
    KillAny,
    /// Move an object to another node (the admin move) under load.
    Moves,
    /// Change the directory's membership under load, then heal to five voters: demote a
    /// voter (the leader at times) and promote it back, replace a drained node with a
    /// fresh one, or remove a node undrained and let it rejoin (`support::members`).
    Members,
}

/// The default mix: every kind (`moves` joined once the move/retake race it found was
/// fixed, `members` once the rejoin and replica-set bugs it found were; see
/// docs/reliability.md).
pub const DEFAULT_FAULTS: [Fault; 11] = Fault::ALL;

impl Fault {
    pub const ALL: [Fault; 11] = [
        Fault::Kill,
        Fault::Pause,
        Fault::Isolate,
        Fault::Halves,
        Fault::Leader,
        Fault::OneWay,
        Fault::Ring,
        Fault::Loss,
        Fault::KillAny,
        Fault::Moves,
        Fault::Members,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Isolate => "isolate",
            Fault::Halves => "halves",
            Fault::Leader => "leader",
            Fault::OneWay => "oneway",
            Fault::Ring => "ring",
            Fault::Loss => "loss",
            Fault::KillAny => "killany",
            Fault::Moves => "moves",
            Fault::Members => "members",
        }
    }

    /// Faults from a comma-separated list of names.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Fault>> {
        let faults = list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                Fault::ALL
                    .into_iter()
                    .find(|f| f.name() == name)
                    .with_context(|| {
                        let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                        format!("unknown fault {name:?} (known: {})", known.join(","))
                    })
            })
            .collect::<anyhow::Result<Vec<Fault>>>()?;
        if faults.is_empty() {
            bail!("no fault named in {list:?}");
        }
        Ok(faults)
    }

    /// Whether the fault aims at an object's owner.
    fn needs_owner(self) -> bool {
        matches!(
            self,
            Fault::Kill
                | Fault::Pause
                | Fault::Isolate
                | Fault::Halves
                | Fault::OneWay
                | Fault::Moves
                | Fault::Members
        )
    }
}

/// SIGCONTs a paused node when dropped, so a failing test leaves nothing frozen.
struct Resume<'a>(&'a TestNode);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

/// Injects faults one at a time, in shuffled rounds of the enabled kinds, so every kind
/// comes once per round.
pub struct Nemesis {
    rng: Rng,
    namespace: String,
    /// Where the clients go; membership changes send a retired node's elsewhere.
    routes: Routes,
    enabled: Vec<Fault>,
    /// What is left of the current round (taken from the back).
    round: Vec<Fault>,
    started: Instant,
    /// One line per fault injected, with its time since the start.
    pub log: Vec<String>,
    /// Faults injected, per kind.
    pub counts: BTreeMap<&'static str, u32>,
}

impl Nemesis {
    pub fn new(seed: u64, namespace: &str, enabled: Vec<Fault>, routes: Routes) -> Nemesis {
        assert!(!enabled.is_empty(), "at least one fault");
        Nemesis {
            rng: Rng::new(seed),
            namespace: namespace.to_string(),
            routes,
            enabled,
            round: Vec::new(),
            started: Instant::now(),
            log: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// The quiet time before the next fault.
    pub fn gap(&mut self) -> Duration {
        self.rng.millis(GAP_MS)
    }

    /// Whether every enabled kind has been injected at least once.
    pub fn every_kind_injected(&self) -> bool {
        self.enabled
            .iter()
            .all(|f| self.counts.get(f.name()).is_some_and(|n| *n > 0))
    }

    /// Injects the next fault aimed at `object` (or at the cluster) and heals it. A fault
    /// that found no target (no owner known at the moment) is tried again next step.
    pub async fn step(&mut self, cluster: &mut TestCluster, object: &str) -> anyhow::Result<()> {
        if self.round.is_empty() {
            self.round = self.enabled.clone();
            self.rng.shuffle(&mut self.round);
        }
        let fault = *self.round.last().expect("a non-empty round");
        let owner = if fault.needs_owner() {
            match self.owner_of(cluster, object).await {
                Some(owner) => Some(owner),
                None => return Ok(()),
            }
        } else {
            None
        };
        let at = self.started.elapsed();
        let Some(what) = self.inject(cluster, fault, owner, object).await? else {
            return Ok(());
        };
        self.round.pop();
        *self.counts.entry(fault.name()).or_default() += 1;
        self.log.push(format!(
            "{:7.1} s {:<8} {what}",
            at.as_secs_f64(),
            fault.name()
        ));
        Ok(())
    }

    /// Carries out `fault` and heals it; a description, or `None` if it had no target.
    /// Each kind draws from the RNG in a fixed order, so that a seed replays it.
    async fn inject(
        &mut self,
        cluster: &mut TestCluster,
        fault: Fault,
        owner: Option<u64>,
        object: &str,
    ) -> anyhow::Result<Option<String>> {
        let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
        let owner = owner.unwrap_or_default();
        let what = match fault {
            Fault::Kill => {
                let role = format!(" (owner of {object})");
                self.kill(cluster, owner, &role).await?
            }
            Fault::KillAny => {
                let victim = self.rng.pick(&ids);
                self.kill(cluster, victim, "").await?
            }
            Fault::Pause => self.pause(cluster, owner, object).await?,
            Fault::Isolate => {
                let held = self
                    .cut(cluster, &[owner], &others(&ids, owner), false)
                    .await?;
                format!("node {owner} (owner of {object}) cut off for {held:?}")
            }
            Fault::Halves => self.halves(cluster, &ids, owner, object).await?,
            Fault::Leader => return self.cut_leader(cluster, &ids).await,
            Fault::OneWay => self.one_way(cluster, &ids, owner, object).await?,
            Fault::Ring => self.ring(cluster, &ids).await?,
            Fault::Loss => self.loss(cluster, &ids).await?,
            Fault::Moves => return self.move_object(cluster, &ids, owner, object).await,
            Fault::Members => {
                let owner = Some(owner).filter(|o| *o != 0);
                members::change(
                    cluster,
                    &mut self.rng,
                    &self.routes,
                    owner,
                    object,
                    &self.namespace,
                )
                .await?
            }
        };
        Ok(Some(what))
    }

    /// `kill -9` `victim` and restart it after a random time; `role` says what it was.
    async fn kill(
        &mut self,
        cluster: &mut TestCluster,
        victim: u64,
        role: &str,
    ) -> anyhow::Result<String> {
        let down = self.rng.millis(DOWN_MS);
        cluster.node_mut(victim).kill();
        tokio::time::sleep(down).await;
        cluster.node_mut(victim).start().context("restart")?;
        Ok(format!(
            "kill -9 node {victim}{role}, restarted after {down:?}"
        ))
    }

    /// Freezes the owner (SIGSTOP) past its lease, then lets it run on.
    async fn pause(
        &mut self,
        cluster: &TestCluster,
        owner: u64,
        object: &str,
    ) -> anyhow::Result<String> {
        let frozen = self.rng.millis(PAUSE_MS);
        let node = cluster.node(owner);
        node.pause().context("pause")?;
        let resume = Resume(node);
        tokio::time::sleep(frozen).await;
        drop(resume);
        Ok(format!(
            "SIGSTOP node {owner} (owner of {object}) for {frozen:?}"
        ))
    }

    /// Cuts the owner and one other node off from the majority.
    async fn halves(
        &mut self,
        cluster: &TestCluster,
        ids: &[u64],
        owner: u64,
        object: &str,
    ) -> anyhow::Result<String> {
        let partner = self.rng.pick(&others(ids, owner));
        let minority = [owner, partner];
        let majority: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|n| !minority.contains(n))
            .collect();
        let held = self.cut(cluster, &minority, &majority, false).await?;
        Ok(format!(
            "{minority:?} | {majority:?} (owner of {object} in the minority) for {held:?}"
        ))
    }

    /// Cuts the directory's leader off; `None` when no leader is found.
    async fn cut_leader(
        &mut self,
        cluster: &TestCluster,
        ids: &[u64],
    ) -> anyhow::Result<Option<String>> {
        let Some(leader) = directory_leader(cluster).await else {
            return Ok(None);
        };
        let held = self
            .cut(cluster, &[leader], &others(ids, leader), false)
            .await?;
        Ok(Some(format!(
            "directory leader {leader} cut off for {held:?}"
        )))
    }

    /// Drops the owner's packets to everyone, or everyone's to the owner.
    async fn one_way(
        &mut self,
        cluster: &TestCluster,
        ids: &[u64],
        owner: u64,
        object: &str,
    ) -> anyhow::Result<String> {
        let mute = self.rng.below(2) == 0;
        let held = if mute {
            self.cut(cluster, &[owner], &others(ids, owner), true)
                .await?
        } else {
            self.cut(cluster, &others(ids, owner), &[owner], true)
                .await?
        };
        let way = if mute {
            "reaches nobody, hears everyone"
        } else {
            "hears nobody, reaches everyone"
        };
        Ok(format!(
            "node {owner} (owner of {object}) {way} for {held:?}"
        ))
    }

    /// Five nodes in a shuffled ring, each reaching only its two neighbours.
    async fn ring(&mut self, cluster: &TestCluster, ids: &[u64]) -> anyhow::Result<String> {
        anyhow::ensure!(ids.len() == 5, "the ring needs five nodes");
        let mut ring = ids.to_vec();
        self.rng.shuffle(&mut ring);
        // Cutting every pair two apart leaves each node its two neighbours.
        let pairs: Vec<(u64, u64)> = (0..5).map(|i| (ring[i], ring[(i + 2) % 5])).collect();
        let held = self.rng.millis(CUT_MS);
        let cut = cluster.cut_pairs(&pairs)?;
        tokio::time::sleep(held).await;
        drop(cut);
        Ok(format!("ring {ring:?} for {held:?}"))
    }

    /// Random packet loss between all nodes for a while.
    async fn loss(&mut self, cluster: &TestCluster, ids: &[u64]) -> anyhow::Result<String> {
        let percent = self.rng.between(LOSS_PERCENT);
        let held = self.rng.millis(LOSS_MS);
        let loss = cluster.lossy(ids, percent as u8)?;
        tokio::time::sleep(held).await;
        drop(loss);
        Ok(format!(
            "{percent} % packet loss between all nodes for {held:?}"
        ))
    }

    /// Asks a random node to move `object` to another node; `None` if that node is
    /// down. A refused move is a description too: the nemesis only asks.
    async fn move_object(
        &mut self,
        cluster: &TestCluster,
        ids: &[u64],
        owner: u64,
        object: &str,
    ) -> anyhow::Result<Option<String>> {
        let target = self.rng.pick(&others(ids, owner));
        let via = self.rng.pick(ids);
        let node = cluster.node(via);
        if !node.is_running() {
            return Ok(None);
        }
        let answer = node
            .client()
            .objects(&self.namespace)
            .by_name(object)
            .move_to_node(target)
            .await;
        Ok(Some(match answer {
            Ok(info) => format!(
                "move {object} from node {owner} to node {target} (through {via}): owner {} epoch {}",
                info.owner, info.epoch
            ),
            Err(err) => format!(
                "move {object} from node {owner} to node {target} (through {via}) refused: {err}"
            ),
        }))
    }

    /// Cuts `from` from `to` for a random time, then heals; returns the time.
    async fn cut(
        &mut self,
        cluster: &TestCluster,
        from: &[u64],
        to: &[u64],
        one_way: bool,
    ) -> anyhow::Result<Duration> {
        let held = self.rng.millis(CUT_MS);
        let cut = cluster.cut(from, to, one_way)?;
        tokio::time::sleep(held).await;
        drop(cut);
        Ok(held)
    }

    /// The owner of `object` as the first node that answers sees it.
    pub async fn owner_of(&self, cluster: &TestCluster, object: &str) -> Option<u64> {
        let ask = async {
            for node in cluster.running() {
                if let Ok(info) = node
                    .client()
                    .objects(&self.namespace)
                    .by_name(object)
                    .inspect()
                    .await
                {
                    return Some(info.owner);
                }
            }
            None
        };
        tokio::time::timeout(LOOKUP_TIMEOUT, ask)
            .await
            .ok()
            .flatten()
    }
}

/// Every node of `ids` but `node`.
fn others(ids: &[u64], node: u64) -> Vec<u64> {
    ids.iter().copied().filter(|n| *n != node).collect()
}

/// The node that says it leads the directory in the highest term any node reports.
pub async fn directory_leader(cluster: &TestCluster) -> Option<u64> {
    let ask = async {
        let mut best: Option<(u64, u64)> = None;
        for node in cluster.running() {
            let Some(status) = node.status().await else {
                continue;
            };
            let Some(raft) = status.raft else {
                continue;
            };
            if raft.state == "leader" && best.is_none_or(|(term, _)| raft.term > term) {
                best = Some((raft.term, status.node_id));
            }
        }
        best.map(|(_, id)| id)
    };
    tokio::time::timeout(LOOKUP_TIMEOUT, ask)
        .await
        .ok()
        .flatten()
}
