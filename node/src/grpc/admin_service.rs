use larder_base::Clock as _;
use larder_directory::{
    Command, CommandOutcome, Directory, DirectoryRequest, DirectoryResponse, DirectoryState,
    MembershipView, Namespace, NamespaceRecord, NodeStatus, RaftRole, RaftView,
};
use larder_kv::Kv;
use larder_proto::v1::admin_server::Admin;
use larder_proto::v1::{
    self as pb, AddLearnerRequest, AddVoterRequest, ListNodesRequest, ListNodesResponse,
    MembershipResponse, RemoveNodeRequest, RemoveVoterRequest, StatusRequest, StatusResponse,
    TransferLeaderRequest,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::requests;
use super::status::directory_status;

/// `larder.v1.Admin` on the api listener.
pub struct AdminService {
    directory: Directory,
    kv: Kv,
    /// Whether this node was removed from the cluster (see `crate::removal`).
    removed: watch::Receiver<bool>,
}

impl AdminService {
    pub fn new(directory: Directory, kv: Kv, removed: watch::Receiver<bool>) -> AdminService {
        AdminService {
            directory,
            kv,
            removed,
        }
    }

    /// Waits until this node has applied the directory up to `log_index` and its KV
    /// serves namespace `name` as the directory then has it; returns the record.
    async fn applied_here(
        &self,
        log_index: u64,
        name: &Namespace,
    ) -> Result<Option<NamespaceRecord>, Status> {
        let timeout = self.directory.config().peer_rpc_timeout();
        self.directory
            .wait_applied(log_index, timeout)
            .await
            .map_err(directory_status)?;
        let record = self
            .directory
            .read_local(|state| state.namespace(name.as_str()).cloned())
            .await;
        let stored_as = record.as_ref().map(NamespaceRecord::stored_as);
        let served = self
            .kv
            .wait_for_view(
                |view| view.resolve(name.as_str()) == stored_as.as_ref(),
                timeout,
            )
            .await;
        if !served {
            return Err(Status::unavailable(format!(
                "namespace {name:?} changed in the directory, but this node's KV did not \
                 follow within {} ms; retry",
                timeout.as_millis()
            )));
        }
        Ok(record)
    }

    fn replication_lag(&self) -> Vec<pb::ReplicationLag> {
        let now = larder_base::SystemClock.now_ms();
        self.kv
            .lag()
            .into_iter()
            .filter(|(origin, _)| origin.0 != self.directory.me().id.0)
            .map(|(origin, lag)| pb::ReplicationLag {
                origin_node_id: origin.0,
                writes_behind: lag.writes_behind,
                ms_behind: lag
                    .behind_since_ms
                    .map_or(0, |since| now.saturating_sub(since)),
                last_received_at_ms: lag.last_received_at_ms.unwrap_or(0),
            })
            .collect()
    }

    async fn membership(
        &self,
        req: DirectoryRequest,
    ) -> Result<Response<MembershipResponse>, Status> {
        match self
            .directory
            .request(req)
            .await
            .map_err(directory_status)?
        {
            DirectoryResponse::Membership(view) => Ok(Response::new(membership_pb(view))),
            DirectoryResponse::Outcome { log_index, .. } => {
                let mut view = membership_of(&self.directory.raft_view());
                view.log_index = log_index;
                Ok(Response::new(view))
            }
            DirectoryResponse::ReadIndex(_) => {
                Err(Status::internal("unexpected read-index answer"))
            }
        }
    }
}

fn namespace_pb(record: &NamespaceRecord) -> pb::Namespace {
    pb::Namespace {
        name: record.name.to_string(),
        regions: record.policy.regions.iter().map(|r| r.0.clone()).collect(),
        jurisdiction: record
            .policy
            .jurisdiction
            .as_ref()
            .map(|j| j.0.clone())
            .unwrap_or_default(),
        created_at_ms: record.created_at_ms,
        generation: record.generation,
    }
}

fn membership_pb(view: MembershipView) -> MembershipResponse {
    MembershipResponse {
        voters: view.voters.into_iter().map(|id| id.0).collect(),
        learners: view.learners.into_iter().map(|id| id.0).collect(),
        log_index: view.log_index,
    }
}

fn membership_of(view: &RaftView) -> MembershipResponse {
    MembershipResponse {
        voters: view.voters.iter().map(|id| id.0).collect(),
        learners: view.learners.iter().map(|id| id.0).collect(),
        log_index: view.committed_index,
    }
}

pub fn nodes_pb(state: &DirectoryState, view: &RaftView) -> Vec<pb::Node> {
    state
        .nodes
        .values()
        .map(|record| pb::Node {
            id: record.spec.id.0,
            region: record.spec.region.0.clone(),
            jurisdictions: record
                .spec
                .jurisdictions
                .iter()
                .map(|j| j.0.clone())
                .collect(),
            api_addr: record.spec.api_addr.clone(),
            peer_addr: record.spec.peer_addr.clone(),
            status: match record.status {
                NodeStatus::Up => pb::NodeStatus::Up,
                NodeStatus::Down => pb::NodeStatus::Down,
            } as i32,
            role: match view.role(record.spec.id) {
                RaftRole::Voter => pb::RaftRole::Voter,
                RaftRole::Learner => pb::RaftRole::Learner,
                RaftRole::None => pb::RaftRole::None,
            } as i32,
            status_changed_at_ms: record.status_changed_at_ms,
            reachable: pb::Reachability::Unknown as i32,
        })
        .collect()
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let view = self.directory.raft_view();
        // Read in place: the nodes, not a copy of every placement.
        let read = |state: &DirectoryState| {
            let leader_api_addr = view
                .leader
                .and_then(|id| state.node(id))
                .map(|record| record.spec.api_addr.clone())
                .unwrap_or_default();
            (nodes_pb(state, &view), leader_api_addr)
        };
        let (mut nodes, leader_api_addr) = if request.get_ref().linearizable {
            self.directory
                .read_linearizable(read)
                .await
                .map_err(directory_status)?
        } else {
            self.directory.read_local(read).await
        };
        let me = self.directory.me();
        if request.get_ref().check_peers {
            let others: Vec<&mut pb::Node> = nodes.iter_mut().filter(|n| n.id != me.id.0).collect();
            let addrs = others.iter().map(|n| n.api_addr.clone()).collect();
            for (node, reached) in others
                .into_iter()
                .zip(crate::probe::reachable_all(addrs).await)
            {
                node.reachable = if reached {
                    pb::Reachability::Reachable
                } else {
                    pb::Reachability::Unreachable
                } as i32;
            }
        }
        Ok(Response::new(StatusResponse {
            node_id: me.id.0,
            region: me.region.0.clone(),
            nodes,
            raft: Some(pb::RaftStatus {
                leader_id: view.leader.map_or(0, |id| id.0),
                leader_api_addr,
                term: view.term,
                commit_index: view.committed_index,
                last_applied: view.applied_index,
                last_log_index: view.last_log_index,
                state: view.state.to_string(),
                voters: view.voters.iter().map(|id| id.0).collect(),
                learners: view.learners.iter().map(|id| id.0).collect(),
            }),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kv_replication: self.replication_lag(),
            removed: *self.removed.borrow(),
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let view = self.directory.raft_view();
        let nodes = self
            .directory
            .read_local(|state| nodes_pb(state, &view))
            .await;
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let req = requests::remove_node(request.get_ref())?;
        self.membership(req).await
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let req = requests::add_learner(request.into_inner())?;
        self.membership(req).await
    }

    async fn add_voter(
        &self,
        request: Request<AddVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let req = requests::add_voter(request.get_ref())?;
        self.membership(req).await
    }

    async fn remove_voter(
        &self,
        request: Request<RemoveVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let req = requests::remove_voter(request.get_ref())?;
        self.membership(req).await
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let req = requests::transfer_leader(request.get_ref())?;
        self.membership(req).await
    }

    async fn create_namespace(
        &self,
        request: Request<pb::CreateNamespaceRequest>,
    ) -> Result<Response<pb::Namespace>, Status> {
        let spec =
            requests::namespace_spec(request.into_inner(), larder_base::SystemClock.now_ms())?;
        let name = spec.name.clone();
        let command = Command::CreateNamespace(spec.clone());
        let response = self
            .directory
            .request(DirectoryRequest::Write(command))
            .await
            .map_err(directory_status)?;
        let DirectoryResponse::Outcome { outcome, log_index } = response else {
            return Err(Status::internal(
                "unexpected answer to a namespace creation",
            ));
        };
        if let CommandOutcome::NamespaceExists(_) = outcome {
            return Err(Status::already_exists(format!(
                "namespace {name:?} exists with another policy; delete it first to change it"
            )));
        }
        // Answer with the stored record (an identical earlier creation keeps its time),
        // once this node serves it.
        let stored = self.applied_here(log_index, &name).await?;
        let Some(record) = stored else {
            return Err(Status::aborted(format!(
                "namespace {name:?} was deleted again while it was being created"
            )));
        };
        Ok(Response::new(namespace_pb(&record)))
    }

    async fn list_namespaces(
        &self,
        _request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        let namespaces = self
            .directory
            .read_local(|state| state.namespaces.values().map(namespace_pb).collect())
            .await;
        Ok(Response::new(pb::ListNamespacesResponse { namespaces }))
    }

    async fn delete_namespace(
        &self,
        request: Request<pb::DeleteNamespaceRequest>,
    ) -> Result<Response<pb::DeleteNamespaceResponse>, Status> {
        // Unchecked: a name that breaks the rule cannot exist, and is answered so.
        let name = Namespace::from(request.into_inner().name);
        let command = Command::DeleteNamespace { name: name.clone() };
        let response = self
            .directory
            .request(DirectoryRequest::Write(command))
            .await
            .map_err(directory_status)?;
        match response {
            DirectoryResponse::Outcome {
                outcome: CommandOutcome::UnknownNamespace(_),
                ..
            } => Err(Status::not_found(format!(
                "namespace {name:?} does not exist"
            ))),
            DirectoryResponse::Outcome { log_index, .. } => {
                // Acknowledged once this node serves it no more; every other node stops
                // when it applies the entry.
                self.applied_here(log_index, &name).await?;
                Ok(Response::new(pb::DeleteNamespaceResponse {}))
            }
            _ => Err(Status::internal(
                "unexpected answer to a namespace deletion",
            )),
        }
    }
}
