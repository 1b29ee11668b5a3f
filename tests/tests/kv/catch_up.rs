//! Nodes that were away catching up: after a restart, after a cut, after longer than
//! the tombstone grace (a full re-sync).

use larder_client::kv::PutItem;

use crate::support::{TestCluster, wait_for};
use crate::{STEP, cluster_with_namespace, wait_identical, wait_value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_during_a_write_load_catches_up_after_restart() {
    let mut cluster = cluster_with_namespace(3, "ns").await;
    cluster.node_mut(3).kill();
    for batch in 0..5 {
        let items = (0..60)
            .map(|i| PutItem {
                key: format!("b{batch}-{i:03}").into_bytes(),
                value: format!("{batch}:{i}").into_bytes(),
                ..Default::default()
            })
            .collect();
        let node = if batch % 2 == 0 { 1 } else { 2 };
        cluster
            .node(node)
            .client()
            .kv("ns")
            .put_many(items)
            .await
            .expect("put_many");
    }
    cluster.node_mut(3).start().expect("restart");
    wait_identical(&cluster, "ns", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_its_peers_catches_up_after_the_cut_heals() {
    let cluster = cluster_with_namespace(3, "ns").await;
    cluster.node(3).pause().expect("cut off");
    for i in 0..100 {
        let node = 1 + (i % 2) as u64;
        cluster
            .node(node)
            .client()
            .kv("ns")
            .put(format!("c{i:03}"), "v")
            .send()
            .await
            .expect("put");
    }
    cluster
        .node(1)
        .client()
        .kv("ns")
        .delete("c000")
        .await
        .expect("delete");
    cluster.node(3).resume().expect("heal");
    wait_identical(&cluster, "ns", 99).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_longer_than_the_tombstone_grace_resyncs_fully() {
    // Tombstones live 2 s here; node 3 is away for longer than that.
    let settings = [("kv.tombstone_grace_ms", "2000")];
    let mut cluster = TestCluster::start_with(3, &settings)
        .await
        .expect("cluster");
    cluster
        .node(1)
        .client()
        .create_namespace("ns", vec![], None)
        .await
        .expect("create");
    wait_for("namespace at node 3", STEP, || async {
        cluster
            .node(3)
            .client()
            .list_namespaces()
            .await
            .ok()?
            .iter()
            .find(|n| n.name == "ns")
            .map(|_| ())
    })
    .await
    .expect("namespace");
    let kv = cluster.node(1).client().kv("ns");
    kv.put("doomed", "v").send().await.expect("put");
    kv.put("kept", "v").send().await.expect("put");
    wait_value(&cluster, "ns", "doomed", Some(b"v")).await;
    wait_value(&cluster, "ns", "kept", Some(b"v")).await;

    cluster.node_mut(3).kill();
    // Delete only once node 3 is recorded down, so no push of the delete is queued for it.
    wait_for("node 3 recorded down", STEP, || async {
        let status = cluster.node(1).status().await?;
        let node = status.nodes.iter().find(|n| n.id == 3)?;
        (node.status == larder_client::admin::NodeStatus::Down as i32).then_some(())
    })
    .await
    .expect("node 3 down");
    kv.delete("doomed").await.expect("delete");
    // Nodes 1 and 2 collect the tombstone once it is older than the grace period: after
    // that the delete exists nowhere but in node 3's absence of it.
    wait_for("the tombstone collected on nodes 1 and 2", STEP, || async {
        let collected = |id| {
            cluster
                .node(id)
                .metric("kv_tombstones_collected")
                .unwrap_or(0)
        };
        (collected(1) >= 1 && collected(2) >= 1).then_some(())
    })
    .await
    .expect("tombstone collected");

    cluster.node_mut(3).start().expect("restart");
    wait_value(&cluster, "ns", "doomed", None).await;
    wait_identical(&cluster, "ns", 1).await;
    // It was the full re-sync (the tombstone no longer existed anywhere) that removed it.
    let log = std::fs::read_to_string(cluster.node(3).data_dir.join("node.2.log")).expect("log");
    assert!(
        log.contains("full re-sync dropped entries"),
        "{}",
        cluster.node(3).log_tail()
    );
}
