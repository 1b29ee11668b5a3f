//! Peer payloads: postcard inside `larder.peer.v1.Envelope`, tagged with the wire
//! version of their protocol. A node refuses an envelope of another version with a
//! message naming both, so a mixed-version cluster fails loudly instead of misreading.

use larder_proto::peer::Envelope;
use larder_store::codec::{self, CodecError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One of the peer protocols and the payload version this build speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireProtocol {
    pub name: &'static str,
    pub version: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("{protocol} peer wire version {got} is not supported (this node speaks {speaks})")]
    UnsupportedVersion {
        protocol: &'static str,
        got: u32,
        speaks: u32,
    },
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl WireProtocol {
    pub fn seal<T: Serialize>(&self, value: &T) -> Result<Envelope, EnvelopeError> {
        Ok(Envelope {
            version: self.version,
            payload: codec::encode(value)?,
        })
    }

    pub fn open<T: DeserializeOwned>(&self, envelope: &Envelope) -> Result<T, EnvelopeError> {
        if envelope.version != self.version {
            return Err(EnvelopeError::UnsupportedVersion {
                protocol: self.name,
                got: envelope.version,
                speaks: self.version,
            });
        }
        Ok(codec::decode(&envelope.payload)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: WireProtocol = WireProtocol {
        name: "test",
        version: 3,
    };

    #[test]
    fn a_sealed_value_opens_and_another_version_is_refused_by_name() {
        let sealed = TEST.seal(&(7u64, "x".to_string())).expect("seal");
        let back: (u64, String) = TEST.open(&sealed).expect("open");
        assert_eq!(back, (7, "x".to_string()));
        let newer = WireProtocol {
            name: "test",
            version: 4,
        };
        let err = newer.open::<(u64, String)>(&sealed).expect_err("version");
        assert_eq!(
            err.to_string(),
            "test peer wire version 3 is not supported (this node speaks 4)"
        );
        let garbage = Envelope {
            version: 3,
            payload: vec![0xff],
        };
        assert!(matches!(
            TEST.open::<(u64, String)>(&garbage),
            Err(EnvelopeError::Codec(_))
        ));
    }
}
