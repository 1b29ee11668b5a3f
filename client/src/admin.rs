//! Cluster administration calls (`larder.v1.Admin`).

use larder_proto::v1::admin_client::AdminClient;
use larder_proto::v1::{
    AddLearnerRequest, AddVoterRequest, ListNodesRequest, RemoveNodeRequest, RemoveVoterRequest,
    TransferLeaderRequest,
};
pub use larder_proto::v1::{
    MembershipResponse, Node, NodeStatus, RaftRole, RaftStatus, Reachability, StatusRequest,
    StatusResponse,
};
use tonic::transport::Channel;

use crate::{Client, ClientError};

impl Client {
    fn admin_client(&self, channel: Channel) -> AdminClient<Channel> {
        AdminClient::new(channel)
            .max_decoding_message_size(self.config().message_bytes_max)
            .max_encoding_message_size(self.config().message_bytes_max)
    }

    /// Status of the cluster as seen by this node; `linearizable` makes it include every
    /// directory change committed before the call.
    pub async fn status(&self, linearizable: bool) -> Result<StatusResponse, ClientError> {
        self.status_with(StatusRequest {
            linearizable,
            check_peers: false,
        })
        .await
    }

    /// The node's status as `request` asks for it (e.g. with every peer checked for
    /// reachability: `check_peers`).
    pub async fn status_with(&self, request: StatusRequest) -> Result<StatusResponse, ClientError> {
        self.with_retries(|ch| async move {
            let mut admin = self.admin_client(ch);
            Ok(admin.status(request).await?.into_inner())
        })
        .await
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>, ClientError> {
        self.with_retries(|ch| async move {
            let mut admin = self.admin_client(ch);
            Ok(admin
                .list_nodes(ListNodesRequest {})
                .await?
                .into_inner()
                .nodes)
        })
        .await
    }

    /// Removes a node from the cluster for good; `force`: even if it owns objects
    /// (they fail over; without it such a node is refused: drain it first).
    pub async fn remove_node(
        &self,
        node_id: u64,
        force: bool,
    ) -> Result<MembershipResponse, ClientError> {
        self.with_retries(|ch| async move {
            let mut admin = self.admin_client(ch);
            Ok(admin
                .remove_node(RemoveNodeRequest { node_id, force })
                .await?
                .into_inner())
        })
        .await
    }

    pub async fn add_learner(
        &self,
        node_id: u64,
        peer_addr: Option<String>,
    ) -> Result<MembershipResponse, ClientError> {
        let peer_addr = peer_addr.unwrap_or_default();
        self.with_retries(|ch| {
            let peer_addr = peer_addr.clone();
            async move {
                let mut admin = self.admin_client(ch);
                Ok(admin
                    .add_learner(AddLearnerRequest { node_id, peer_addr })
                    .await?
                    .into_inner())
            }
        })
        .await
    }

    pub async fn add_voter(&self, node_id: u64) -> Result<MembershipResponse, ClientError> {
        self.with_retries(|ch| async move {
            let mut admin = self.admin_client(ch);
            Ok(admin
                .add_voter(AddVoterRequest { node_id })
                .await?
                .into_inner())
        })
        .await
    }

    pub async fn remove_voter(&self, node_id: u64) -> Result<MembershipResponse, ClientError> {
        self.with_retries(|ch| async move {
            let mut admin = self.admin_client(ch);
            Ok(admin
                .remove_voter(RemoveVoterRequest { node_id })
                .await?
                .into_inner())
        })
        .await
    }

    pub async fn transfer_leader(&self, node_id: u64) -> Result<MembershipResponse, ClientError> {
        self.with_retries(|ch| async move {
            let mut admin = self.admin_client(ch);
            Ok(admin
                .transfer_leader(TransferLeaderRequest { node_id })
                .await?
                .into_inner())
        })
        .await
    }
}

/// Whether every recorded node is up and a leader is known.
pub fn is_healthy(status: &StatusResponse) -> bool {
    !status.nodes.is_empty() && problems(status).is_empty()
}

/// What keeps the cluster from healthy, as `status` shows it: no directory leader,
/// nodes the directory has down, nodes the answering node could not reach (when it was
/// asked to check).
pub fn problems(status: &StatusResponse) -> Vec<String> {
    let mut problems = Vec::new();
    if status.removed {
        problems.push(format!(
            "node {} (the one answering) was removed from the cluster and serves nothing",
            status.node_id
        ));
    }
    if status.raft.as_ref().map_or(0, |raft| raft.leader_id) == 0 {
        problems.push("the directory has no leader".to_string());
    }
    for node in &status.nodes {
        if node.status != NodeStatus::Up as i32 {
            problems.push(format!("node {} is down", node.id));
        } else if node.reachable == Reachability::Unreachable as i32 {
            problems.push(format!(
                "node {} does not answer node {}",
                node.id, status.node_id
            ));
        }
    }
    problems
}

pub use larder_proto::v1::Namespace;
use larder_proto::v1::{CreateNamespaceRequest, DeleteNamespaceRequest, ListNamespacesRequest};

impl Client {
    /// Creates a namespace; `regions` empty means every region, `jurisdiction` None no
    /// jurisdiction restriction.
    pub async fn create_namespace(
        &self,
        name: &str,
        regions: Vec<String>,
        jurisdiction: Option<String>,
    ) -> Result<Namespace, ClientError> {
        let req = CreateNamespaceRequest {
            name: name.to_string(),
            regions,
            jurisdiction: jurisdiction.unwrap_or_default(),
        };
        self.with_retries(|ch| {
            let req = req.clone();
            async move {
                Ok(self
                    .admin_client(ch)
                    .create_namespace(req)
                    .await?
                    .into_inner())
            }
        })
        .await
    }

    pub async fn list_namespaces(&self) -> Result<Vec<Namespace>, ClientError> {
        self.with_retries(|ch| async move {
            Ok(self
                .admin_client(ch)
                .list_namespaces(ListNamespacesRequest {})
                .await?
                .into_inner()
                .namespaces)
        })
        .await
    }

    pub async fn delete_namespace(&self, name: &str) -> Result<(), ClientError> {
        let req = DeleteNamespaceRequest {
            name: name.to_string(),
        };
        self.with_retries(|ch| {
            let req = req.clone();
            async move {
                self.admin_client(ch).delete_namespace(req).await?;
                Ok(())
            }
        })
        .await
    }
}
