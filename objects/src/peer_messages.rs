//! Payloads of `larder.peer.v1.ObjectPeer` (postcard inside the peer envelope).

use larder_directory::ObjectKey;
use serde::{Deserialize, Serialize};

use crate::op::{Answer, Op};
use crate::{ApplyOutcome, Mutation, ObjectError, ObjectState};

/// Version of the object peer payloads.
pub const OBJECTS_WIRE_VERSION: u32 = 2;

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
    pub epoch: u64,
    /// Version of the first write (with no writes: the version the owner is at).
    pub version: u64,
    /// One replication round: consecutive writes, each a list of mutations.
    pub writes: Vec<Vec<Mutation>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallRequest {
    pub key: ObjectKey,
    pub epoch: u64,
    pub state: ObjectState,
}

pub type CopyResponse = Result<ApplyOutcome, String>;

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FenceRequest {
    pub key: ObjectKey,
    pub epoch: u64,
}

pub type FenceResponse = Result<crate::ReplicaMeta, String>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    pub key: ObjectKey,
}

pub type FetchResponse = Result<(crate::ReplicaMeta, ObjectState), String>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropRequest {
    pub key: ObjectKey,
    pub epoch: u64,
}

pub type DropResponse = Result<bool, String>;

/// An object's events after `after` (none: from now), from its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub key: ObjectKey,
    pub after: Option<u64>,
}

/// Live events of the objects a node owns in a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceSubscribeRequest {
    pub namespace: String,
    pub id_prefix: String,
}

pub fn seal<T: Serialize>(value: &T) -> Result<larder_proto::peer::Envelope, ObjectError> {
    Ok(larder_proto::peer::Envelope {
        version: OBJECTS_WIRE_VERSION,
        payload: larder_store::codec::encode(value)
            .map_err(|e| ObjectError::Storage(e.to_string()))?,
    })
}

pub fn open<T: serde::de::DeserializeOwned>(
    envelope: &larder_proto::peer::Envelope,
) -> Result<T, String> {
    if envelope.version != OBJECTS_WIRE_VERSION {
        return Err(format!(
            "object peer wire version {} is not supported (this node speaks {OBJECTS_WIRE_VERSION})",
            envelope.version
        ));
    }
    larder_store::codec::decode(&envelope.payload).map_err(|err| err.to_string())
}
