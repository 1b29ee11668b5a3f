//! What every Larder server crate shares, so that kv, directory and objects speak of the
//! same things in the same types without depending on each other.
//!
//! Layout:
//! - [`ids`]: `NodeId`, `Namespace`, `RegionId`, `Jurisdiction`, `Epoch` and the rules for
//!   namespace names and labels;
//! - [`clock`]: the `Clock` the server reads wall time from (the system's, or a
//!   simulated one in the simulation tier);
//! - [`channels`]: the factory kv and objects get their peer channels from;
//! - [`envelope`]: peer payloads sealed in `larder.peer.v1.Envelope` with a wire version
//!   per protocol (KV, directory, objects), refused with a typed error when it differs.

pub mod channels;
pub mod clock;
pub mod envelope;
pub mod ids;

pub use channels::{ChannelFactory, DialError};
pub use clock::{Clock, SharedClock, SystemClock};
pub use envelope::{EnvelopeError, WireProtocol};
pub use ids::{
    Epoch, Jurisdiction, NAMESPACE_NAME_BYTES_MAX, Namespace, NodeId, RegionId, check_label,
    check_namespace_name,
};
