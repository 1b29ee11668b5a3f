//! Storage calls through any node: counters, first access, transactions, limits and
//! errors, retried writes.

use larder_client::ClientError;
use larder_proto_types::{check, write};

use crate::cluster_with_namespace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_increments_through_three_nodes_count_exactly() {
    let cluster = cluster_with_namespace(3).await;
    let mut workers = Vec::new();
    for w in 0..30u64 {
        let counter = cluster
            .node(1 + w % 3)
            .client()
            .objects("rooms")
            .by_name("counter");
        let increments = if w < 10 { 34 } else { 33 };
        workers.push(tokio::spawn(async move {
            for _ in 0..increments {
                counter.add("hits", 1).await.expect("add");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    for node in cluster.running() {
        let value = node
            .client()
            .objects("rooms")
            .by_name("counter")
            .get("hits")
            .await
            .expect("get");
        assert_eq!(value, Some(b"1000".to_vec()), "read at node {}", node.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_to_first_access_an_object_share_one_instance() {
    let cluster = cluster_with_namespace(3).await;
    let mut racers = Vec::new();
    for id in 1..=3u64 {
        let object = cluster.node(id).client().objects("rooms").by_name("lobby");
        racers.push(tokio::spawn(async move {
            object.put(format!("from-{id}"), "here").await.expect("put")
        }));
    }
    for racer in racers {
        racer.await.expect("racer");
    }
    // One object: every write is in it, whichever node reads.
    for node in cluster.running() {
        let (entries, more) = node
            .client()
            .objects("rooms")
            .by_name("lobby")
            .list(b"from-", false, 0)
            .await
            .expect("list");
        assert!(!more);
        let keys: Vec<String> = entries
            .into_iter()
            .map(|e| String::from_utf8(e.key).expect("utf8"))
            .collect();
        assert_eq!(
            keys,
            vec!["from-1", "from-2", "from-3"],
            "at node {}",
            node.id
        );
    }
}

/// Small builders for transaction messages.
mod larder_proto_types {
    use larder_client::objects::{Precondition, TransactionWrite};
    use larder_proto::v1::{precondition, transaction_write};

    pub fn check(key: &str, version: u64) -> Precondition {
        Precondition {
            key: key.as_bytes().to_vec(),
            check: Some(precondition::Check::VersionEquals(version)),
        }
    }

    pub fn write(key: &str, delta: i64) -> TransactionWrite {
        TransactionWrite {
            key: key.as_bytes().to_vec(),
            write: Some(transaction_write::Write::Add(delta)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_limits_and_errors() {
    let cluster = cluster_with_namespace(3).await;
    let cart = cluster.node(2).client().objects("rooms").by_name("cart-7");
    let version = cart.put("items", "0").await.expect("put");
    let tx = cart
        .transaction(
            vec![check("items", version)],
            vec![write("items", 2), write("items", 1)],
        )
        .await
        .expect("txn");
    assert_eq!(
        tx.results
            .iter()
            .map(|r| r.value.clone())
            .collect::<Vec<_>>(),
        vec![b"2".to_vec(), b"3".to_vec()]
    );
    // The same precondition again fails: the version moved on, nothing applies.
    match cart
        .transaction(vec![check("items", version)], vec![write("items", 100)])
        .await
    {
        Err(ClientError::FailedPrecondition(message)) => {
            assert!(message.contains("precondition 0"), "{message}")
        }
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
    assert_eq!(cart.get("items").await.expect("get"), Some(b"3".to_vec()));

    match cart.put(vec![b'k'; 2049], "v").await {
        Err(ClientError::InvalidArgument(message)) => {
            assert!(message.contains("objects.key_bytes_max"), "{message}")
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    match cart.put("big", vec![0u8; 1024 * 1024 + 1]).await {
        Err(ClientError::InvalidArgument(message)) => {
            assert!(message.contains("objects.value_bytes_max"), "{message}")
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    let keys: Vec<String> = (0..129).map(|i| format!("k{i}")).collect();
    match cart.get_many(&keys).await {
        Err(ClientError::InvalidArgument(message)) => {
            assert!(message.contains("objects.batch_keys_max"), "{message}")
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    match cluster
        .node(1)
        .client()
        .objects("nope")
        .by_name("x")
        .get("k")
        .await
    {
        Err(ClientError::NotFound(message)) => assert!(message.contains("nope"), "{message}"),
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_retried_with_its_request_id_applies_once() {
    use larder_proto::v1::objects_client::ObjectsClient;
    use larder_proto::v1::{ObjectAddRequest, ObjectRef, object_ref};
    let cluster = cluster_with_namespace(3).await;
    let object = ObjectRef {
        namespace: "rooms".into(),
        key: Some(object_ref::Key::Name("idempotent".into())),
        location_hint: String::new(),
    };
    let add = |request_id: &str| ObjectAddRequest {
        object: Some(object.clone()),
        key: b"n".to_vec(),
        delta: 5,
        request_id: request_id.into(),
    };
    // The same call delivered three times, through different nodes.
    let mut answers = Vec::new();
    for id in [1, 2, 3] {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node(id).api))
                .expect("endpoint")
                .connect()
                .await
                .expect("connect");
        let response = ObjectsClient::new(channel)
            .add(add("retry-me"))
            .await
            .expect("add");
        answers.push(response.into_inner().value);
    }
    assert_eq!(
        answers,
        vec![5, 5, 5],
        "every delivery gets the first answer"
    );
    let counter = cluster
        .node(1)
        .client()
        .objects("rooms")
        .by_name("idempotent");
    assert_eq!(counter.get("n").await.expect("get"), Some(b"5".to_vec()));
    // A new id is a new write.
    assert_eq!(counter.add("n", 1).await.expect("add"), 6);
}
