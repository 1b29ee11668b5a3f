//! Rebalancing: after a node joins, `Rebalance` evens out the owners of its region while
//! writes go on, and every acknowledged write is still there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use larder_proto::v1::objects_client::ObjectsClient;
use larder_proto::v1::{ObjectAddRequest, ObjectRef, object_ref};
use tonic::transport::Channel;

use crate::STEP;
use crate::support::{TestCluster, wait_for};

const OBJECTS: usize = 24;

fn counter(i: usize) -> ObjectRef {
    ObjectRef {
        namespace: "carts".into(),
        key: Some(object_ref::Key::Name(format!("cart-{i}"))),
        location_hint: String::new(),
    }
}

/// Adds 1 to counter `i` under `request_id` until a node acknowledges it: a retry of a
/// call that did apply is answered, not applied again.
async fn add_once(client: &mut ObjectsClient<Channel>, i: usize, request_id: String) {
    let request = ObjectAddRequest {
        object: Some(counter(i)),
        key: b"n".to_vec(),
        delta: 1,
        request_id,
    };
    wait_for("an add acknowledged", STEP, || {
        let mut client = client.clone();
        let request = request.clone();
        async move { client.add(request).await.ok() }
    })
    .await
    .expect("the add is acknowledged in the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_after_a_join_evens_owners_out_and_loses_no_write() {
    let mut cluster =
        TestCluster::start_in_regions(3, &[("objects.lease_ms", "300")], &["eu-west"])
            .await
            .expect("cluster");
    cluster.create_namespace("carts").await.expect("namespace");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node(1).api))
            .expect("endpoint")
            .connect_lazy();
    let mut client = ObjectsClient::new(channel);
    for i in 0..OBJECTS {
        add_once(&mut client, i, format!("first-{i}")).await;
    }
    let joiner = cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("the joiner is up");

    // Writes go on through the rebalance, each counted once acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut client) = (stop.clone(), client.clone());
        tokio::spawn(async move {
            let mut added = vec![0u64; OBJECTS];
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let i = n % OBJECTS;
                add_once(&mut client, i, format!("load-{n}")).await;
                added[i] += 1;
                n += 1;
            }
            added
        })
    };
    let admin = cluster.node(2).client();
    let mut owned: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut moved, mut failed) = (0, Vec::new());
    // A move may fail under load (a fence or install timing out); it is abandoned safely
    // and the next call plans again.
    for _ in 0..3 * OBJECTS {
        let round = admin
            .rebalance_objects("eu-west", Some("carts"), 4)
            .await
            .expect("rebalance");
        owned = round.owned.iter().map(|(id, n)| (*id, *n)).collect();
        moved += round.moved.len();
        if round.moved.is_empty() && round.failed.is_empty() {
            break;
        }
        failed.extend(round.failed);
    }
    stop.store(true, Ordering::Relaxed);
    let added = writer.await.expect("writer");

    assert!(moved > 0, "the joiner took objects over");
    assert_eq!(owned.len(), 4, "every up node is counted: {owned:?}");
    let (least, most) = (
        owned.values().min().copied().unwrap_or(0),
        owned.values().max().copied().unwrap_or(0),
    );
    assert!(
        most - least <= 1,
        "owners even: {owned:?} (failed moves: {failed:?})"
    );
    assert!(owned[&joiner] > 0, "the joiner owns objects: {owned:?}");
    // Every acknowledged add is there, once.
    let objects = cluster.node(3).client().objects("carts");
    for (i, added) in added.iter().enumerate() {
        let value = objects
            .by_name(&format!("cart-{i}"))
            .get("n")
            .await
            .expect("read")
            .expect("written");
        assert_eq!(
            String::from_utf8(value).expect("text"),
            (1 + added).to_string(),
            "cart-{i}"
        );
    }
    // A second rebalance finds nothing to do.
    let again = admin
        .rebalance_objects("eu-west", None, 0)
        .await
        .expect("rebalance");
    assert!(again.moved.is_empty(), "nothing more to move: {again:?}");
}
