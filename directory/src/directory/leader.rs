//! What the leader does with a directory request: one function per request kind,
//! membership changes decided from [`RaftView`](crate::RaftView) and carried out
//! through openraft, and openraft's errors mapped to [`DirectoryError`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{ChangeMembers, ReadPolicy};

use super::Directory;
use crate::raft_types::DirectoryRaftConfig as C;
use crate::raft_view::{Leaving, MembershipStep};
use crate::{
    Command, CommandOutcome, DirectoryError, DirectoryRequest, DirectoryResponse, MembershipView,
    NodeId, NodeSpec, PeerNode,
};

impl Directory {
    /// Runs a request on this node, which believes it is the leader.
    pub(super) async fn execute(
        &self,
        req: DirectoryRequest,
    ) -> Result<DirectoryResponse, DirectoryError> {
        match req {
            DirectoryRequest::Write(command) => self.write(command).await,
            DirectoryRequest::Join(spec) => self.join(spec, false).await,
            DirectoryRequest::Rejoin(spec) => self.join(spec, true).await,
            DirectoryRequest::AddLearner { id, peer_addr } => self.add_learner(id, peer_addr).await,
            DirectoryRequest::AddVoter(id) => self.add_voter(id).await,
            DirectoryRequest::RemoveVoter(id) => self.remove_voter(id).await,
            DirectoryRequest::RemoveNode { id, force } => self.remove_node(id, force).await,
            DirectoryRequest::TransferLeader(id) => self.transfer_leader(id).await,
            DirectoryRequest::ReadIndex => self.read_index().await,
            DirectoryRequest::StillMember(id) => {
                if self.read_local(|s| s.removed_nodes.contains(&id)).await {
                    Err(DirectoryError::NodeRemoved(id))
                } else {
                    Ok(self.membership(self.raft_view().committed_index))
                }
            }
        }
    }

    /// Proposes `command` through this node's own Raft member, which must lead: never
    /// forwarded and never retried, for commands whose meaning depends on the proposer's
    /// own view (liveness marks). A node that no longer leads gets `NotLeader`.
    pub async fn propose_as_leader(
        &self,
        command: Command,
    ) -> Result<CommandOutcome, DirectoryError> {
        let (outcome, _) = self.commit(command).await?;
        Ok(outcome)
    }

    async fn write(&self, command: Command) -> Result<DirectoryResponse, DirectoryError> {
        let (outcome, log_index) = self.commit(command).await?;
        Ok(DirectoryResponse::Outcome { outcome, log_index })
    }

    /// Commits `command` through this node's Raft member: its outcome and log index.
    async fn commit(&self, command: Command) -> Result<(CommandOutcome, u64), DirectoryError> {
        let resp = self
            .inner
            .raft
            .client_write(command)
            .await
            .map_err(map_write_error)?;
        Ok((resp.data, resp.log_id.index))
    }

    /// Registers the node, then makes it a learner if it is not a member yet. A node
    /// removed earlier comes back only by an explicit join (`rejoin`).
    async fn join(
        &self,
        spec: NodeSpec,
        rejoin: bool,
    ) -> Result<DirectoryResponse, DirectoryError> {
        let id = spec.id;
        let peer_addr = spec.peer_addr.clone();
        let at_ms = self.now_ms();
        let command = if rejoin {
            Command::RejoinNode { spec, at_ms }
        } else {
            Command::RegisterNode { spec, at_ms }
        };
        let written = self.write(command).await?;
        if let DirectoryResponse::Outcome {
            outcome: CommandOutcome::NodeRemoved(id),
            ..
        } = written
        {
            return Err(DirectoryError::NodeRemoved(id));
        }
        match self.peer_addr_of(id) {
            Some(known) if known == peer_addr => Ok(written),
            Some(_) => {
                // The node came back on another address: update it in place.
                let nodes = BTreeMap::from([(id, PeerNode { peer_addr })]);
                self.commit_change(ChangeMembers::SetNodes(nodes), true)
                    .await
            }
            None => self.commit_learner(id, peer_addr, false).await,
        }
    }

    /// Adds a learner at `peer_addr`, or at the address the directory records for it.
    async fn add_learner(
        &self,
        id: NodeId,
        peer_addr: Option<String>,
    ) -> Result<DirectoryResponse, DirectoryError> {
        let peer_addr = match peer_addr {
            Some(addr) => addr,
            None => self
                .read_local(|state| state.node(id).map(|record| record.spec.peer_addr.clone()))
                .await
                .ok_or(DirectoryError::NodeNotFound(id))?,
        };
        self.commit_learner(id, peer_addr, true).await
    }

    async fn add_voter(&self, id: NodeId) -> Result<DirectoryResponse, DirectoryError> {
        if self.raft_view().add_voter_step(id)? == MembershipStep::AlreadyDone {
            return Ok(self.membership(self.raft_view().committed_index));
        }
        self.commit_change(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
    }

    /// Demotes a voter to a learner.
    async fn remove_voter(&self, id: NodeId) -> Result<DirectoryResponse, DirectoryError> {
        self.raft_view().check_remove_voter(id)?;
        self.commit_change(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
            .await
    }

    /// Removes a node: its record from the directory (its id kept as removed), then
    /// from the membership. The record goes first, while the node still receives the
    /// log, so that it learns of its removal from its own copy of the directory. A node
    /// that owns objects is refused unless `force` (drain it first: its objects then
    /// move with their state instead of failing over).
    async fn remove_node(
        &self,
        id: NodeId,
        force: bool,
    ) -> Result<DirectoryResponse, DirectoryError> {
        let view = self.raft_view();
        let (known, owned) = self
            .read_local(|state| (state.node(id).is_some(), state.owned_by(id)))
            .await;
        let leaving = view.leaving(id, known)?;
        if owned > 0 && !force {
            return Err(DirectoryError::NeedsForce(format!(
                "node {id} owns {owned} objects: drain it first (larder node drain {id}) so \
                 they move with their state, or remove it with --force and they fail over \
                 as if it had died"
            )));
        }
        let log_index = match self.write(Command::RemoveNode { id }).await? {
            DirectoryResponse::Outcome { log_index, .. } => log_index,
            _ => 0,
        };
        let change = match leaving {
            Leaving::Voter => Some(ChangeMembers::RemoveVoters(BTreeSet::from([id]))),
            Leaving::Learner => Some(ChangeMembers::RemoveNodes(BTreeSet::from([id]))),
            Leaving::NotAMember => None,
        };
        match change {
            Some(change) => self.commit_change(change, false).await,
            None => Ok(self.membership(log_index)),
        }
    }

    /// Hands leadership to voter `id` and waits until it has taken over.
    async fn transfer_leader(&self, id: NodeId) -> Result<DirectoryResponse, DirectoryError> {
        let view = self.raft_view();
        if view.transfer_step(id)? == MembershipStep::AlreadyDone {
            return Ok(self.membership(view.committed_index));
        }
        self.inner
            .raft
            .trigger()
            .transfer_leader(id)
            .await
            .map_err(|err| DirectoryError::Rejected(err.to_string()))?;
        let timeout = Duration::from_millis(self.inner.config.election_timeout_max_ms * 2);
        self.inner
            .raft
            .wait(Some(timeout))
            .current_leader(id, "leadership transfer")
            .await
            .map_err(|_| DirectoryError::Timeout {
                what: format!("node {id} to take over leadership"),
                ms: timeout.as_millis() as u64,
            })?;
        Ok(self.membership(self.raft_view().committed_index))
    }

    /// Confirms leadership with a quorum; a linearizable read waits for the index.
    async fn read_index(&self) -> Result<DirectoryResponse, DirectoryError> {
        let read = self
            .inner
            .raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map_err(map_read_index_error)?;
        Ok(DirectoryResponse::ReadIndex(read.index()))
    }

    /// Commits a membership change; `retain`: voters it removes stay as learners.
    async fn commit_change(
        &self,
        change: ChangeMembers<NodeId, PeerNode>,
        retain: bool,
    ) -> Result<DirectoryResponse, DirectoryError> {
        let resp = self
            .inner
            .raft
            .change_membership(change, retain)
            .await
            .map_err(map_write_error)?;
        Ok(self.membership(resp.log_id.index))
    }

    /// Adds `id` as a learner at `peer_addr`; `blocking`: answer once it has caught up.
    async fn commit_learner(
        &self,
        id: NodeId,
        peer_addr: String,
        blocking: bool,
    ) -> Result<DirectoryResponse, DirectoryError> {
        let resp = self
            .inner
            .raft
            .add_learner(id, PeerNode { peer_addr }, blocking)
            .await
            .map_err(map_write_error)?;
        Ok(self.membership(resp.log_id.index))
    }

    /// The answer to a membership request: the membership now, and the log index of
    /// the change.
    fn membership(&self, log_index: u64) -> DirectoryResponse {
        let view = self.raft_view();
        DirectoryResponse::Membership(MembershipView {
            voters: view.voters.into_iter().collect(),
            learners: view.learners.into_iter().collect(),
            log_index,
        })
    }
}

/// A leader that cannot confirm its leadership with a quorum (cut off, a partition, a
/// crash of the others) is a passing state like having no leader: retryable, never a
/// refusal. (The nemesis saw an object call answered `FAILED_PRECONDITION` for it.)
fn map_read_index_error(
    err: openraft::error::RaftError<C, openraft::error::LinearizableReadError<C>>,
) -> DirectoryError {
    use openraft::error::{LinearizableReadError, RaftError};
    match err {
        RaftError::APIError(
            LinearizableReadError::ForwardToLeader(_) | LinearizableReadError::QuorumNotEnough(_),
        ) => DirectoryError::NoLeader,
        RaftError::Fatal(fatal) => DirectoryError::Storage(fatal.to_string()),
    }
}

fn map_write_error<E>(err: openraft::error::RaftError<C, E>) -> DirectoryError
where
    E: std::error::Error + openraft::TryAsRef<openraft::error::ForwardToLeader<C>>,
{
    match err.forward_to_leader() {
        Some(forward) => DirectoryError::NotLeader {
            leader: forward.leader_id,
            leader_api_addr: None,
        },
        None => match err {
            openraft::error::RaftError::APIError(api) => DirectoryError::Rejected(api.to_string()),
            openraft::error::RaftError::Fatal(fatal) => DirectoryError::Storage(fatal.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::error::{
        ChangeMembershipError, ClientWriteError, ForwardToLeader, LearnerNotFound,
        LinearizableReadError, QuorumNotEnough, RaftError,
    };

    use super::*;

    #[test]
    fn a_read_index_without_a_quorum_is_retried_not_refused() {
        let err = RaftError::APIError(LinearizableReadError::QuorumNotEnough(QuorumNotEnough {
            cluster: "voters 1,2,3".into(),
            got: BTreeSet::from([NodeId(1)]),
        }));
        let mapped = map_read_index_error(err);
        assert!(mapped.is_retryable(), "{mapped:?}");
    }

    /// A write at a node that does not lead is a redirect to the leader it names; a
    /// membership change openraft refuses is final.
    #[test]
    fn a_write_away_from_the_leader_is_redirected_and_a_refusal_is_final() {
        let leader = PeerNode {
            peer_addr: "peer-3".into(),
        };
        let forward: RaftError<C, ClientWriteError<C>> = RaftError::APIError(
            ClientWriteError::ForwardToLeader(ForwardToLeader::new(NodeId(3), leader)),
        );
        let mapped = map_write_error(forward);
        assert_eq!(
            mapped,
            DirectoryError::NotLeader {
                leader: Some(NodeId(3)),
                leader_api_addr: None,
            }
        );
        assert!(mapped.is_retryable());
        let refused: RaftError<C, ClientWriteError<C>> =
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::LearnerNotFound(LearnerNotFound { node_id: NodeId(4) }),
            ));
        let mapped = map_write_error(refused);
        assert!(matches!(mapped, DirectoryError::Rejected(_)), "{mapped:?}");
        assert!(!mapped.is_retryable());
    }
}
