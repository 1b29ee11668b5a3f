//! Objects on real processes: single-writer counters through several nodes, racing first
//! access, transactions, limits, durability across an owner restart, failover, moves and
//! drains, alarms and subscriptions, the CLI.
//!
//! Layout: `calls` (storage calls and transactions), `durability` (restarts, replication
//! streams), `failover`, `moves` (moves, drains, replica sets, jurisdictions),
//! `rebalance` (evening out owners after a join, under writes), `events`
//! (alarms and subscriptions), `reads` (reads of objects never written), `cli`.

#[path = "../support/mod.rs"]
mod support;

mod calls;
mod cli;
mod durability;
mod events;
mod failover;
mod moves;
mod reads;
mod rebalance;

use std::time::Duration;

use support::{TestCluster, TestNode};

const STEP: Duration = Duration::from_secs(30);

async fn cluster_with_namespace(voters: usize) -> TestCluster {
    let cluster = TestCluster::start(voters).await.expect("cluster");
    cluster.create_namespace("rooms").await.expect("namespace");
    cluster
}

/// Whether the store of `node` (stopped) holds a copy of object `id` of the namespace
/// incarnation `namespace` (see `TestCluster::stored_as`).
fn holds_copy(node: &TestNode, namespace: &larder_directory::Namespace, id: &str) -> bool {
    let store = larder_store::Store::open(node.data_dir.join("store")).expect("store");
    let copies = larder_objects::ObjectStore::open(store).expect("copies");
    let key = larder_directory::ObjectKey {
        namespace: namespace.clone(),
        id: id.into(),
    };
    copies.holds(&key).expect("read")
}
