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
