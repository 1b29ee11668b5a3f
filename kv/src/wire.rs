//! Peer envelopes for KV replication: postcard payloads with a wire version.

use larder_proto::peer::Envelope;
use larder_store::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::KvError;

/// Version of the KV peer payloads. A node refuses envelopes of another version.
pub const KV_WIRE_VERSION: u32 = 1;

pub fn seal<T: Serialize>(value: &T) -> Result<Envelope, KvError> {
    Ok(Envelope {
        version: KV_WIRE_VERSION,
        payload: codec::encode(value)?,
    })
}

pub fn open<T: DeserializeOwned>(envelope: &Envelope) -> Result<T, KvError> {
    if envelope.version != KV_WIRE_VERSION {
        return Err(KvError::InvalidArgument(format!(
            "KV peer wire version {} is not supported (this node speaks {KV_WIRE_VERSION})",
            envelope.version
        )));
    }
    Ok(codec::decode(&envelope.payload)?)
}
