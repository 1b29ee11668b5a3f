//! Read-your-writes sessions and watches, across nodes.

use std::time::Duration;

use futures::StreamExt;
use larder_client::ClientError;
use larder_client::kv::Session;

use crate::{STEP, cluster_with_namespace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_with_a_session_see_the_sessions_writes_at_any_node() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let session = Session::new();
    for i in 0..20 {
        let writer = cluster
            .node(1 + i % 3)
            .client()
            .kv("ns")
            .with_session(&session);
        writer
            .put("cart", format!("v{i}"))
            .send()
            .await
            .expect("put");
        let reader = cluster
            .node(1 + (i + 1) % 3)
            .client()
            .kv("ns")
            .with_session(&session);
        assert_eq!(
            reader.get("cart").await.expect("get"),
            Some(format!("v{i}").into_bytes())
        );
    }
    // A token naming a write that never happens: bounded wait, then UNAVAILABLE naming
    // the origin to retry at.
    let stored_as = cluster.stored_as("ns").await.expect("namespace");
    let future = larder_client::kv::test_token(stored_as.as_str(), 1, 1_000_000);
    let impatient = larder_client::Client::new(
        &cluster.node(2).api,
        larder_client::ClientConfig {
            attempts_max: 1,
            ..Default::default()
        },
    )
    .expect("client");
    let started = std::time::Instant::now();
    match impatient
        .kv("ns")
        .with_session(&{
            let s = Session::new();
            s.observe(&future);
            s
        })
        .get("cart")
        .await
    {
        Err(ClientError::Unavailable { retry_at, .. }) => {
            assert_eq!(retry_at.as_deref(), Some(cluster.node(1).api.as_str()))
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_at_another_node_misses_nothing() {
    let cluster = cluster_with_namespace(3, "ns").await;
    let writer = cluster.node(2).client().kv("ns");
    let mut events = Box::pin(
        cluster
            .node(1)
            .client()
            .kv("ns")
            .watch(b"w/".to_vec(), Vec::new())
            .await
            .expect("watch"),
    );
    writer
        .put("other/x", "not watched")
        .send()
        .await
        .expect("put");
    for i in 0..5 {
        writer
            .put(format!("w/{i}"), format!("{i}"))
            .send()
            .await
            .expect("put");
    }
    let mut seen = Vec::new();
    let mut token = Vec::new();
    while seen.len() < 5 {
        let event = tokio::time::timeout(STEP, events.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        assert!(event.key.starts_with(b"w/"));
        seen.push(String::from_utf8(event.key).expect("utf8"));
        token = event.resume_token;
    }
    assert_eq!(seen, vec!["w/0", "w/1", "w/2", "w/3", "w/4"]);
    drop(events);

    // While nobody watches: more changes, including a delete.
    for i in 5..10 {
        writer
            .put(format!("w/{i}"), format!("{i}"))
            .send()
            .await
            .expect("put");
    }
    writer.delete("w/0").await.expect("delete");
    let mut resumed = Box::pin(
        cluster
            .node(3)
            .client()
            .kv("ns")
            .watch(b"w/".to_vec(), token)
            .await
            .expect("resume"),
    );
    let mut missing: std::collections::BTreeSet<String> =
        (5..10).map(|i| format!("w/{i}")).collect();
    let mut saw_delete = false;
    while !missing.is_empty() || !saw_delete {
        let event = tokio::time::timeout(STEP, resumed.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        let key = String::from_utf8(event.key).expect("utf8");
        if event.deleted && key == "w/0" {
            saw_delete = true;
        }
        missing.remove(&key);
    }
}
