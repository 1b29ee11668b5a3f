//! The KV peer protocol (push and anti-entropy): its wire version.

use larder_base::WireProtocol;

/// A node refuses KV envelopes of another version.
pub const KV_WIRE: WireProtocol = WireProtocol {
    name: "KV",
    version: 1,
};
