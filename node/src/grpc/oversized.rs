//! Requests over the api message limit. tonic refuses them while decoding, before any
//! handler runs, with `OUT_OF_RANGE` ("Error, decoded message length too large…");
//! gRPC's convention for a size limit, and every other limit of Larder's, is
//! `RESOURCE_EXHAUSTED`, and the message should name the setting. This layer rewrites
//! that one answer on its way out.

use tonic::body::Body;
use tonic::{Code, Status};
use tower::util::MapResponseLayer;

/// How tonic's message for a too-large request starts.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: ";

type Remap = fn(http::Response<Body>) -> http::Response<Body>;

/// The layer for the api listener.
pub fn layer() -> MapResponseLayer<Remap> {
    MapResponseLayer::new(remap as Remap)
}

fn remap(response: http::Response<Body>) -> http::Response<Body> {
    match response.extensions().get::<Status>() {
        Some(status) if status.code() == Code::OutOfRange => match oversized(status.message()) {
            Some(status) => status.into_http(),
            None => response,
        },
        _ => response,
    }
}

/// The status for tonic's too-large `message`, if it is that one.
fn oversized(message: &str) -> Option<Status> {
    let sizes = message.strip_prefix(TONIC_TOO_LARGE)?;
    Some(Status::resource_exhausted(format!(
        "request too large ({sizes}): the limit is the node's limits.api_message_bytes_max; \
         send less per call (smaller batches, values or pages)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_too_large_answer_is_rewritten() {
        let tonic_said = format!("{TONIC_TOO_LARGE}found 40 bytes, the limit is: 32 bytes");
        let status = oversized(&tonic_said).expect("rewritten");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("found 40 bytes"), "{status:?}");
        assert!(status.message().contains("limits.api_message_bytes_max"));
        assert!(oversized("cursor out of range").is_none());
        let other = Status::out_of_range("cursor out of range").into_http::<Body>();
        let kept = remap(other);
        assert_eq!(
            kept.extensions().get::<Status>().map(Status::message),
            Some("cursor out of range")
        );
    }
}
