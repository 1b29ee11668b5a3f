//! The KV nemesis's clients: one seeded choice of calls per process, each call recorded
//! as an invocation and a completion on the harness's one monotonic clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use larder_checker::{EventKind, OpName};
use larder_client::kv::Session;
use larder_proto::v1::kv_client::KvClient;
use tokio::sync::RwLock;
use tonic::transport::Channel;

use super::support::kv_calls::{Call, Outcome};
use super::support::objects_workload::Recorder;
use super::{CALL_TIMEOUT, COLD_KEYS, EU, HOT_KEYS, NODES, OPEN};

/// Records `call` sent to `node` for `process` (see `support::kv_calls::run_call`).
pub async fn run_call(
    recorder: &Recorder,
    client: &mut KvClient<Channel>,
    process: u64,
    node: u64,
    call: &Call,
    session: &Session,
) -> Outcome {
    let ids = (process, node);
    super::support::kv_calls::run_call(recorder, client, ids, call, session, CALL_TIMEOUT).await
}

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
        ttl_ms: 0,
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
