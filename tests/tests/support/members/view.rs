//! The directory's membership as its leader shows it, and admin calls sent until a
//! change shows there.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use larder_client::{Client, ClientConfig};

use super::super::nemesis::directory_leader;
use super::super::{TestCluster, TestNode};
use super::{ADMIN_TIMEOUT, RESEND_AFTER, STEP_TIMEOUT};

/// The directory's membership as its leader shows it.
#[derive(Debug, Clone)]
pub(super) struct View {
    pub(super) leader: u64,
    pub(super) voters: BTreeSet<u64>,
    pub(super) learners: BTreeSet<u64>,
    /// Nodes the directory records (any status), and those of them recorded up.
    pub(super) known: BTreeSet<u64>,
    pub(super) up: BTreeSet<u64>,
}

impl View {
    pub(super) fn member(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Gone from the Raft membership and from the directory's nodes.
    pub(super) fn removed(&self, id: u64) -> bool {
        !self.member(id) && !self.known.contains(&id)
    }
}

/// The leader's view, once every running member reports the same voters and learners
/// (the change reached them all).
pub(super) async fn agreed_view(cluster: &TestCluster) -> Option<View> {
    let leader = directory_leader(cluster).await?;
    let status = cluster.node(leader).status().await?;
    let raft = status.raft?;
    let view = View {
        leader,
        voters: raft.voters.iter().copied().collect(),
        learners: raft.learners.iter().copied().collect(),
        known: status.nodes.iter().map(|n| n.id).collect(),
        up: status
            .nodes
            .iter()
            .filter(|n| n.status == larder_proto::v1::NodeStatus::Up as i32)
            .map(|n| n.id)
            .collect(),
    };
    for node in cluster.running().filter(|n| view.member(n.id)) {
        let raft = node.status().await?.raft?;
        let voters: BTreeSet<u64> = raft.voters.iter().copied().collect();
        let learners: BTreeSet<u64> = raft.learners.iter().copied().collect();
        if voters != view.voters || learners != view.learners {
            return None;
        }
    }
    Some(view)
}

/// An admin call of one step.
#[derive(Debug, Clone, Copy)]
pub(super) enum Act {
    /// Nothing to send: the node does it itself (a joiner registers).
    Await,
    RemoveVoter(u64),
    AddVoter(u64),
    RemoveNode(u64),
}

pub(super) fn admin(node: &TestNode) -> Client {
    let config = ClientConfig {
        request_timeout: ADMIN_TIMEOUT,
        attempts_max: 1,
        ..Default::default()
    };
    Client::new(&node.api, config).expect("valid endpoint")
}

/// Sends `act` through node `via` (again every [`RESEND_AFTER`] while the change does
/// not show) until `done` holds for the agreed view; returns the calls sent.
pub(super) async fn ensure(
    cluster: &TestCluster,
    via: u64,
    what: &str,
    act: Act,
    done: impl Fn(&View) -> bool,
) -> anyhow::Result<u32> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let (mut sent, mut last_sent, mut last_error) = (0u32, None::<Instant>, None::<String>);
    let mut last_view = None;
    loop {
        if let Some(view) = agreed_view(cluster).await {
            if done(&view) {
                return Ok(sent);
            }
            last_view = Some(view);
        }
        if Instant::now() >= deadline {
            let processes: Vec<String> = cluster
                .nodes
                .iter()
                .map(|n| format!("node {}: {}", n.id, n.process_state()))
                .collect();
            bail!(
                "timed out after {STEP_TIMEOUT:?} waiting for {what} through node {via} (calls sent: {sent}, last error: {last_error:?}, last view: {last_view:?}; processes: {})",
                processes.join(", ")
            );
        }
        let due = last_sent.is_none_or(|at| at.elapsed() >= RESEND_AFTER);
        if due && !matches!(act, Act::Await) {
            let client = admin(cluster.node(via));
            let result = match act {
                Act::RemoveVoter(id) => client.remove_voter(id).await,
                Act::AddVoter(id) => client.add_voter(id).await,
                Act::RemoveNode(id) => client.remove_node(id, true).await,
                Act::Await => unreachable!("nothing to send"),
            };
            sent += 1;
            last_sent = Some(Instant::now());
            if let Err(err) = result {
                last_error = Some(err.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
