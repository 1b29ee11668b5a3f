//! Namespace deletion on real processes: once acknowledged, the namespace's KV entries
//! and objects are served nowhere, a namespace created again with the same name starts
//! empty, and every node — one that was down at the time too — removes the old data
//! from its disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use larder_client::ClientError;
use larder_directory::Namespace;

mod support;

use support::{TestCluster, TestNode, wait_for};

const STEP: Duration = Duration::from_secs(30);
const NS: &str = "carts";
/// Keys and objects written before the deletion.
const BEFORE: usize = 20;

/// Three nodes in one region, so that every node holds a copy of every object, and
/// the namespace.
async fn cluster_with_namespace() -> TestCluster {
    let cluster = TestCluster::start_in_regions(3, &[], &["eu-west"])
        .await
        .expect("cluster");
    cluster.create_namespace(NS).await.expect("namespace");
    cluster
}

/// Writes `BEFORE` KV keys through node 1 and as many objects (one key each) through
/// node 2, and waits until every node holds them.
async fn fill(cluster: &TestCluster) {
    let kv = cluster.node(1).client().kv(NS);
    for i in 0..BEFORE {
        kv.put(format!("k{i:02}"), "old").send().await.expect("put");
    }
    let objects = cluster.node(2).client().objects(NS);
    for i in 0..BEFORE {
        objects
            .by_name(&format!("cart-{i:02}"))
            .put("item", "old")
            .await
            .expect("object put");
    }
    let last = format!("k{:02}", BEFORE - 1);
    wait_for("the KV and the object copies everywhere", STEP, || async {
        for node in cluster.running() {
            node.client().kv(NS).get(&last).await.ok()??;
        }
        // Each write reaches the owner's two replicas.
        let copied: u64 = cluster.running().map(TestNode::copy_writes).sum();
        (copied >= 2 * BEFORE as u64).then_some(())
    })
    .await
    .expect("replicated");
}

/// What `node` serves of the data written by [`fill`]: KV keys and objects listed,
/// and whether the first object reads its old value. `None` if it does not answer.
async fn old_data_at(node: &TestNode) -> Option<(usize, usize, bool)> {
    let client = node.client();
    let kv = client.kv(NS);
    let keys = match kv.list_page(b"k", b"", 0).await {
        Ok(page) => page.keys.len(),
        Err(ClientError::NotFound(_)) => 0,
        Err(_) => return None,
    };
    let objects = client.objects(NS);
    let listed = match objects.list_objects("cart-", "", "", 100).await {
        Ok((page, _)) => page.len(),
        Err(ClientError::NotFound(_)) => 0,
        Err(_) => return None,
    };
    let value = match objects.by_name("cart-00").get("item").await {
        Ok(value) => value.is_some(),
        Err(ClientError::NotFound(_)) => false,
        Err(_) => return None,
    };
    Some((keys, listed, value))
}

/// Waits until no running node serves any of the old data.
async fn wait_gone_everywhere(cluster: &TestCluster) {
    wait_for("the old data gone everywhere", STEP, || async {
        for node in cluster.running() {
            if old_data_at(node).await? != (0, 0, false) {
                return None;
            }
        }
        Some(())
    })
    .await
    .expect("gone");
}

/// What the stopped `node`'s store holds of the namespace incarnation `old`: (KV
/// entries, KV progress, object copies).
fn disk_holds(node: &TestNode, old: &Namespace) -> (bool, bool, bool) {
    let store = larder_store::Store::open(node.data_dir.join("store")).expect("store");
    let keyspace = larder_kv::keyspace::Keyspace::open(store.clone()).expect("keyspace");
    let kv_rows = keyspace.stored_namespaces().expect("kv").contains(old);
    let progress = keyspace.load_vector().expect("vector").0.contains_key(old);
    let copies = larder_objects::ObjectStore::open(store).expect("copies");
    let objects = copies.stored_namespaces().expect("objects").contains(old);
    (kv_rows, progress, objects)
}

/// Waits until `node` logged that the old namespace's KV entries and object copies are
/// all gone (the sweeps' own records: each says so once a pass finds none left).
async fn wait_swept(node: &TestNode) {
    wait_for(&format!("node {} to sweep", node.id), STEP, || async {
        let log = node.log_tail();
        (log.contains("a deleted namespace's entries are all dropped")
            && log.contains("a deleted namespace's copies are all removed"))
        .then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}; node {} logged:\n{}", node.id, node.log_tail()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_under_load_and_created_again_at_once_is_empty_everywhere() {
    let mut cluster = cluster_with_namespace().await;
    fill(&cluster).await;
    let old = cluster.stored_as(NS).await.expect("incarnation");

    // Writes keep coming through node 3 (other keys and objects) all along.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let client = cluster.node(3).client();
        let (stop, written) = (stop.clone(), written.clone());
        async move {
            for i in 0..100_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let kv = client.kv(NS).put(format!("load-{i}"), "x").send().await;
                let object = client.objects(NS).by_name("load").add("n", 1).await;
                if kv.is_ok() || object.is_ok() {
                    written.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    wait_for("load running", STEP, || async {
        (written.load(Ordering::Relaxed) > 5).then_some(())
    })
    .await
    .expect("load");

    // A subscription to one of its objects, relayed by another node than the owner's.
    let mut events = Box::pin(
        cluster
            .node(3)
            .client()
            .objects(NS)
            .by_name("cart-01")
            .subscribe(Some(0))
            .await
            .expect("subscribe"),
    );

    let admin = cluster.node(1).client();
    admin.delete_namespace(NS).await.expect("delete");
    // The subscription ends, saying the namespace is gone.
    let ended = tokio::time::timeout(STEP, async {
        loop {
            match events.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the subscription ends");
    assert!(
        matches!(ended, Some(Err(ClientError::NotFound(_)))),
        "{ended:?}"
    );
    // The answering node serves neither the KV nor the objects once it answered.
    let kv = admin.kv(NS).get("k00").await;
    assert!(matches!(kv, Err(ClientError::NotFound(_))), "{kv:?}");
    let object = admin.objects(NS).by_name("cart-00").get("item").await;
    assert!(
        matches!(object, Err(ClientError::NotFound(_))),
        "{object:?}"
    );

    let created = admin
        .create_namespace(NS, Vec::new(), None)
        .await
        .expect("create again");
    assert!(created.generation > old.generation(), "{created:?}");
    assert_eq!(old_data_at(cluster.node(1)).await, Some((0, 0, false)));
    wait_gone_everywhere(&cluster).await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load");

    // Nothing written before the deletion is back, and the new namespace works.
    cluster
        .node(2)
        .client()
        .kv(NS)
        .put("k00", "new")
        .send()
        .await
        .expect("put again");
    assert_eq!(old_data_at(cluster.node(2)).await, Some((1, 0, false)));

    for id in 1..=3 {
        wait_swept(cluster.node(id)).await;
        let node = cluster.node_mut(id);
        assert!(
            node.terminate(STEP).await.expect("stop"),
            "node {id} stopped"
        );
        assert_eq!(
            disk_holds(node, &old),
            (false, false, false),
            "node {id} kept the deleted namespace (KV entries, KV progress, objects)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_during_a_deletion_drops_the_namespace_when_it_returns() {
    let mut cluster = cluster_with_namespace().await;
    fill(&cluster).await;
    let old = cluster.stored_as(NS).await.expect("incarnation");

    cluster.node_mut(3).kill();
    assert_eq!(disk_holds(cluster.node(3), &old), (true, true, true));
    let admin = cluster.node(1).client();
    admin.delete_namespace(NS).await.expect("delete");
    admin
        .create_namespace(NS, Vec::new(), None)
        .await
        .expect("create again");

    cluster.node_mut(3).start().expect("restart");
    wait_gone_everywhere(&cluster).await;
    wait_swept(cluster.node(3)).await;
    let node = cluster.node_mut(3);
    assert!(node.terminate(STEP).await.expect("stop"), "node 3 stopped");
    assert_eq!(
        disk_holds(node, &old),
        (false, false, false),
        "node 3 kept the deleted namespace (KV entries, KV progress, objects)"
    );
}
