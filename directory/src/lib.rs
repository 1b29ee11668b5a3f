//! The directory: the cluster's Raft-replicated record of nodes, namespaces and object
//! placement.
//!
//! Layout:
//! - `node_record`: [`NodeSpec`], [`NodeRecord`], [`PeerNode`]: what the directory knows
//!   of a node;
//! - [`namespace`]: namespaces and their residency policies;
//! - [`placement`]: object placement (owner, replicas, epoch) and how it is chosen;
//! - `command`: [`Command`], the replicated commands, and what applying one answers;
//!   `directory_state`: [`DirectoryState`], the pure state machine core that applies
//!   them, one function per command;
//! - `log_store`, `state_machine`: [`SledLogStore`], [`SledStateMachine`]: openraft
//!   storage over the storage seam, flushed before anything is acknowledged;
//! - [`raft_types`]: openraft's type configuration; [`runtime`]: its async runtime, with
//!   random draws a simulation can seed;
//! - `network`, `peer_service`, `peer_channels`: [`TonicNetworkFactory`],
//!   [`peer_services`], [`PeerChannels`]: Raft and forwarded requests over the peer
//!   listener (postcard payloads in protobuf envelopes of the [`peer_wire`] version, one
//!   cached channel per peer); [`link_delay`]: a test-only delay on peer links;
//! - `request`: [`DirectoryRequest`], what only the leader can carry out, and its answers;
//! - `directory`: [`Directory`], this node's handle: start, bootstrap, local and
//!   linearizable reads, placing objects, registering this node; `directory::route`:
//!   where a request goes (run here, to the leader, through the seed), decided purely;
//!   `directory::leader`: what the leader does with each kind of request;
//! - `raft_view`: [`RaftView`], this node's view of the Raft group, and the membership
//!   checks taken from it alone;
//! - [`liveness`]: the leader's task that records nodes going down and coming back;
//! - `config`: [`DirectoryConfig`] and its checks; `error`: [`DirectoryError`].

mod command;
mod config;
mod directory;
mod directory_state;
mod error;
pub mod link_delay;
pub mod liveness;
mod log_store;
pub mod namespace;
mod network;
mod node_record;
mod peer_channels;
mod peer_service;
pub mod peer_wire;
pub mod placement;
pub mod raft_types;
mod raft_view;
mod request;
pub mod runtime;
mod state_machine;

pub use command::{Command, CommandOutcome, Leadership};
pub use config::{DirectoryConfig, DirectoryConfigError};
pub use directory::{Directory, DirectoryRaft};
pub use directory_state::DirectoryState;
pub use error::DirectoryError;
pub use larder_base::{Epoch, Jurisdiction, Namespace, NodeId, RegionId, check_label};
pub use log_store::SledLogStore;
pub use namespace::{NamespacePolicy, NamespaceRecord, NamespaceSpec, check_namespace_name};
pub use network::TonicNetworkFactory;
pub use node_record::{NodeRecord, NodeSpec, NodeStatus, PeerNode};
pub use peer_channels::{PeerChannels, PeerConnector, PeerIo};
pub use peer_service::peer_services;
pub use placement::{
    NEAR_OWNER_SLACK, ObjectKey, ObjectPlacement, Owner, PlacementError, choose_replicas,
    choose_replicas_by_load,
};
pub use raft_view::{RaftRole, RaftView};
pub use request::{DirectoryRequest, DirectoryResponse, MembershipView};
pub use state_machine::{AppliedState, DirectoryReader, SledStateMachine};
