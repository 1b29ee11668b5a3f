//! This node's view of the Raft group, and the membership decisions taken from it alone:
//! pure, so that every refusal has a unit test.

use std::collections::BTreeSet;

use openraft::ServerState;

use crate::raft_types::RaftMetrics;
use crate::{DirectoryError, NodeId};

/// Role of a node in the directory's Raft membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftRole {
    None,
    Learner,
    Voter,
}

/// A view of the Raft group from this node.
#[derive(Debug, Clone)]
pub struct RaftView {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub state: &'static str,
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

/// Whether a membership request leaves anything for Raft to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MembershipStep {
    /// The group is already as asked: answer with the membership as it is.
    AlreadyDone,
    Change,
}

/// How a node removed from the directory leaves the Raft membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaving {
    Voter,
    Learner,
    /// Not a member (a record only): nothing to change in Raft.
    NotAMember,
}

impl RaftView {
    pub(crate) fn from_metrics(metrics: &RaftMetrics) -> RaftView {
        let membership = metrics.membership_config.membership();
        RaftView {
            leader: metrics.current_leader,
            term: metrics.current_term,
            committed_index: metrics.local_committed.map_or(0, |id| id.index),
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            state: match metrics.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            },
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
        }
    }

    pub fn role(&self, id: NodeId) -> RaftRole {
        if self.voters.contains(&id) {
            RaftRole::Voter
        } else if self.learners.contains(&id) {
            RaftRole::Learner
        } else {
            RaftRole::None
        }
    }

    /// Only a learner is promoted: a node must catch up as one before it votes.
    pub(crate) fn add_voter_step(&self, id: NodeId) -> Result<MembershipStep, DirectoryError> {
        match self.role(id) {
            RaftRole::Voter => Ok(MembershipStep::AlreadyDone),
            RaftRole::Learner => Ok(MembershipStep::Change),
            RaftRole::None => Err(DirectoryError::NotALearner(id)),
        }
    }

    /// The last voter stays: without it the group could never elect a leader again.
    pub(crate) fn check_remove_voter(&self, id: NodeId) -> Result<(), DirectoryError> {
        if !self.voters.contains(&id) {
            return Err(DirectoryError::NotAVoter(id));
        }
        if self.voters.len() == 1 {
            return Err(DirectoryError::LastVoter(id));
        }
        Ok(())
    }

    /// How `id` leaves the membership; `known`: the directory holds a record of it, so
    /// a node that is no member can still be removed from the directory.
    pub(crate) fn leaving(&self, id: NodeId, known: bool) -> Result<Leaving, DirectoryError> {
        match self.role(id) {
            RaftRole::Voter if self.voters.len() == 1 => Err(DirectoryError::LastVoter(id)),
            RaftRole::Voter => Ok(Leaving::Voter),
            RaftRole::Learner => Ok(Leaving::Learner),
            RaftRole::None if !known => Err(DirectoryError::NodeNotFound(id)),
            RaftRole::None => Ok(Leaving::NotAMember),
        }
    }

    /// Only a voter can lead.
    pub(crate) fn transfer_step(&self, id: NodeId) -> Result<MembershipStep, DirectoryError> {
        if !self.voters.contains(&id) {
            return Err(DirectoryError::NotAVoter(id));
        }
        if self.leader == Some(id) {
            return Ok(MembershipStep::AlreadyDone);
        }
        Ok(MembershipStep::Change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `voters`, node 1 leading, node 3 a learner.
    fn view(voters: &[u64]) -> RaftView {
        RaftView {
            leader: Some(NodeId(1)),
            term: 3,
            committed_index: 10,
            applied_index: 10,
            last_log_index: 10,
            state: "leader",
            voters: voters.iter().copied().map(NodeId).collect(),
            learners: BTreeSet::from([NodeId(3)]),
        }
    }

    #[test]
    fn only_a_learner_is_promoted() {
        let v = view(&[1, 2]);
        assert_eq!(v.add_voter_step(NodeId(3)), Ok(MembershipStep::Change));
        assert_eq!(v.add_voter_step(NodeId(2)), Ok(MembershipStep::AlreadyDone));
        assert_eq!(
            v.add_voter_step(NodeId(9)),
            Err(DirectoryError::NotALearner(NodeId(9)))
        );
    }

    #[test]
    fn the_last_voter_is_never_removed() {
        assert_eq!(view(&[1, 2]).check_remove_voter(NodeId(2)), Ok(()));
        assert_eq!(
            view(&[1, 2]).check_remove_voter(NodeId(3)),
            Err(DirectoryError::NotAVoter(NodeId(3)))
        );
        assert_eq!(
            view(&[1]).check_remove_voter(NodeId(1)),
            Err(DirectoryError::LastVoter(NodeId(1)))
        );
        assert_eq!(
            view(&[1]).leaving(NodeId(1), true),
            Err(DirectoryError::LastVoter(NodeId(1)))
        );
    }

    #[test]
    fn a_removed_node_leaves_by_its_role() {
        let v = view(&[1, 2]);
        assert_eq!(v.leaving(NodeId(2), true), Ok(Leaving::Voter));
        assert_eq!(v.leaving(NodeId(3), false), Ok(Leaving::Learner));
        assert_eq!(v.leaving(NodeId(9), true), Ok(Leaving::NotAMember));
        assert_eq!(
            v.leaving(NodeId(9), false),
            Err(DirectoryError::NodeNotFound(NodeId(9)))
        );
    }

    #[test]
    fn leadership_goes_only_to_a_voter() {
        let v = view(&[1, 2]);
        assert_eq!(v.transfer_step(NodeId(2)), Ok(MembershipStep::Change));
        assert_eq!(v.transfer_step(NodeId(1)), Ok(MembershipStep::AlreadyDone));
        assert_eq!(
            v.transfer_step(NodeId(3)),
            Err(DirectoryError::NotAVoter(NodeId(3)))
        );
    }
}
