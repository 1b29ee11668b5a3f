//! The operator commands: `status`, `larder node …` and `larder raft …`.

use anyhow::Context;
use clap::{Args, Subcommand};
use larder_client::Client;
use larder_client::admin::{
    MembershipResponse, Node, NodeStatus, RaftRole, Reachability, StatusRequest, StatusResponse,
};
use serde_json::{Value, json};

use crate::options::ClientArgs;

// No doc comment: clap would take it for the help of `larder status`, which the
// variant's own comment gives.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Include every directory change committed before the call (a read index round at
    /// the directory leader).
    #[arg(long)]
    pub linearizable: bool,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List the nodes recorded in the directory.
    List,
    /// Remove a node from the cluster for good (Raft membership and directory); drain
    /// it first if it owns objects.
    Remove {
        /// Id of the node to remove.
        id: u64,
        /// Remove it even though it owns objects: they fail over as if it had died
        /// (drain moves them with their state instead).
        #[arg(long)]
        force: bool,
    },
    /// Move every object the node owns to other nodes of its region.
    Drain {
        /// Id of the node to empty of objects.
        id: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum RaftCommand {
    /// Promote a learner to a voter.
    AddVoter {
        /// Id of the learner to promote.
        id: u64,
    },
    /// Add a node as a learner that follows the directory.
    AddLearner {
        /// Id of the node to add.
        id: u64,
        /// Peer address (HOST:PORT), for a node the directory does not know yet.
        #[arg(long, value_name = "HOST:PORT")]
        peer_addr: Option<String>,
    },
    /// Demote a voter to a learner.
    Remove {
        /// Id of the voter to demote.
        id: u64,
    },
    /// Hand leadership to a voter.
    TransferLeader {
        /// Id of the voter to lead the directory.
        id: u64,
    },
}

pub async fn status(client: &Client, json: bool, linearizable: bool) -> anyhow::Result<()> {
    let request = StatusRequest {
        linearizable,
        check_peers: true,
    };
    let status = client.status_with(request).await.context("status")?;
    if json {
        println!("{}", status_json(&status));
    } else {
        print!("{}", status_table(&status));
    }
    Ok(())
}

pub async fn node(client: &Client, json: bool, command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::List => {
            let nodes = client.list_nodes().await.context("node list")?;
            if json {
                println!("{}", Value::Array(nodes.iter().map(node_json).collect()));
            } else {
                print!("{}", nodes_table(&nodes));
            }
            Ok(())
        }
        NodeCommand::Drain { id } => crate::objects::drain(client, json, id).await,
        NodeCommand::Remove { id, force } => {
            let resp = client.remove_node(id, force).await.context("node remove")?;
            print_membership(json, &format!("node {id} removed"), &resp);
            Ok(())
        }
    }
}

pub async fn raft(client: &Client, json: bool, command: RaftCommand) -> anyhow::Result<()> {
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
    print_membership(json, &what, &resp.context("raft")?);
    Ok(())
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

fn reachability_name(reachable: i32) -> &'static str {
    match Reachability::try_from(reachable) {
        Ok(Reachability::Reachable) => "yes",
        Ok(Reachability::Unreachable) => "NO",
        _ => "-",
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
        "reachable": match Reachability::try_from(node.reachable) {
            Ok(Reachability::Reachable) => Some(true),
            Ok(Reachability::Unreachable) => Some(false),
            _ => None,
        },
    })
}

fn status_json(status: &StatusResponse) -> Value {
    let raft = status.raft.clone().unwrap_or_default();
    json!({
        "node_id": status.node_id,
        "region": status.region,
        "version": status.version,
        "healthy": larder_client::admin::is_healthy(status),
        "problems": larder_client::admin::problems(status),
        "removed": status.removed,
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

/// The nodes as a table; with a REACHED column (whether the answering node reached
/// each just now) when the answer says.
fn nodes_table(nodes: &[Node]) -> String {
    let checked = nodes
        .iter()
        .any(|n| n.reachable != Reachability::Unknown as i32);
    let reached = |node: &Node| {
        if checked {
            format!("{:<8} ", reachability_name(node.reachable))
        } else {
            String::new()
        }
    };
    let mut out = format!(
        "{:<4} {:<12} {:<14} {:<8} {:<6} {}{:<22} {}\n",
        "ID",
        "REGION",
        "JURISDICTIONS",
        "ROLE",
        "STATUS",
        if checked { "REACHED  " } else { "" },
        "API",
        "PEER"
    );
    for node in nodes {
        let jurisdictions = if node.jurisdictions.is_empty() {
            "-".to_string()
        } else {
            node.jurisdictions.join(",")
        };
        out.push_str(&format!(
            "{:<4} {:<12} {:<14} {:<8} {:<6} {}{:<22} {}\n",
            node.id,
            node.region,
            jurisdictions,
            role_name(node.role),
            status_name(node.status),
            reached(node),
            node.api_addr,
            node.peer_addr
        ));
    }
    out
}

fn status_table(status: &StatusResponse) -> String {
    let raft = status.raft.clone().unwrap_or_default();
    let leader = if raft.leader_id == 0 {
        "NONE (an election is under way, or too few voters are reachable)".to_string()
    } else {
        format!("node {} ({})", raft.leader_id, raft.leader_api_addr)
    };
    let problems = larder_client::admin::problems(status);
    let health = if problems.is_empty() {
        "healthy".to_string()
    } else {
        format!("DEGRADED ({})", problems.join("; "))
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
