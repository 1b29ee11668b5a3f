//! The directory: the cluster's Raft-replicated record of nodes, namespaces and object
//! placement.
//!
//! Layout:
//! - [`NodeSpec`], [`NodeRecord`], [`PeerNode`]: what the directory knows of a node;
//! - [`namespace`]: namespaces and their residency policies;
//! - [`placement`]: object placement (owner, replicas, epoch) and how it is chosen;
//! - [`Command`] and [`DirectoryState`]: the replicated commands and the pure state
//!   machine core that applies them;
//! - [`SledLogStore`], [`SledStateMachine`]: openraft storage over the storage seam,
//!   flushed before anything is acknowledged;
//! - [`TonicNetworkFactory`], [`peer_services`]: Raft and forwarded requests over the peer
//!   listener (postcard payloads in protobuf envelopes, one cached channel per peer);
//! - [`Directory`]: this node's handle: bootstrap, requests routed to the leader,
//!   membership changes, linearizable reads;
//! - [`liveness`]: the leader's task that records nodes going down and coming back.

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
pub use namespace::{NamespacePolicy, NamespaceRecord, check_namespace_name};
pub use network::TonicNetworkFactory;
pub use node_record::{NodeRecord, NodeSpec, NodeStatus, PeerNode};
pub use peer_channels::{PeerChannels, PeerConnector, PeerIo};
pub use peer_service::peer_services;
pub use placement::{ObjectKey, ObjectPlacement, PlacementError, choose_replicas};
pub use raft_view::{RaftRole, RaftView};
pub use request::{DirectoryRequest, DirectoryResponse, MembershipView};
pub use state_machine::{AppliedState, DirectoryReader, SledStateMachine};
