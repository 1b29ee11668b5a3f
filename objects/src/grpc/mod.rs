//! The objects' gRPC edge: `larder.v1.Objects` (api), `larder.peer.v1.ObjectPeer` (peer),
//! the pure conversion of api requests to calls ([`requests`]) and the one mapping of
//! [`crate::ObjectError`] to statuses.

pub mod objects_service;
pub mod peer_service;
pub mod requests;
pub mod status;
