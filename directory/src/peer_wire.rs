//! Envelopes of the internal peer protocol: postcard payloads with a wire version.

use larder_proto::peer::Envelope;
use larder_store::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the peer payload encoding. A node refuses envelopes of another version.
pub const PEER_WIRE_VERSION: u32 = 1;

pub fn seal<T: Serialize>(value: &T) -> Result<Envelope, codec::CodecError> {
    Ok(Envelope {
        version: PEER_WIRE_VERSION,
        payload: codec::encode(value)?,
    })
}

/// Decodes an envelope, refusing other wire versions with a message naming both.
pub fn open<T: DeserializeOwned>(envelope: &Envelope) -> Result<T, String> {
    if envelope.version != PEER_WIRE_VERSION {
        return Err(format!(
            "peer wire version {} is not supported (this node speaks {PEER_WIRE_VERSION})",
            envelope.version
        ));
    }
    codec::decode(&envelope.payload).map_err(|err| err.to_string())
}
