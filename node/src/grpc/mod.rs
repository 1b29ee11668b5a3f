//! gRPC edge of the node: services and the error-to-status mapping.

pub mod admin_service;
pub mod status;
