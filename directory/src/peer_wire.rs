//! The directory's peer protocol (Raft and forwarded requests): its wire version.

use larder_base::WireProtocol;

/// A node refuses directory envelopes of another version.
pub const DIRECTORY_WIRE: WireProtocol = WireProtocol {
    name: "directory",
    version: 1,
};
