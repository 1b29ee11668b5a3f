//! Payloads of `larder.peer.v1.ObjectPeer` (postcard inside the peer envelope).

use larder_base::{Epoch, WireProtocol};
use larder_directory::ObjectKey;
use serde::{Deserialize, Serialize};

use crate::op::{Answer, Op};
use crate::{ApplyOutcome, Mutation, Namespace, ObjectError, ObjectState, ReplicaMeta};

/// The object peer protocol. Version 3: replicas answer with a typed [`CopyError`]
/// instead of a message string.
pub const OBJECTS_WIRE: WireProtocol = WireProtocol {
    name: "object",
    version: 3,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecuteRequest {
    pub key: ObjectKey,
    pub location_hint: Option<String>,
    pub op: Op,
    pub request_id: Option<String>,
}

pub type ExecuteResponse = Result<Answer, ObjectError>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicateRequest {
    pub key: ObjectKey,
    pub epoch: Epoch,
    /// Version of the first write (with no writes: the version the owner is at).
    pub version: u64,
    /// One replication round: consecutive writes, each a list of mutations.
    pub writes: Vec<Vec<Mutation>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallRequest {
    pub key: ObjectKey,
    pub epoch: Epoch,
    pub state: ObjectState,
}

/// Why a replica could not take an offer to its copy (it was reached and answered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CopyError {
    /// Its disk is nearly full: it refuses writes until space is back.
    #[error("disk nearly full: {0}")]
    DiskFull(String),
    #[error("storage failed: {0}")]
    Storage(String),
    /// The request could not be read.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The object's namespace was deleted (as the replica has the directory): its
    /// copies are garbage, and are not written.
    #[error("namespace {0} was deleted")]
    NamespaceDeleted(String),
}

impl From<larder_store::StoreError> for CopyError {
    fn from(err: larder_store::StoreError) -> Self {
        match err {
            larder_store::StoreError::DiskFull { .. } => CopyError::DiskFull(err.to_string()),
            other => CopyError::Storage(other.to_string()),
        }
    }
}

pub type CopyResponse = Result<ApplyOutcome, CopyError>;

/// What an owner offers a replica's copy on a `ReplicateStream` (the unary calls
/// `Replicate` and `Install` carry the two kinds apart); answered with a [`CopyResponse`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CopyRequest {
    Write(ReplicateRequest),
    State(InstallRequest),
}

impl CopyRequest {
    pub fn key(&self) -> &ObjectKey {
        match self {
            CopyRequest::Write(request) => &request.key,
            CopyRequest::State(request) => &request.key,
        }
    }

    /// Whether taking it stores something (a ping stores nothing).
    pub fn stores_something(&self) -> bool {
        match self {
            CopyRequest::Write(round) => !round.writes.is_empty(),
            CopyRequest::State(_) => true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FenceRequest {
    pub key: ObjectKey,
    pub epoch: Epoch,
}

pub type FenceResponse = Result<ReplicaMeta, CopyError>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    pub key: ObjectKey,
}

pub type FetchResponse = Result<(ReplicaMeta, ObjectState), CopyError>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropRequest {
    pub key: ObjectKey,
    pub epoch: Epoch,
}

pub type DropResponse = Result<bool, CopyError>;

/// An object's events after `after` (none: from now), from its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub key: ObjectKey,
    pub after: Option<u64>,
}

/// Live events of the objects a node owns in a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceSubscribeRequest {
    pub namespace: Namespace,
    pub id_prefix: String,
}
