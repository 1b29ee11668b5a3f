//! Larder's wire definitions: the public `larder.v1` package (api listener) and the
//! internal `larder.peer.v1` package (peer listener), plus the slice of etcd's API the
//! load generator calls (`bench::etcd`). Generated code only, no logic, but for
//! [`metadata`]: the names of Larder's gRPC metadata keys (retry and leader endpoints).

/// Public services for workers and operators.
pub mod v1 {
    tonic::include_proto!("larder.v1");
}

/// Node-to-node services; never exposed to workers.
pub mod peer {
    tonic::include_proto!("larder.peer.v1");
}

/// Foreign wire definitions used only by `larder bench`; never served.
pub mod bench {
    /// etcd v3 `etcdserverpb.KV/Put` (client only), wire-compatible with etcd 3.4.
    pub mod etcd {
        tonic::include_proto!("etcdserverpb");
    }
}

/// Encoded `FileDescriptorSet` of the public `larder.v1` package, for server reflection
/// on the api listener.
pub const V1_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("larder_v1_descriptor");

/// gRPC metadata keys Larder servers set on errors, and clients read.
pub mod metadata {
    /// Api address of the directory leader, on `UNAVAILABLE` redirects.
    pub const LEADER_ENDPOINT: &str = "larder-leader-endpoint";
    /// Node id of the directory leader, on `UNAVAILABLE` redirects.
    pub const LEADER_ID: &str = "larder-leader-id";
    /// Api address of a node that can answer now (for example the origin of a write a
    /// read is waiting for), on `UNAVAILABLE`.
    pub const RETRY_ENDPOINT: &str = "larder-retry-endpoint";
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::bench::etcd::{PutRequest, PutResponse, ResponseHeader};

    /// The bytes etcd expects: field numbers and wire types of etcd's rpc.proto.
    #[test]
    fn etcd_put_messages_match_etcds_field_numbers() {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 7,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        };
        let expected = [
            0x0a, 1, b'k', // 1: key, bytes
            0x12, 1, b'v', // 2: value, bytes
            0x18, 7, // 3: lease, varint
            0x20, 1, // 4: prev_kv
            0x28, 1, // 5: ignore_value
            0x30, 1, // 6: ignore_lease
        ];
        assert_eq!(put.encode_to_vec(), expected);
        // A response as etcd sends it, with a prev_kv (field 2) this slice leaves out.
        let answer = [
            0x0a, 8, // 1: header, 8 bytes
            0x08, 0x11, // cluster_id 17
            0x10, 0x22, // member_id 34
            0x18, 0x05, // revision 5
            0x20, 0x02, // raft_term 2
            0x12, 2, 0x0a, 0, // 2: prev_kv (an empty key)
        ];
        let decoded = PutResponse::decode(&answer[..]).expect("decodes");
        assert_eq!(
            decoded.header,
            Some(ResponseHeader {
                cluster_id: 17,
                member_id: 34,
                revision: 5,
                raft_term: 2,
            })
        );
    }
}
