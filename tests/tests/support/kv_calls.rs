//! KV calls of the fault tests (`kv_nemesis.rs` on real processes, `sim_kv.rs` in the
//! simulation): one put, delete or session read through the public API, recorded as an
//! invocation and a completion for `larder-checker`.

use std::time::Duration;

use larder_checker::{Event, EventKind, NodeId, OpName, Value, Version};
use larder_client::kv::Session;
use larder_proto::v1 as pb;
use larder_proto::v1::kv_client::KvClient;
use tonic::transport::Channel;

use super::objects_workload::Recorder;

/// One KV call.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: OpName,
    pub namespace: &'static str,
    pub key: String,
    pub value: Option<String>,
    /// A put's time to live (0: none).
    pub ttl_ms: u64,
}

/// How a call ended.
pub struct Outcome {
    pub kind: EventKind,
    pub value: Option<String>,
    pub version: Option<Version>,
    pub token: Vec<u8>,
    pub error: Option<String>,
}

impl Outcome {
    fn from_error(status: &tonic::Status, write: bool) -> Outcome {
        // These are refused before anything is queued; any other error of a write may
        // or may not have applied it.
        let definite = matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::NotFound
                | tonic::Code::FailedPrecondition
                | tonic::Code::ResourceExhausted
        );
        Outcome {
            kind: if definite || !write {
                EventKind::Fail
            } else {
                EventKind::Info
            },
            value: None,
            version: None,
            token: Vec::new(),
            error: Some(format!("{:?}: {}", status.code(), status.message())),
        }
    }

    fn written(response: pb::WriteResponse) -> Outcome {
        Outcome {
            kind: EventKind::Ok,
            value: None,
            version: version(response.versions.first()),
            token: response.consistency_token,
            error: None,
        }
    }
}

fn version(v: Option<&pb::Version>) -> Option<Version> {
    v.map(|v| Version(vec![v.physical_ms, u64::from(v.logical), v.origin]))
}

fn timed<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

async fn send(
    client: &mut KvClient<Channel>,
    call: &Call,
    token: Vec<u8>,
    timeout: Duration,
) -> Outcome {
    let namespace = call.namespace.to_string();
    let key = call.key.clone().into_bytes();
    let result = match call.op {
        OpName::Put => client
            .put(timed(
                pb::PutRequest {
                    namespace,
                    key,
                    value: call.value.clone().unwrap_or_default().into_bytes(),
                    ttl_ms: call.ttl_ms,
                    ..Default::default()
                },
                timeout,
            ))
            .await
            .map(|r| Outcome::written(r.into_inner())),
        OpName::Delete => client
            .delete(timed(pb::DeleteRequest { namespace, key }, timeout))
            .await
            .map(|r| Outcome::written(r.into_inner())),
        _ => client
            .get(timed(
                pb::GetRequest {
                    namespace,
                    key,
                    consistency_token: token,
                },
                timeout,
            ))
            .await
            .map(|r| {
                let found = r.into_inner().value;
                Outcome {
                    kind: EventKind::Ok,
                    value: found
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(&v.value).into_owned()),
                    version: version(found.as_ref().and_then(|v| v.version.as_ref())),
                    token: Vec::new(),
                    error: None,
                }
            }),
    };
    result.unwrap_or_else(|status| Outcome::from_error(&status, call.op != OpName::Get))
}

/// Records the call's invocation and completion around sending it to `node` (reads carry
/// the session's token; acknowledged writes add theirs to it). A call slower than
/// `timeout` is an unknown write or a failed read.
pub async fn run_call(
    recorder: &Recorder,
    client: &mut KvClient<Channel>,
    (process, node): (u64, u64),
    call: &Call,
    session: &Session,
    timeout: Duration,
) -> Outcome {
    let mut invoke = Event::new(
        process,
        EventKind::Invoke,
        call.op,
        call.namespace,
        &call.key,
        0,
    );
    invoke.value = call.value.clone().map(Value::Text);
    invoke.node = Some(NodeId(node));
    recorder.push(invoke);
    let outcome = send(client, call, session.token(), timeout).await;
    let mut done = Event::new(process, outcome.kind, call.op, call.namespace, &call.key, 0);
    if outcome.kind == EventKind::Ok {
        done.value = outcome.value.clone().map(Value::Text);
        done.version = outcome.version.clone();
        done.node = Some(NodeId(node));
        session.observe(&outcome.token);
    }
    done.error = outcome.error.clone();
    recorder.push(done);
    outcome
}
