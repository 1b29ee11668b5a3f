//! gRPC edge of the node: services, the pure conversion of admin requests
//! ([`requests`]) and the error-to-status mapping.

pub mod admin_service;
pub mod requests;
pub mod status;
