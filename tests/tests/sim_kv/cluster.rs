//! The simulated KV nodes: the real KV (writer, push replication with relays,
//! anti-entropy, collection) with its api and peer gRPC services, on a turmoil host, a
//! [`MemoryDisk`] and a wall clock made of simulated time plus the host's skew.
//!
//! The cluster view is fixed (every node up, both namespaces created): the KV follows
//! the directory's view in production, and the directory is what `sim.rs` simulates.
//! A node that is down is pushed to and synced with in vain until it is back, as when
//! the directory has not yet marked it down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_base::Clock;
use larder_kv::grpc::kv_service::KvService;
use larder_kv::grpc::peer_service::KvPeerService;
use larder_kv::{ClusterView, Kv, KvConfig, KvEnv, NamespaceInfo, NodeId, PeerInfo};
use larder_proto::v1::kv_server::KvServer;
use larder_store::{MemoryDisk, Store};
use tokio::sync::watch;

use super::support::sim_faults::host;
use super::support::sim_net;
use super::{EU, NODES, OPEN, allowed};

pub const PORT: u16 = 7000;
/// Simulated wall time starts here (2023-11-14), whatever the real date.
pub const EPOCH_SECS: u64 = 1_700_000_000;

pub fn addr(id: u64) -> String {
    format!("{}:{PORT}", host(id))
}

/// Odd nodes in `eu-west`, even ones in `us-east`: pushes to the other region go
/// through a relay there.
pub fn region(id: u64) -> &'static str {
    if id % 2 == 1 { "eu-west" } else { "us-east" }
}

/// How far each host's wall clock is off simulated time (ms); the harness moves them.
#[derive(Debug, Clone, Default)]
pub struct Skews(Arc<Mutex<BTreeMap<u64, i64>>>);

impl Skews {
    pub fn get(&self, id: u64) -> i64 {
        self.lock().get(&id).copied().unwrap_or(0)
    }

    pub fn set(&self, id: u64, offset_ms: i64) {
        self.lock().insert(id, offset_ms);
    }

    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Node `id`'s wall clock when simulated time is `since_epoch`.
    pub fn wall_ms(&self, id: u64, since_epoch: Duration) -> u64 {
        (since_epoch.as_millis() as i64 + self.get(id)).max(0) as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, i64>> {
        self.0.lock().expect("skews: no code panics under the lock")
    }
}

/// A host's wall clock: simulated time since the epoch plus the host's skew.
#[derive(Debug)]
struct SimClock {
    id: u64,
    skews: Skews,
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let since_epoch =
            turmoil::since_epoch().expect("the KV reads its clock on its simulated host");
        self.skews.wall_ms(self.id, since_epoch)
    }
}

/// Settings for a small simulated cluster: quick anti-entropy and collection, no
/// tombstone collected during a run (the final dumps compare tombstones), and pages and
/// push batches small enough that a run's few thousand writes take many of them.
pub fn kv_config() -> KvConfig {
    KvConfig {
        sync_page_writes_max: 16,
        push_batch_writes_max: 32,
        anti_entropy_interval_ms: 300,
        collect_interval_ms: 1000,
        tombstone_grace_ms: 3_600_000,
        read_your_writes_wait_ms: 1000,
        peer_rpc_timeout_ms: 1000,
        ..KvConfig::default()
    }
}

fn view(me: u64) -> ClusterView {
    let nodes = (1..=NODES)
        .map(|id| {
            let peer = PeerInfo {
                region: region(id).into(),
                api_addr: addr(id),
                peer_addr: addr(id),
                up: true,
            };
            (NodeId(id), peer)
        })
        .collect();
    let namespace = |name: &str| NamespaceInfo {
        allowed: (1..=NODES)
            .filter(|id| allowed(name, *id))
            .map(NodeId)
            .collect(),
        policy: format!("{name} residency"),
    };
    let namespaces = [OPEN, EU].map(|ns| (ns.into(), namespace(ns))).into();
    ClusterView::new(NodeId(me), nodes, namespaces)
}

/// One node's software, as `larder serve` starts the KV: runs until its host crashes.
pub async fn node(id: u64, disk: MemoryDisk, skews: Skews, seed: u64) -> turmoil::Result {
    let store = Store::open_memory(&disk)?;
    let (_view_tx, view) = watch::channel(Arc::new(view(id)));
    let channels = sim_net::peer_channels();
    let factory = channels.factory();
    let env = KvEnv {
        clock: Arc::new(SimClock { id, skews }),
        rng_seed: Some(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
    };
    // Held for as long as the software runs: the background tasks end when it drops.
    let (_stop_tx, stop) = watch::channel(false);
    let (kv, _tasks) = Kv::start(store, kv_config(), env, view, factory, stop)?;
    tonic::transport::Server::builder()
        .add_service(KvPeerService::server(kv.clone()))
        .add_service(KvServer::new(KvService::new(kv)))
        .serve_with_incoming(sim_net::incoming(PORT).await?)
        .await?;
    Ok(())
}
