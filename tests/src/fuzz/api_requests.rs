//! The `api_requests` target's checks, one per service: a request decoded as prost
//! decodes it goes through the services' own pure checks (`larder_kv::validate`,
//! `larder_objects::grpc::requests` then the owner's `execute_request`,
//! `larder_node::grpc::requests`). A refusal must be a client's error with a message;
//! an accepted request must be within the limits it was checked against.
//!
//! Layout: `kv`, `objects` and `admin`, one service each.

mod admin;
mod kv;
mod objects;

pub use admin::admin;
pub use kv::kv;
pub use objects::objects;

use tonic::{Code, Status};

/// Decodes `bytes` as a `$t`, or returns (an input that does not decode checks nothing).
macro_rules! decode_or_return {
    ($t:ty, $bytes:expr) => {
        match <$t as prost::Message>::decode($bytes) {
            Ok(req) => req,
            Err(_) => return,
        }
    };
}
use decode_or_return;

/// Checks a refusal: a client's error (never INTERNAL or UNKNOWN), saying why.
pub(super) fn refused(status: &Status) {
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::ResourceExhausted
                | Code::NotFound
        ),
        "a request was refused with {:?}: {}",
        status.code(),
        status.message()
    );
    assert!(!status.message().is_empty(), "a refusal without a message");
}
