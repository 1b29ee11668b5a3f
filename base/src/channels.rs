//! How kv and objects reach other nodes: through the node's one set of peer channels
//! (owned by the directory), handed to them as a factory so neither depends on it.

use std::sync::Arc;

use tonic::transport::Channel;

/// Returns the cached channel to a peer address, shared with all of the node's peer
/// traffic (same source address, same fault layer).
pub type ChannelFactory = Arc<dyn Fn(&str) -> Result<Channel, DialError> + Send + Sync>;

/// No channel to a peer address could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no channel to {addr}: {reason}")]
pub struct DialError {
    pub addr: String,
    pub reason: String,
}
