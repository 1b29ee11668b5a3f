//! The KV nemesis's clients: one seeded choice of calls per process, each call recorded
//! as an invocation and a completion on the harness's one monotonic clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder_checker::{Event, EventKind, NodeId, OpName, Value, Version};
use larder_client::kv::Session;
use larder_proto::v1 as pb;
use larder_proto::v1::kv_client::KvClient;
use tokio::sync::RwLock;
use tonic::transport::Channel;

use super::{CALL_TIMEOUT, COLD_KEYS, EU, HOT_KEYS, NODES, OPEN};

/// SplitMix64: a seeded, reproducible choice of faults and operations.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

/// The history, on the harness's one monotonic clock.
#[derive(Clone)]
pub struct Recorder {
    pub started: Instant,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    pub fn push(&self, mut event: Event) {
        event.time_ns = self.started.elapsed().as_nanos() as u64;
        self.events.lock().expect("history lock").push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("history lock").clone()
    }
}

fn version(v: Option<&pb::Version>) -> Option<Version> {
    v.map(|v| Version(vec![v.physical_ms, u64::from(v.logical), v.origin]))
}

/// One KV call and how it ended.
pub struct Call {
    pub op: OpName,
    pub namespace: &'static str,
    pub key: String,
    pub value: Option<String>,
}

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

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

async fn send(client: &mut KvClient<Channel>, call: &Call, token: Vec<u8>) -> Outcome {
    let namespace = call.namespace.to_string();
    let key = call.key.clone().into_bytes();
    let result = match call.op {
        OpName::Put => client
            .put(timed(pb::PutRequest {
                namespace,
                key,
                value: call.value.clone().unwrap_or_default().into_bytes(),
                ..Default::default()
            }))
            .await
            .map(|r| Outcome::written(r.into_inner())),
        OpName::Delete => client
            .delete(timed(pb::DeleteRequest { namespace, key }))
            .await
            .map(|r| Outcome::written(r.into_inner())),
        _ => client
            .get(timed(pb::GetRequest {
                namespace,
                key,
                consistency_token: token,
            }))
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

/// Records the call's invocation and completion around sending it to `node`.
pub async fn run_call(
    recorder: &Recorder,
    client: &mut KvClient<Channel>,
    process: u64,
    node: u64,
    call: &Call,
    session: &Session,
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
    let outcome = send(client, call, session.token()).await;
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

pub fn channel(api: &str) -> KvClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api}"))
        .expect("endpoint")
        .connect_lazy();
    KvClient::new(channel)
}

/// What the clients share: the history, the pause gate (the nemesis holds it for writing
/// while it measures convergence), every node's api address and the end of the run.
#[derive(Clone)]
pub struct Load {
    pub recorder: Recorder,
    pub gate: Arc<RwLock<()>>,
    pub apis: Vec<String>,
    pub until: Instant,
    pub think: Duration,
}

fn next_call(rng: &mut Rng, process: u64, seq: u64) -> Call {
    let namespace = if rng.below(10) < 7 { OPEN } else { EU };
    let key = if rng.below(2) == 0 {
        format!("h{}", rng.below(HOT_KEYS))
    } else {
        format!("c{:03}", rng.below(COLD_KEYS))
    };
    let (op, value) = match rng.below(20) {
        0..=8 => (OpName::Put, Some(format!("p{process}-{seq}"))),
        9..=11 => (OpName::Delete, None),
        _ => (OpName::Get, None),
    };
    Call {
        op,
        namespace,
        key,
        value,
    }
}

/// One client process: puts, deletes and session reads through random nodes.
pub async fn client_loop(load: Load, process: u64, seed: u64) -> u64 {
    let mut rng = Rng(seed ^ (process + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut clients: Vec<KvClient<Channel>> = load.apis.iter().map(|a| channel(a)).collect();
    let session = Session::new();
    let mut seq = 0;
    loop {
        let running = load.gate.read().await;
        if Instant::now() >= load.until {
            return seq;
        }
        seq += 1;
        let node = 1 + rng.below(NODES);
        let call = next_call(&mut rng, process, seq);
        let client = &mut clients[node as usize - 1];
        let outcome = run_call(&load.recorder, client, process, node, &call, &session).await;
        drop(running);
        // Pacing, not synchronisation: a refused connection answers at once.
        let pause = if outcome.kind == EventKind::Ok {
            load.think
        } else {
            load.think.max(Duration::from_millis(20))
        };
        tokio::time::sleep(pause).await;
    }
}
