//! Writes reaching every node: propagation and joiners, conflicting writes, deletes,
//! expiry.

use std::time::Duration;

use larder_client::kv::{PutItem, Session};

use crate::{STEP, cluster_with_namespace, contents, wait_identical, wait_value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_one_node_becomes_visible_at_all_others() {
    let mut cluster = cluster_with_namespace(3, "ns").await;
    // Data written before a node exists reaches it when it joins (a full copy).
    let early = (0..50)
        .map(|i| PutItem {
            key: format!("early{i:02}").into_bytes(),
            value: b"e".to_vec(),
            ..Default::default()
        })
        .collect();
    cluster
        .node(3)
        .client()
        .kv("ns")
        .put_many(early)
        .await
        .expect("put_many");
    cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("healthy");
    wait_identical(&cluster, "ns", 50).await;

    let kv = cluster.node(2).client().kv("ns");
    kv.put("greeting", "hello")
        .metadata(r#"{"lang":"en"}"#)
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "ns", "greeting", Some(b"hello")).await;
    let joiner = cluster.nodes.last().expect("joiner").client().kv("ns");
    let value = joiner
        .get_with_metadata("greeting")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(value.metadata, br#"{"lang":"en"}"#.to_vec());

    // A burst from two nodes converges to identical contents.
    let items = |from: usize| {
        (from..from + 100)
            .map(|i| PutItem {
                key: format!("k{i:04}").into_bytes(),
                value: vec![b'x'; 64],
                ..Default::default()
            })
            .collect()
    };
    cluster
        .node(1)
        .client()
        .kv("ns")
        .put_many(items(0))
        .await
        .expect("put_many");
    cluster
        .node(3)
        .client()
        .kv("ns")
        .put_many(items(100))
        .await
        .expect("put_many");
    wait_identical(&cluster, "ns", 251).await;

    // Replication health: node 1 reports how far behind each origin it is (caught up).
    let status = cluster
        .node(1)
        .client()
        .status(false)
        .await
        .expect("status");
    let lag: Vec<(u64, u64)> = status
        .kv_replication
        .iter()
        .map(|l| (l.origin_node_id, l.writes_behind))
        .collect();
    assert!(lag.contains(&(2, 0)) && lag.contains(&(3, 0)), "{lag:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_writes_converge_everywhere() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let mut writers = Vec::new();
    for node in cluster.running() {
        let kv = node.client().kv("ns");
        let id = node.id;
        writers.push(tokio::spawn(async move {
            for round in 0..30 {
                kv.put("contested", format!("node{id}-round{round}"))
                    .send()
                    .await
                    .expect("put");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    wait_identical(&cluster, "ns", 1).await;
    let winner = cluster
        .node(1)
        .client()
        .kv("ns")
        .get("contested")
        .await
        .expect("get")
        .expect("found");
    wait_value(&cluster, "ns", "contested", Some(&winner)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_beats_an_older_put_and_the_key_never_comes_back() {
    let cluster = cluster_with_namespace(3, "ns").await;
    cluster
        .node(1)
        .client()
        .kv("ns")
        .put("k", "v1")
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "ns", "k", Some(b"v1")).await;

    // Node 3 misses the delete while frozen, still holding the old put.
    cluster.node(3).pause().expect("pause");
    cluster
        .node(2)
        .client()
        .kv("ns")
        .delete("k")
        .await
        .expect("delete");
    cluster.node(3).resume().expect("resume");
    wait_value(&cluster, "ns", "k", None).await;

    // Several anti-entropy rounds later (300 ms each) nothing resurrects it: every node
    // has caught up with node 2's delete and still reads it as absent.
    let token = cluster
        .node(2)
        .client()
        .kv("ns")
        .delete("other")
        .await
        .expect("delete")
        .consistency_token;
    let session = Session::new();
    session.observe(&token);
    for node in cluster.running() {
        let kv = node.client().kv("ns").with_session(&session);
        assert_eq!(kv.get("k").await.expect("get"), None, "node {}", node.id);
    }
    assert!(
        contents(cluster.node(3), "ns")
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_read_as_absent_everywhere() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let kv = cluster.node(1).client().kv("ns");
    kv.put("short", "lived")
        .ttl(Duration::from_millis(1500))
        .send()
        .await
        .expect("put");
    kv.put("long", "lived")
        .ttl(Duration::from_secs(3600))
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "ns", "short", Some(b"lived")).await;
    wait_value(&cluster, "ns", "short", None).await;
    wait_value(&cluster, "ns", "long", Some(b"lived")).await;
    let listed = contents(cluster.node(2), "ns").await.expect("list");
    assert_eq!(listed.len(), 1, "expired keys are not listed");
}
