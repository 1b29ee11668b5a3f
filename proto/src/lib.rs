//! Larder's wire definitions: the public `larder.v1` package (api listener) and the
//! internal `larder.peer.v1` package (peer listener). Generated code only, no logic.

/// Public services for workers and operators.
pub mod v1 {
    tonic::include_proto!("larder.v1");
}

/// Node-to-node services; never exposed to workers.
pub mod peer {
    tonic::include_proto!("larder.peer.v1");
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
