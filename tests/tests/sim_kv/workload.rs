//! The clients of the KV simulation: each process puts (some with a TTL), deletes and
//! reads with its session token through a node drawn at random, over the public gRPC API.
//!
//! A put with a TTL writes a value starting with `t`, a plain one a value starting with
//! `p`: the checks tell them apart by that (`checks::expiring_puts_as_deletes`).

use std::time::Duration;

use larder_checker::OpName;
use larder_client::kv::Session;
use larder_proto::v1::kv_client::KvClient;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::cluster::addr;
use super::support::kv_calls::{Call, run_call};
use super::support::objects_workload::Recorder;
use super::support::rng::Rng;
use super::support::sim_net::channel_to;
use super::{CLIENTS, EU, NODES, OPEN};

/// Keys every client writes often (last-writer-wins conflicts), and a wider set written
/// rarely (a lost write stays visible there).
const HOT_KEYS: u64 = 6;
const COLD_KEYS: u64 = 80;
/// One call; a slower one is an unknown write or a failed read.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// A put's time to live, when it has one: short, so that entries expire (and are
/// collected) while the run goes on.
pub const TTL_MS: (u64, u64) = (300, 2000);
/// Pause between two calls of a process (longer after a failed one).
const THINK: Duration = Duration::from_millis(20);

fn next_call(rng: &mut Rng, process: u64, seq: u64) -> Call {
    let namespace = if rng.below(10) < 7 { OPEN } else { EU };
    let key = if rng.below(2) == 0 {
        format!("h{}", rng.below(HOT_KEYS))
    } else {
        format!("c{:03}", rng.below(COLD_KEYS))
    };
    let (op, value, ttl_ms) = match rng.below(20) {
        0..=5 => (OpName::Put, Some(format!("p{process}-{seq}")), 0),
        6..=8 => {
            let ttl = rng.between(TTL_MS);
            (OpName::Put, Some(format!("t{process}-{seq}")), ttl)
        }
        9..=11 => (OpName::Delete, None, 0),
        _ => (OpName::Get, None, 0),
    };
    Call {
        op,
        namespace,
        key,
        value,
        ttl_ms,
    }
}

/// One client process until `until`: calls through random nodes (of those that hold the
/// namespace), each recorded. Returns how many calls it made.
pub async fn client_loop(recorder: Recorder, process: u64, seed: u64, until: Instant) -> u64 {
    let mut rng = Rng::new(seed ^ (process + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut clients: Vec<KvClient<Channel>> = (1..=NODES)
        .map(|id| KvClient::new(channel_to(&addr(id))))
        .collect();
    let session = Session::new();
    let mut seq = 0;
    while Instant::now() < until {
        seq += 1;
        let call = next_call(&mut rng, process, seq);
        let node = 1 + rng.below(NODES);
        let client = &mut clients[node as usize - 1];
        let ids = (process, node);
        let outcome = run_call(&recorder, client, ids, &call, &session, CALL_TIMEOUT).await;
        let pause = if outcome.kind == larder_checker::EventKind::Ok {
            THINK
        } else {
            THINK * 5
        };
        tokio::time::sleep(pause).await;
    }
    seq
}

/// Runs the client processes until `run_for` of simulated time has passed.
pub async fn clients(recorder: Recorder, seed: u64, run_for: Duration) -> turmoil::Result {
    let until = Instant::now() + run_for;
    let processes: Vec<_> = (0..CLIENTS)
        .map(|p| tokio::spawn(client_loop(recorder.clone(), p, seed, until)))
        .collect();
    for process in processes {
        process.await?;
    }
    Ok(())
}
