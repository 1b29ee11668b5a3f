//! Larder's own binary encoding for records on disk and peer messages: postcard (serde
//! compatible, maintained, stable wire format). Every encode and decode goes through here.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {what}: {reason}")]
pub struct CodecError {
    pub op: &'static str,
    pub what: &'static str,
    pub reason: String,
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(value).map_err(|err| CodecError {
        op: "encode",
        what: std::any::type_name::<T>(),
        reason: err.to_string(),
    })
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|err| CodecError {
        op: "decode",
        what: std::any::type_name::<T>(),
        reason: err.to_string(),
    })
}

impl From<CodecError> for std::io::Error {
    fn from(err: CodecError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_garbage() {
        let value = (7u64, String::from("eu-west"), vec![1u8, 2, 3]);
        let bytes = super::encode(&value).expect("encode");
        let back: (u64, String, Vec<u8>) = super::decode(&bytes).expect("decode");
        assert_eq!(back, value);
        let err = super::decode::<(u64, String)>(&[0xff]).expect_err("garbage");
        assert_eq!(err.op, "decode");
    }
}
