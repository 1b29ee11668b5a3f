//! An owner lost: failover without losing acknowledged writes, fencing of the old owner,
//! an abandoned hand-over.

use std::time::Duration;

use crate::support::wait_for;
use crate::{STEP, cluster_with_namespace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_fails_over_without_losing_acknowledged_writes() {
    // Nodes 1, 3 and 5 are in eu-west: an object first used at node 1 is owned by node 1
    // with replicas 3 and 5.
    let mut cluster = cluster_with_namespace(5).await;
    let room = cluster
        .node(1)
        .client()
        .objects("rooms")
        .by_name("failover-room");
    room.put("first", "x").await.expect("put");
    let before = room.inspect().await.expect("inspect");
    assert_eq!(
        (before.owner, before.epoch, before.region.as_str()),
        (1, 1, "eu-west")
    );
    assert_eq!(before.replicas, vec![1, 3, 5]);
    room.delete(&["first"]).await.expect("delete");
    for i in 0..30 {
        room.put(format!("msg{i:02}"), format!("{i}"))
            .await
            .expect("put");
        room.add("count", 1).await.expect("add");
    }

    cluster.node_mut(1).kill();
    let killed = std::time::Instant::now();
    // Through a node of the other region (forwarded to whoever owns it now).
    let via = cluster
        .node(2)
        .client()
        .objects("rooms")
        .by_name("failover-room");
    let value = wait_for("the object serving again", STEP, || async {
        via.add("count", 1).await.ok()
    })
    .await
    .unwrap_or_else(|err| panic!("{err}\n{}", cluster.logs()));
    let took = killed.elapsed();
    assert_eq!(
        value, 31,
        "every acknowledged increment survived, exactly once"
    );
    let (entries, _) = via.list(b"msg", false, 0).await.expect("list");
    assert_eq!(entries.len(), 30, "every acknowledged put survived");
    // Detection (1.5 s here) + election if the leader died + fencing + the new owner's lease.
    assert!(took < Duration::from_secs(15), "failover took {took:?}");
    let after = via.inspect().await.expect("inspect");
    assert_ne!(after.owner, 1);
    assert_eq!((after.epoch, after.keys), (2, 31));
    assert!(
        after.replicas.len() == 2 && !after.replicas.contains(&1),
        "{:?}",
        after.replicas
    );
    let (listed, more) = cluster
        .node(4)
        .client()
        .objects("rooms")
        .list_objects("", "", "", 0)
        .await
        .expect("list objects");
    assert!(more.is_none());
    assert_eq!(
        listed
            .iter()
            .map(|o| (o.id.as_str(), o.owner))
            .collect::<Vec<_>>(),
        vec![("failover-room", after.owner)]
    );
}

/// A client with the default retry policy rides out a failover: one call, made right
/// after the owner died, is answered once the object serves again. Without retries the
/// answer names the object and its dead owner and sends nobody to that owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_default_policy_rides_out_a_failover() {
    // Nodes 1, 3 and 5 are in eu-west: an object first used at node 1 is owned by it.
    let mut cluster = cluster_with_namespace(5).await;
    let room = cluster.node(1).client().objects("rooms").by_name("ride");
    room.add("n", 1).await.expect("add");
    assert_eq!(room.inspect().await.expect("inspect").owner, 1);
    let dead_owner = cluster.node(1).api.clone();
    cluster.node_mut(1).kill();

    let impatient = cluster.node(2).client().objects("rooms").by_name("ride");
    match impatient.add("n", 1).await {
        Err(larder_client::ClientError::Unavailable { message, retry_at }) => {
            assert!(
                message.contains("rooms/ride") && message.contains("node 1"),
                "{message}"
            );
            assert_ne!(retry_at.as_deref(), Some(dead_owner.as_str()), "{message}");
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    let patient = larder_client::Client::connect_lazy(&cluster.node(2).api)
        .expect("client")
        .objects("rooms")
        .by_name("ride");
    let value = patient
        .add("n", 1)
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", cluster.logs()));
    // The impatient add may or may not have applied before the owner died; the
    // patient one applied exactly once.
    assert!((2..=3).contains(&value), "{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cut_off_from_the_rest_gets_no_write_acknowledged_after_failover() {
    let cluster = cluster_with_namespace(5).await;
    let at_old_owner = cluster.node(1).client().objects("rooms").by_name("fenced");
    let mut acknowledged = 0i64;
    for _ in 0..10 {
        at_old_owner.add("n", 1).await.expect("add");
        acknowledged += 1;
    }
    // Freeze the owner: the others see it down and move the object.
    cluster.node(1).pause().expect("pause");
    let elsewhere = cluster.node(3).client().objects("rooms").by_name("fenced");
    wait_for("the object serving elsewhere", STEP, || async {
        elsewhere.add("n", 1).await.ok()
    })
    .await
    .expect("failed over");
    acknowledged += 1;
    // The old owner wakes up still believing it owns the object. Calls sent to it are
    // either refused or served by the new owner — never acknowledged by the old one alone.
    cluster.node(1).resume().expect("resume");
    let impatient = larder_client::Client::new(
        &cluster.node(1).api,
        larder_client::ClientConfig {
            attempts_max: 1,
            ..Default::default()
        },
    )
    .expect("client")
    .objects("rooms")
    .by_name("fenced");
    let mut unknown = 0i64;
    for _ in 0..20 {
        match impatient.add("n", 1).await {
            Ok(_) => acknowledged += 1,
            // Refused, or an outcome the client cannot know (it may have applied).
            Err(_) => unknown += 1,
        }
    }
    let value = wait_for("a read at the new owner", STEP, || async {
        elsewhere.get("n").await.ok().flatten()
    })
    .await
    .expect("read");
    let value: i64 = String::from_utf8(value)
        .expect("utf8")
        .parse()
        .expect("integer");
    // Every acknowledged increment counts; nothing beyond the calls that were made does.
    assert!(
        (acknowledged..=acknowledged + unknown).contains(&value),
        "value {value}, acknowledged {acknowledged}, unknown {unknown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_hand_over_does_not_leave_the_object_stuck() {
    use larder_objects::peer_messages::{self, FenceRequest};
    use larder_proto::peer::object_peer_client::ObjectPeerClient;
    // Nodes 1 and 3 are in eu-west: an object first used at node 1 has replicas 1 and 3.
    let cluster = cluster_with_namespace(3).await;
    let counter = cluster
        .node(1)
        .client()
        .objects("rooms")
        .by_name("half-moved");
    assert_eq!(counter.add("n", 1).await.expect("add"), 1);
    let info = counter.inspect().await.expect("inspect");
    assert_eq!(
        (info.owner, info.epoch, info.replicas.clone()),
        (1, 1, vec![1, 3])
    );

    // A failover or move fenced node 3's copy at epoch 2, then gave up before
    // reassigning (what a coordinator that lost its majority leaves behind).
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node(3).peer))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
    let key = larder_directory::ObjectKey {
        namespace: cluster.stored_as("rooms").await.expect("namespace"),
        id: "half-moved".into(),
    };
    let epoch = larder_directory::Epoch(2);
    let fence = peer_messages::OBJECTS_WIRE
        .seal(&FenceRequest { key, epoch })
        .expect("seal");
    ObjectPeerClient::new(channel)
        .fence(fence)
        .await
        .expect("fence");

    // The owner is refused by its replica, reclaims the epoch through the directory, and
    // serves again; the client's retries carry one request id, so the increment that was
    // refused (its outcome unknown to the client) applies exactly once.
    let patient = larder_client::Client::new(
        &cluster.node(1).api,
        larder_client::ClientConfig {
            attempts_max: 50,
            ..Default::default()
        },
    )
    .expect("client")
    .objects("rooms")
    .by_name("half-moved");
    let value = patient.add("n", 1).await.expect("served again");
    assert_eq!(value, 2);
    let info = counter.inspect().await.expect("inspect");
    assert_eq!((info.owner, info.epoch), (1, 2));
}
