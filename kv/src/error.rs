use crate::{Namespace, NodeId};

/// Errors of the KV.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("namespace {0:?} does not exist")]
    NamespaceNotFound(Namespace),
    #[error(
        "namespace {namespace:?} is restricted to {policy}; node {node} ({region}) does not hold it{}",
        holder_display(retry_at)
    )]
    NotAllowedHere {
        namespace: Namespace,
        policy: String,
        node: NodeId,
        region: String,
        /// Api address of an up node that holds it, if any.
        retry_at: Option<String>,
    },
    /// A read carried a consistency token this replica has not caught up with in time.
    #[error(
        "this node has not yet received write {seq} of node {origin} in {namespace:?}; retry, or read at node {origin}"
    )]
    NotCaughtUp {
        namespace: Namespace,
        origin: NodeId,
        seq: u64,
        retry_at: Option<String>,
    },
    #[error("the write queue is full ({0} batches waiting); retry shortly")]
    Overloaded(usize),
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("storage failed: {0}")]
    Storage(String),
    /// The node's disk is nearly full: writes are refused, reads go on.
    #[error("{0}")]
    DiskFull(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the KV is shutting down")]
    ShuttingDown,
}

impl From<larder_store::StoreError> for KvError {
    fn from(err: larder_store::StoreError) -> Self {
        match err {
            larder_store::StoreError::DiskFull { .. } => KvError::DiskFull(err.to_string()),
            other => KvError::Storage(other.to_string()),
        }
    }
}

impl From<larder_base::EnvelopeError> for KvError {
    fn from(err: larder_base::EnvelopeError) -> Self {
        match err {
            larder_base::EnvelopeError::UnsupportedVersion { .. } => {
                KvError::InvalidArgument(err.to_string())
            }
            larder_base::EnvelopeError::Codec(codec) => codec.into(),
        }
    }
}

impl From<larder_store::CodecError> for KvError {
    fn from(err: larder_store::CodecError) -> Self {
        KvError::Internal(err.to_string())
    }
}

fn holder_display(retry_at: &Option<String>) -> String {
    match retry_at {
        Some(addr) => format!("; call a node that does, such as {addr}"),
        None => "; no node that holds it is up".to_string(),
    }
}
