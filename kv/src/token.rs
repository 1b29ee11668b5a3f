//! Consistency and resume tokens: a [`VersionVector`] restricted to what a reader needs,
//! carried as a protobuf `ConsistencyToken` so clients can merge them.

use larder_proto::v1::{ConsistencyToken, TokenEntry};
use prost::Message;

use crate::{KvError, Namespace, NodeId, VersionVector};

pub fn encode(vector: &VersionVector) -> Vec<u8> {
    let entries = vector
        .0
        .iter()
        .flat_map(|(ns, origins)| {
            origins.iter().map(move |(origin, seq)| TokenEntry {
                namespace: ns.as_str().to_owned(),
                origin: origin.0,
                seq: *seq,
            })
        })
        .collect();
    ConsistencyToken { entries }.encode_to_vec()
}

/// Decodes a token; empty bytes are an empty token.
pub fn decode(bytes: &[u8]) -> Result<VersionVector, KvError> {
    let token = ConsistencyToken::decode(bytes)
        .map_err(|err| KvError::InvalidArgument(format!("malformed consistency token: {err}")))?;
    let mut vector = VersionVector::default();
    for entry in token.entries {
        // Not checked against the name rule: the token only restricts reads of the
        // namespace a request names, so a name that was never created matches nothing.
        vector.raise(&entry.namespace.into(), NodeId(entry.origin), entry.seq);
    }
    Ok(vector)
}

/// The part of `vector` about one namespace.
pub fn restrict(vector: &VersionVector, namespace: &Namespace) -> VersionVector {
    let mut out = VersionVector::default();
    for (origin, seq) in vector.namespace(namespace) {
        out.raise(namespace, origin, seq);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let mut v = VersionVector::default();
        v.raise(&"a".into(), NodeId(1), 5);
        v.raise(&"b".into(), NodeId(2), 7);
        assert_eq!(decode(&encode(&v)).expect("decode"), v);
        assert_eq!(decode(&[]).expect("empty"), VersionVector::default());
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
        assert_eq!(restrict(&v, &"a".into()).0.len(), 1);
    }
}
