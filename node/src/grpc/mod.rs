//! gRPC edge of the node: services, the pure conversion of admin requests
//! ([`requests`]), the error-to-status mapping, and the answer to oversized requests
//! ([`oversized`]).

pub mod admin_service;
pub mod oversized;
pub mod requests;
pub mod status;
