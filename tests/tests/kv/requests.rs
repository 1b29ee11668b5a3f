//! What a request may ask: limits, unknown namespaces, region-restricted namespaces.

use std::time::Duration;

use larder_client::ClientError;
use larder_client::kv::Session;

use crate::support::{TestCluster, wait_for};
use crate::{STEP, cluster_with_namespace, wait_value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_a_limit_are_invalid_arguments() {
    let cluster = cluster_with_namespace(1, "ns").await;
    let kv = cluster.node(1).client().kv("ns");
    fn invalid<T>(result: Result<T, ClientError>, limit: &str) {
        match result {
            Err(ClientError::InvalidArgument(message)) => {
                assert!(message.contains(limit), "{message}")
            }
            Err(other) => panic!("expected INVALID_ARGUMENT naming {limit}, got {other}"),
            Ok(_) => panic!("expected INVALID_ARGUMENT naming {limit}"),
        }
    }
    invalid(
        kv.put(vec![b'k'; 513], "v").send().await,
        "kv.key_bytes_max",
    );
    invalid(
        kv.put("k", "v").metadata(vec![b'm'; 1025]).send().await,
        "kv.metadata_bytes_max",
    );
    invalid(
        kv.put("k", vec![0u8; 25 * 1024 * 1024 + 1]).send().await,
        "kv.value_bytes_max",
    );
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    invalid(kv.get_many(&keys).await, "kv.get_many_keys_max");
    invalid(kv.list_page(b"", b"", 1001).await, "kv.list_page_max");
    invalid(kv.get("").await, "key must not be empty");
    // The largest value is accepted. Moving 25 MiB twice through a debug build on a busy
    // machine can take longer than the harness's 3 s per call.
    let patient = larder_client::Client::new(
        &cluster.node(1).api,
        larder_client::ClientConfig {
            request_timeout: Duration::from_secs(60),
            attempts_max: 1,
            ..Default::default()
        },
    )
    .expect("client")
    .kv("ns");
    patient
        .put("big", vec![7u8; 25 * 1024 * 1024])
        .send()
        .await
        .expect("25 MiB value");
    assert_eq!(
        patient.get("big").await.expect("get").map(|v| v.len()),
        Some(25 * 1024 * 1024)
    );
    match cluster.node(1).client().kv("missing").get("k").await {
        Err(ClientError::NotFound(message)) => assert!(message.contains("missing"), "{message}"),
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_restricted_namespace_is_never_stored_outside_its_region() {
    let mut cluster = TestCluster::start(3).await.expect("cluster");
    cluster.add_joiner(1).expect("joiner");
    cluster.wait_healthy(STEP).await.expect("healthy");
    // Nodes 1 and 3 are in eu-west, 2 and 4 in us-east.
    let admin = cluster.node(2).client();
    admin
        .create_namespace("eu-data", vec!["eu-west".into()], None)
        .await
        .expect("create");
    admin
        .create_namespace("open", vec![], None)
        .await
        .expect("create");
    wait_for("namespaces everywhere", STEP, || async {
        for node in cluster.running() {
            if node.client().list_namespaces().await.ok()?.len() != 2 {
                return None;
            }
        }
        Some(())
    })
    .await
    .expect("namespaces");

    let eu = cluster.node(1).client().kv("eu-data");
    for i in 0..20 {
        eu.put(format!("secret{i}"), "eu only")
            .send()
            .await
            .expect("put");
    }
    cluster
        .node(1)
        .client()
        .kv("open")
        .put("public", "x")
        .send()
        .await
        .expect("put");
    wait_value(&cluster, "open", "public", Some(b"x")).await;
    wait_for("eu data at node 3", STEP, || async {
        let got = cluster
            .node(3)
            .client()
            .kv("eu-data")
            .get("secret19")
            .await
            .ok()?;
        got.is_some().then_some(())
    })
    .await
    .expect("replicated inside the region");
    // Outside the region the namespace is refused, naming a node that holds it (one
    // of this node's region when it can: none here), which the client calls instead.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node(2).api))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
    let request = larder_proto::v1::GetRequest {
        namespace: "eu-data".into(),
        key: b"secret1".to_vec(),
        consistency_token: Vec::new(),
    };
    let refused = larder_proto::v1::kv_client::KvClient::new(channel)
        .get(request)
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("eu-west"),
        "{}",
        refused.message()
    );
    let named = refused
        .metadata()
        .get(larder_proto::metadata::RETRY_ENDPOINT)
        .and_then(|v| v.to_str().ok())
        .expect("names a node that holds it");
    assert!(
        [&cluster.node(1).api, &cluster.node(3).api].contains(&&named.to_string()),
        "{named}"
    );
    let followed = cluster.node(2).client().kv("eu-data").get("secret1").await;
    assert_eq!(
        followed.expect("followed").as_deref(),
        Some(&b"eu only"[..])
    );
    // ...and its data is not on their disks (checked after a few anti-entropy rounds).
    let token = cluster
        .node(1)
        .client()
        .kv("open")
        .put("marker", "m")
        .send()
        .await
        .expect("put")
        .consistency_token;
    let session = Session::new();
    session.observe(&token);
    for id in [2, 4] {
        let kv = cluster.node(id).client().kv("open").with_session(&session);
        assert_eq!(
            kv.get("marker").await.expect("get").as_deref(),
            Some(&b"m"[..])
        );
    }
    let eu_data = cluster.stored_as("eu-data").await.expect("namespace");
    let open = cluster.stored_as("open").await.expect("namespace");
    for id in [2, 4] {
        let node = cluster.node_mut(id);
        node.kill();
        let store = larder_store::Store::open(node.data_dir.join("store")).expect("open store");
        let keyspace = larder_kv::keyspace::Keyspace::open(store).expect("keyspace");
        let stored = keyspace.stored_namespaces().expect("namespaces");
        assert!(!stored.contains(&eu_data), "node {id} stores {stored:?}");
        assert!(stored.contains(&open), "node {id} stores {stored:?}");
    }
}
